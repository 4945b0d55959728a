-- The nemesis soak's checkers (spec/helpers/nemesis.lua runs them on what its clients and
-- members left behind). Each takes recorded data and returns a list of failures (strings);
-- none reads a clock or a process.
--
-- What the callers' timestamps can prove (the single-activation check). Every client runs in one
-- process outside the cluster and stamps each call by name with its own wall clock when it sent
-- it (s) and when the answer came back (r). No fault slows that clock (the slowed members run
-- under libfaketime; the client does not), so all the stamps are on one clock. An answer from
-- activation A was computed at some instant strictly inside (s, r): that is all a caller knows.
-- The callee's own clock is recorded too, but only for the report: a member's clock may be
-- slowed, and the promise is about real time.
-- Each activation draws a random token in its constructor and returns it with every answer, so
-- answers group by activation. "At most one activation answers at a time" means the spans
-- [first answer, last answer] of two activations of one name never overlap, i.e. one of them
-- answered entirely before the other. A before B is possible only if some choice of instants
-- puts every A answer before every B answer; the latest instants of B's answers can be as late
-- as r and A's as early as s, so A before B is possible iff max over A of s < min over B of r.
-- Neither order possible, i.e. maxS(A) >= minR(B) and maxS(B) >= minR(A), PROVES the spans
-- overlap: some B answer came back before an A call was even sent, and some A answer came back
-- before a B call was sent. Anything else is not a violation: two answers with overlapping
-- (s, r) intervals prove nothing, whatever the callee clocks say. The check is stricter than
-- "never two answers at the same instant" in one way: an activation that answers again after
-- another one answered (A, B, A) is a violation (the README: a process given up for dead never
-- serves its old activations again). It cannot see an overlap that no caller observed.
local lin = require "helpers.linearizability"

local checks = {}

local function val(s)
  if s == "nil" or s == "-" or s == nil then return nil end
  if s == "true" then return true end
  if s == "false" then return false end
  return tonumber(s) or s
end

-- Parses the clients' record file (spec/helpers/nemesis_client.lua's format).
function checks.parse(path)
  local db, va = {}, {}
  local f = io.open(path)
  if not f then return db, va end
  for line in f:lines() do
    local t = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do t[#t + 1] = field end
    if t[1] == "D" and #t >= 11 then
      db[#db + 1] = { client = tonumber(t[2]), member = tonumber(t[3]), thread = tonumber(t[4]),
        key = t[5], op = t[6], a = val(t[7]), b = val(t[8]), call = tonumber(t[9]),
        ret = tonumber(t[10]), result = val(t[11]) }
    elseif t[1] == "V" and #t >= 12 then
      va[#va + 1] = { client = tonumber(t[2]), member = tonumber(t[3]), thread = tonumber(t[4]),
        vid = t[5], send = tonumber(t[6]), recv = tonumber(t[7]), ok = t[8] == "true",
        token = t[9], host = t[10], callee = tonumber(t[11]), err = t[12] }
    end
  end
  f:close()
  return db, va
end

-- (a) Each key's set/get/cas history is linearizable (initial value `init`).
function checks.linearizable(db, init, max_states)
  local by_key, failures = {}, {}
  for _, o in ipairs(db) do
    local h = by_key[o.key] or {}
    by_key[o.key] = h
    local op = { op = o.op, call = o.call, ret = o.ret, result = o.result }
    if o.op == "set" then op.v = o.a elseif o.op == "cas" then op.old, op.new = o.a, o.b end
    h[#h + 1] = op
  end
  local keys = {}
  for k in pairs(by_key) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local ok, why = lin.check(by_key[k], init, max_states)
    if not ok then
      failures[#failures + 1] = ("linearizability: %s (%d operations): %s"):format(k, #by_key[k], tostring(why))
    end
  end
  return failures
end

-- The activations of each name: token -> { minR, maxS, firstS, lastR, n, host }.
function checks.activations(va)
  local by_vid = {}
  for _, c in ipairs(va) do
    if c.ok then
      local acts = by_vid[c.vid] or {}
      by_vid[c.vid] = acts
      local a = acts[c.token]
      if not a then
        a = { token = c.token, host = c.host, n = 0, minR = math.huge, maxS = -math.huge,
              first = math.huge, last = -math.huge }
        acts[c.token] = a
      end
      a.n = a.n + 1
      if c.recv < a.minR then a.minR = c.recv end
      if c.send > a.maxS then a.maxS = c.send end
      if c.callee and c.callee < a.first then a.first = c.callee end
      if c.callee and c.callee > a.last then a.last = c.callee end
    end
  end
  return by_vid
end

-- (b) No two activations of one name answered over overlapping spans (see the header).
function checks.single_activation(va)
  local failures = {}
  local by_vid = checks.activations(va)
  local vids = {}
  for v in pairs(by_vid) do vids[#vids + 1] = v end
  table.sort(vids)
  for _, vid in ipairs(vids) do
    local list = {}
    for _, a in pairs(by_vid[vid]) do list[#list + 1] = a end
    table.sort(list, function(x, y) return x.minR < y.minR end)
    for i = 1, #list do
      for j = i + 1, #list do
        local A, B = list[i], list[j]
        if A.maxS >= B.minR and B.maxS >= A.minR then
          failures[#failures + 1] = ((
            "two activations of %s answered at overlapping times: A = %s on %s (%d answers), " ..
            "B = %s on %s (%d answers); an answer of B came back at %.3f, before a call A answered " ..
            "was sent at %.3f, and an answer of A came back at %.3f, before a call B answered was " ..
            "sent at %.3f (the callers' clock); callee clocks: A answered %.3f-%.3f, B %.3f-%.3f"):format(
            vid, A.token, A.host, A.n, B.token, B.host, B.n, B.minR, A.maxS, A.minR, B.maxS,
            A.first, A.last, B.first, B.last))
        end
      end
    end
  end
  return failures
end

-- (c) After each heal (a time when the last fault was undone and a majority of voters is up),
-- every name answered a call sent at or after it, and that answer came back within `window`
-- seconds. heals: list of { t =, label = }; names: list of vids.
function checks.available(va, heals, names, window)
  local failures = {}
  local worst = 0        -- the longest wait for a name's first answer after a heal (s)
  for _, h in ipairs(heals) do
    for _, vid in ipairs(names) do
      local first
      for _, c in ipairs(va) do
        if c.vid == vid and c.ok and c.send >= h.t and (not first or c.recv < first) then first = c.recv end
      end
      if first and first - h.t > worst then worst = first - h.t end
      if not first or first - h.t > window then
        -- what the calls after the heal got, for the report
        local errs, n = {}, 0
        for _, c in ipairs(va) do
          if c.vid == vid and c.send >= h.t and c.send <= h.t + window and not c.ok then
            errs[c.err] = (errs[c.err] or 0) + 1
            n = n + 1
          end
        end
        local e = {}
        for k, v in pairs(errs) do e[#e + 1] = k .. " x" .. v end
        table.sort(e)
        failures[#failures + 1] = ("availability: %s did not answer within %.0f s of the heal at %.3f (%s): %s; failed calls in the window: %s"):format(
          vid, window, h.t, h.label, first and ("first answer %.2f s after") :format(first - h.t) or "no answer at all after it",
          #e > 0 and table.concat(e, ", ") or "none")
      end
    end
  end
  return failures, worst
end

-- (d) The lines of a member's output that say it failed: a logged error or fatal, a Lua error
-- that reached the top (luajit prints "luajit: ..."), a Rust panic, a signal's crash. A
-- traceback under a WARN line (e.g. "condemning ... failed: cluster_unavailable" while the
-- majority is down) is not one.
checks.BAD_LINES = { " ERROR ", " FATAL ", "^luajit: ", "panicked at", "Segmentation fault",
                     "core dumped", "Aborted" }
function checks.bad_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    for _, p in ipairs(checks.BAD_LINES) do
      if line:find(p) then out[#out + 1] = line; break end
    end
  end
  return out
end

-- (e) Memory: samples is a list of { member =, pid =, t =, rss_kb = }. Each process must stay
-- under limit_mb, and one that ran long enough must not keep growing: the mean of its last
-- quarter of samples within growth x (plus slack_mb) of the mean of its second quarter.
function checks.memory(samples, limit_mb, growth, slack_mb)
  local failures = {}
  local by_pid = {}
  for _, s in ipairs(samples) do
    local p = by_pid[s.pid] or { member = s.member, list = {} }
    by_pid[s.pid] = p
    p.list[#p.list + 1] = s
    if s.rss_kb > limit_mb * 1024 then
      failures[#failures + 1] = ("memory: member %d (pid %d) at %.1f MB RSS, over %d MB"):format(s.member, s.pid, s.rss_kb / 1024, limit_mb)
      limit_mb = math.huge   -- (once)
    end
  end
  for pid, p in pairs(by_pid) do
    local l = p.list
    if #l >= 16 then
      local function mean(a, b)
        local sum = 0
        for i = a, b do sum = sum + l[i].rss_kb end
        return sum / (b - a + 1)
      end
      local q = math.floor(#l / 4)
      local early, late = mean(q + 1, 2 * q), mean(#l - q + 1, #l)
      if late > early * growth + slack_mb * 1024 then
        failures[#failures + 1] = ("memory: member %d (pid %d) grew from %.1f MB to %.1f MB over %.0f s (%d samples)"):format(
          p.member, pid, early / 1024, late / 1024, l[#l].t - l[1].t, #l)
      end
    end
  end
  return failures
end

return checks
