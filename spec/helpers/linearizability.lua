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

-- true when `history` (a list of operations on one register, initially `init`) is linearizable;
-- else false and a description of the shortest prefix that could not be extended.
function lin.check(history, init)
  local ops = {}
  for _, o in ipairs(history) do
    -- an unknown get tells nothing
    if not (o.op == "get" and o.ret == nil) then ops[#ops + 1] = o end
  end
  table.sort(ops, function(a, b) return a.call < b.call end)
  local n = #ops
  if n == 0 then return true end
  local done = {}
  for i = 1, n do done[i] = false end
  local seen = {}
  local deepest = 0

  local function key(s)
    local b = {}
    for i = 1, n do b[i] = done[i] and "1" or "0" end
    return table.concat(b) .. "|" .. tostring(s)
  end

  local function search(s, count)
    if count > deepest then deepest = count end
    -- finished when every operation with a known outcome is placed
    local min_ret = INF
    local all_known_done = true
    for i = 1, n do
      if not done[i] then
        local r = ops[i].ret
        if r then
          all_known_done = false
          if r < min_ret then min_ret = r end
        end
      end
    end
    if all_known_done then return true end
    local k = key(s)
    if seen[k] then return false end
    seen[k] = true
    for i = 1, n do
      local o = ops[i]
      if not done[i] and o.call <= min_ret then
        local s2, impossible = step(o, s)
        if not impossible then
          done[i] = true
          if search(s2, count + 1) then return true end
          done[i] = false
        end
      end
    end
    return false
  end

  if search(init, 0) then return true end
  return false, ("no linearization: at most %d of %d operations could be ordered"):format(deepest, n)
end

return lin
