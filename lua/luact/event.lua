-- luact.event: things a tentacle can wait for. An event is emitted with a type and values;
-- `event.wait` returns (type, ev, values...) for the first of several events that fires.
--
-- Two kinds:
-- - a one-shot event (a finished tentacle, an async call's reply, an alarm) is emitted once and
--   stays fired: every wait on it, before or after, sees that same emission;
-- - a stream event (`event.new()`, a ticker) may be emitted many times: each emission wakes
--   every tentacle waiting on it (whose filter accepts it); when none does, it is kept in a
--   queue (up to `max_pending`, then the oldest is dropped and counted in `ev.dropped`) for
--   the next wait.
local scheduler = require "luact.scheduler"
local util = require "luact.util"
local select, unpack = select, unpack

local event = {}

local Event = {}
Event.__index = Event
event.Event = Event

local function is_event(v)
  return type(v) == "table" and getmetatable(v) ~= nil and v.__luact_event == true
end
event.is_event = is_event
Event.__luact_event = true

-- Makes any table an event (luact.tentacle makes its tentacles events this way).
function event.init(t, oneshot, max_pending)
  t.oneshot = oneshot or false
  t.max_pending = max_pending or math.huge
  t.waiters = nil
  t.fired = nil
  t.pending = nil
  t.dropped = 0
  return t
end

local EVENT_OPTIONS = util.set { "max_pending" }
function event.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad 'opts' argument to event.new (table expected, got " .. type(opts) .. ")", 2)
  end
  util.check_options(opts, EVENT_OPTIONS, "event.new", 2)
  local max_pending = opts and opts.max_pending
  if max_pending ~= nil and (type(max_pending) ~= "number" or max_pending < 0) then
    error("bad 'max_pending' option to event.new (non-negative number expected)", 2)
  end
  return setmetatable(event.init({}, false, max_pending), Event)
end

function event.new_oneshot()
  return setmetatable(event.init({}, true), Event)
end

local function accepts(filter, e)
  return filter == nil or filter(unpack(e, 1, e.n))
end

-- ev:emit(type, ...): wakes waiters; returns how many tentacles it woke.
function Event:emit(tp, ...)
  if tp == nil then error("bad 'type' argument to emit (a type is required)", 2) end
  if self.oneshot and self.fired then
    error("luact.event: a one-shot event fires once (already fired with '" .. tostring(self.fired[1]) .. "')", 2)
  end
  local e = { n = select("#", ...) + 2, tp, self, ... }
  if self.oneshot then self.fired = e end
  local woken = 0
  local waiters = self.waiters
  if waiters then
    self.waiters = nil
    local keep
    for i = 1, #waiters do
      local w = waiters[i]
      if not w.done then
        if accepts(w.filter, e) and scheduler.wake(w.t, w.token, unpack(e, 1, e.n)) then
          w.done = true
          woken = woken + 1
        elseif w.t.token == w.token then
          keep = keep or {}
          keep[#keep + 1] = w
        end
      end
    end
    if keep then
      -- waiters registered while we iterated (none can be: wake only queues) stay as well
      self.waiters = keep
    end
  end
  if woken == 0 and not self.oneshot then
    local pending = self.pending
    if not pending then pending = { first = 1, last = 0 }; self.pending = pending end
    if pending.last - pending.first + 1 >= self.max_pending then
      if self.max_pending == 0 then self.dropped = self.dropped + 1; return 0 end
      pending[pending.first] = nil
      pending.first = pending.first + 1
      self.dropped = self.dropped + 1
    end
    pending.last = pending.last + 1
    pending[pending.last] = e
  end
  return woken
end

-- True when the event has fired (one-shot) or has a queued emission (stream).
function Event:ready()
  if self.oneshot then return self.fired ~= nil end
  local p = self.pending
  return p ~= nil and p.last >= p.first
end

-- An emission the event already holds that `filter` accepts, consumed if it is a stream's.
local function take(ev, filter)
  if ev.oneshot then
    local e = ev.fired
    if e and accepts(filter, e) then return e end
    return nil
  end
  local p = ev.pending
  if not p then return nil end
  for i = p.first, p.last do
    local e = p[i]
    if e and accepts(filter, e) then
      if i == p.first then
        p[i] = nil
        p.first = i + 1
      else
        -- rare: a filter skipped older emissions; close the gap
        for j = i, p.last - 1 do p[j] = p[j + 1] end
        p[p.last] = nil
        p.last = p.last - 1
      end
      return e
    end
  end
  return nil
end

local function check_events(who, first, ...)
  local n = select("#", ...)
  for i = 1, n do
    local ev = select(i, ...)
    if not is_event(ev) then
      error(("bad argument #%d to %s (event expected, got %s)"):format(i + first - 1, who, type(ev)), 3)
    end
  end
  return n
end

-- event.wait(filter, ev...) -> type, ev, values... of the first accepted emission.
function event.wait(filter, ...)
  if filter ~= nil and type(filter) ~= "function" then
    error("bad 'filter' argument to event.wait (function or nil expected, got " .. type(filter) .. ")", 2)
  end
  local n = check_events("event.wait", 2, ...)
  if n == 0 then error("event.wait: no event to wait for", 2) end
  for i = 1, n do
    local e = take((select(i, ...)), filter)
    if e then return unpack(e, 1, e.n) end
  end
  local t, token = scheduler.prepare_wait("event.wait")
  local w = { t = t, token = token, filter = filter }
  for i = 1, n do
    local ev = select(i, ...)
    local ws = ev.waiters
    if not ws then ws = {}; ev.waiters = ws end
    ws[#ws + 1] = w
  end
  return scheduler.suspend()
end

-- event.join(timeout_ev, ev...) -> { {type, ev, values...}, ... } in argument order; events
-- that did not fire before `timeout_ev` (nil: wait for all) get { 'timeout', ev }.
function event.join(timeout_ev, ...)
  if timeout_ev ~= nil and not is_event(timeout_ev) then
    error("bad 'timeout_ev' argument to event.join (event or nil expected, got " .. type(timeout_ev) .. ")", 2)
  end
  local n = check_events("event.join", 2, ...)
  local evs = { ... }
  local results, index = {}, {}
  for i = 1, n do index[evs[i]] = i end
  local remaining = n
  local timed_out = false
  while remaining > 0 and not timed_out do
    local waitlist = {}
    for i = 1, n do
      if results[i] == nil then waitlist[#waitlist + 1] = evs[i] end
    end
    if timeout_ev then waitlist[#waitlist + 1] = timeout_ev end
    local r = { n = 0 }
    local function collect(...) r = { n = select("#", ...), ... } end
    collect(event.wait(nil, unpack(waitlist)))
    local ev = r[2]
    local i = index[ev]
    if i and results[i] == nil then
      r.n = nil
      results[i] = r
      remaining = remaining - 1
    elseif ev == timeout_ev then
      timed_out = true
    end
  end
  for i = 1, n do
    if results[i] == nil then results[i] = { "timeout", evs[i] } end
  end
  return results
end

-- event.select({ [ev] = function(type, ev, ...) ... end, ... }): waits on every key and calls
-- the handler of the one that fires, again and again, until a handler returns false (then it
-- returns that handler's other values) or no event is left.
function event.select(selector)
  if type(selector) ~= "table" then
    error("bad 'selector' argument to event.select (table expected, got " .. type(selector) .. ")", 2)
  end
  local function handle(tp, ev, ...)
    local r = { selector[ev](tp, ev, ...) }
    return r
  end
  while true do
    local evs = {}
    for ev, h in pairs(selector) do
      if not is_event(ev) or type(h) ~= "function" then
        error("bad 'selector' argument to event.select (event = function pairs expected)", 2)
      end
      evs[#evs + 1] = ev
    end
    if #evs == 0 then return end
    local r = handle(event.wait(nil, unpack(evs)))
    if r[1] == false then return unpack(r, 2) end
  end
end

return event
