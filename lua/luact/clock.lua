-- luact.clock: time for tentacles. `clock.get()` reads the monotonic clock; sleeps, alarms,
-- timers and tickers are entries in this VM's timer heap, which the loop (luact.loop) fires and
-- whose next deadline is how long the thread may sleep in io_uring. Waiting costs nothing.
local C = require("luact.ffi").C
local scheduler = require "luact.scheduler"
local event = require "luact.event"
local timer_heap = require "luact.timer_heap"

local clock = {}
local heap = timer_heap.new()

-- Hot paths (a call's deadline, a sleep) only note their timer here; the loop moves the notes
-- into the heap once per turn (`settle`, a tight loop the JIT compiles) before it looks at the
-- deadlines. So scheduling and cancelling a timer runs no heap loop in the caller's code (a loop
-- there aborts the caller's trace), and a timer cancelled in the turn it was made never reaches
-- the heap. An entry's `pos` is -1 while it waits here, 0 or nil when it is in no heap.
local arriving, narriving = {}, 0
local leaving, nleaving = {}, 0

local function settle()
  for i = 1, narriving do
    local e = arriving[i]
    arriving[i] = nil
    if e.pos == -1 then heap:push(e) end
  end
  narriving = 0
  for i = 1, nleaving do
    local e = leaving[i]
    leaving[i] = nil
    heap:remove(e)
  end
  nleaving = 0
end

local function check_seconds(v, name, who)
  if type(v) ~= "number" or v ~= v or v < 0 then
    error(("bad '%s' argument to %s (non-negative number expected, got %s)"):format(name, who, type(v) == "number" and tostring(v) or type(v)), 3)
  end
end

-- Seconds (float) from an arbitrary fixed point; for durations and deadlines.
function clock.get()
  return C.luact_clock_monotonic()
end

-- Seconds since the Unix epoch (float).
function clock.walltime()
  return C.luact_clock_wall()
end

-- Fires `fire(entry, now)` at monotonic time `at`; returns the entry for clock.cancel.
function clock.at(at, fire)
  return heap:push({ at = at, fire = fire })
end

-- Schedules `entry` itself ({ at = seconds, fire = function(entry, now), ... }: give it `seq` and
-- `pos` fields up front so the heap does not grow the table) and returns it: a timer with no
-- allocation of its own, for hot paths.
function clock.schedule(entry)
  entry.pos = -1
  narriving = narriving + 1
  arriving[narriving] = entry
  return entry
end

-- Drops a timer made by clock.at or clock.schedule (no effect once it fired).
function clock.cancel(entry)
  local pos = entry.pos
  if pos == -1 then
    entry.pos = 0
  elseif pos and pos > 0 then
    nleaving = nleaving + 1
    leaving[nleaving] = entry
  end
end

local function wake_sleeper(entry)
  scheduler.wake(entry.t, entry.token)
end

-- Suspends the calling tentacle for `sec` seconds (other tentacles keep running).
function clock.sleep(sec)
  check_seconds(sec, "sec", "clock.sleep")
  local t, token = scheduler.prepare_wait("clock.sleep")
  clock.schedule({ at = C.luact_clock_monotonic() + sec, fire = wake_sleeper, t = t, token = token, seq = 0, pos = 0 })
  scheduler.suspend()
end

local function ring_alarm(entry)
  entry.ev:emit("alarm")
end

-- A one-shot event that fires ('alarm') after `sec` seconds; `ev:cancel()` stops it.
function clock.alarm(sec)
  check_seconds(sec, "sec", "clock.alarm")
  local ev = event.new_oneshot()
  local entry = heap:push({ at = C.luact_clock_monotonic() + sec, fire = ring_alarm, ev = ev })
  ev.cancel = function() heap:remove(entry) end
  return ev
end

local Repeating = {}
Repeating.__index = Repeating
function Repeating:stop()
  self.stopped = true
  if self.entry then heap:remove(self.entry) end
end

local function schedule_next(r, now)
  -- Fixed rate without drift; a late loop skips missed beats instead of bursting.
  local at = r.next_at + r.interval
  if at <= now then at = now + r.interval end
  r.next_at = at
  r.entry = heap:push({ at = at, fire = r.fire, r = r })
end

local function run_timer(r)
  local ok, again = pcall(r.fn, unpack(r.args, 1, r.args.n))
  if not ok then
    r:stop()
    local log = require "luact.logger"
    log.error("clock.timer callback failed; timer stopped: " .. tostring(again))
  elseif again == false then
    r:stop()
  end
end

local function fire_timer(entry, now)
  local r = entry.r
  if r.stopped then return end
  if not r.busy then
    r.busy = true
    require("luact.tentacle")(function() run_timer(r); r.busy = false end)
  end
  schedule_next(r, now)
end

-- Calls fn(...) every `interval` seconds, each time in a new tentacle (so fn may wait; a call
-- still running when the next is due makes that beat skip). fn returning false, an error in
-- fn, or `timer:stop()` ends it.
function clock.timer(interval, fn, ...)
  check_seconds(interval, "interval", "clock.timer")
  if interval <= 0 then error("bad 'interval' argument to clock.timer (must be > 0)", 2) end
  if type(fn) ~= "function" then
    error("bad 'fn' argument to clock.timer (function expected, got " .. type(fn) .. ")", 2)
  end
  local r = setmetatable({ interval = interval, fn = fn, args = { n = select("#", ...), ... },
                           fire = fire_timer, next_at = C.luact_clock_monotonic() }, Repeating)
  schedule_next(r, r.next_at)
  return r
end

local function fire_ticker(entry, now)
  local r = entry.r
  if r.stopped then return end
  r.ticks = r.ticks + 1
  r.ev:emit("tick", r.ticks)
  schedule_next(r, now)
end

-- A stream event that emits ('tick', n) every `interval` seconds; unconsumed ticks collapse
-- into one. `ev:stop()` ends it.
function clock.ticker(interval)
  check_seconds(interval, "interval", "clock.ticker")
  if interval <= 0 then error("bad 'interval' argument to clock.ticker (must be > 0)", 2) end
  local ev = event.new({ max_pending = 1 })
  local r = setmetatable({ interval = interval, ev = ev, ticks = 0, fire = fire_ticker,
                           next_at = C.luact_clock_monotonic() }, Repeating)
  schedule_next(r, r.next_at)
  ev.stop = function() r:stop() end
  return ev
end

-- For the loop: fires every entry due at `now`; returns how many fired.
function clock.fire_due(now)
  settle()
  local n = 0
  while true do
    local entry = heap:pop_due(now)
    if not entry then return n end
    entry.fire(entry, now)
    n = n + 1
  end
end

-- For the loop: seconds until the next deadline (nil: none).
function clock.next_deadline()
  settle()
  return heap:next_deadline()
end

function clock.pending()
  settle()
  return heap:size()
end

-- Drops every timer (between two runs of luact.start in one VM).
function clock.reset()
  heap = timer_heap.new()
  arriving, narriving, leaving, nleaving = {}, 0, {}, 0
end

return clock
