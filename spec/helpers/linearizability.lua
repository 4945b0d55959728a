-- A linearizability checker for histories of one register (set, get, cas), after Wing & Gong
-- with Lowe's memoization: it searches for an order of the operations that respects real time
-- (an operation that returned before another was called comes first) and the register's
-- sequential behaviour. Linearizability is local, so a key/value history is checked one key at a
-- time. An operation whose outcome is unknown (it failed: timeout, no leader) may have taken
-- effect at any point after its call, or never: it is given no return time and may be left out.
--
-- An operation: { op = "set"|"get"|"cas", v = value (set), old =, new = (cas),
--   result = what it returned (get: the value; cas: true/false), call = t0, ret = t1 or nil
--   when the outcome is unknown }. Values are numbers, strings or nil.
local lin = {}

local INF = math.huge

-- The states `op` can leave the register in from state `s`, applied with its known result
-- (nil: it cannot have happened from s).
local function step(op, s)
  local known = op.ret ~= nil
  if op.op == "set" then
    return op.v
  elseif op.op == "get" then
    if not known then return s end
    if op.result == s then return s end
    return nil, true
  elseif op.op == "cas" then
    if not known then
      if s == op.old then return op.new end
      return s
    end
    if op.result == true then
      if s == op.old then return op.new end
      return nil, true
    end
    if s ~= op.old then return s end
    return nil, true
  end
  error("unknown operation " .. tostring(op.op))
end

-- Each operation gets two random weights; the set of placed operations is memoized by their
-- sums (mod a prime, exact in doubles): O(1) per step instead of a string of n flags (a false
-- "seen" needs two 31-bit collisions at once).
local P = 2147483647
local function weights(n)
  local w1, w2, x = {}, {}, 12345
  for i = 1, n do
    x = (x * 16807) % P; w1[i] = x
    x = (x * 16807) % P; w2[i] = x
  end
  return w1, w2
end

-- true when `history` (a list of operations on one register, initially `init`) is linearizable;
-- else false and a description of the shortest prefix that could not be extended; or nil and
-- "undecided" when the search visited more than `max_states` states (default 2e6).
-- Operations with a known outcome are tried before unknown ones at each step, unknown ones only
-- where they can matter (below), and the search is an explicit stack (histories of thousands of
-- operations).
function lin.check(history, init, max_states)
  max_states = max_states or 2e6
  local ops = {}
  for _, o in ipairs(history) do
    -- an unknown get tells nothing
    if not (o.op == "get" and o.ret == nil) then ops[#ops + 1] = o end
  end
  table.sort(ops, function(a, b) return a.call < b.call end)
  local n = #ops
  if n == 0 then return true end
  local w1, w2 = weights(n)
  local done = {}
  local known_left = 0
  for i = 1, n do
    done[i] = false
    if ops[i].ret then known_left = known_left + 1 end
  end
  local seen, states = {}, 0
  local h1, h2 = 0, 0
  local deepest = 0

  -- The values some operation may have read: a known get's result, any cas's expected value.
  -- An unknown write of a value nobody read can only matter by making a failed cas fail (the
  -- state differs from what it expected): it is tried only right before such a cas, when the
  -- state equals that cas's expected value (any linearization can be rearranged so: move the
  -- write later, to just before the first cas that needs it). An unknown cas that cannot apply
  -- in the state is a no-op and never tried. Both keep the search from trying every subset of
  -- the unknown operations (one leader kill leaves dozens of them).
  local read_values = {}
  for _, o in ipairs(ops) do
    if o.op == "get" and o.ret then read_values[tostring(o.result)] = true end
    if o.op == "cas" then read_values[tostring(o.old)] = true end
  end
  local function written(o) if o.op == "set" then return o.v end return o.new end

  -- the candidates at state s: not placed, called before the earliest return among the
  -- unplaced known operations; known ones first
  local function candidates(s)
    local min_ret = INF
    for i = 1, n do
      if not done[i] then
        local r = ops[i].ret
        if r and r < min_ret then min_ret = r end
      end
    end
    local known, unknown = {}, {}
    local failed_cas_on_s = false
    for i = 1, n do
      local o = ops[i]
      if o.call > min_ret then break end
      if not done[i] then
        if o.ret then
          known[#known + 1] = i
          if o.op == "cas" and o.result == false and o.old == s then failed_cas_on_s = true end
        elseif not (o.op == "cas" and o.old ~= s) then
          unknown[#unknown + 1] = i
        end
      end
    end
    for _, i in ipairs(unknown) do
      if failed_cas_on_s or read_values[tostring(written(ops[i]))] then known[#known + 1] = i end
    end
    return known
  end

  -- stack frames: { state, candidate list, next index, placed op (to undo) }
  local stack = { { s = init, c = candidates(init), k = 1 } }
  seen[h1 .. ":" .. h2 .. "|" .. tostring(init)] = true
  while #stack > 0 do
    local f = stack[#stack]
    if known_left == 0 then return true end
    local i = f.c[f.k]
    if i == nil then
      -- exhausted: undo the operation that led here
      stack[#stack] = nil
      if f.placed then
        local j = f.placed
        done[j] = false
        h1, h2 = (h1 - w1[j]) % P, (h2 - w2[j]) % P
        if ops[j].ret then known_left = known_left + 1 end
      end
    else
      f.k = f.k + 1
      local s2, impossible = step(ops[i], f.s)
      if not impossible then
        local n1, n2 = (h1 + w1[i]) % P, (h2 + w2[i]) % P
        local key = n1 .. ":" .. n2 .. "|" .. tostring(s2)
        if not seen[key] then
          seen[key] = true
          states = states + 1
          if states > max_states then
            return nil, ("undecided: more than %d states searched (%d operations)"):format(max_states, n)
          end
          done[i] = true
          h1, h2 = n1, n2
          if ops[i].ret then known_left = known_left - 1 end
          if #stack > deepest then deepest = #stack end
          if known_left == 0 then return true end
          stack[#stack + 1] = { s = s2, c = candidates(s2), k = 1, placed = i }
        end
      end
    end
  end
  return false, ("no linearization: at most %d of %d operations could be ordered"):format(deepest, n)
end

return lin
