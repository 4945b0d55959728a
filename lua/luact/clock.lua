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
-- the heap. A timer due later than 2 * YOUNG_AGE from now first waits YOUNG_AGE in the young
-- list: a call's deadline is seconds away and its reply comes in microseconds, so most never
-- reach the heap at all (cancelling a young timer only marks it). An entry's `pos` is -1 while
-- it waits to be settled, -2 while young, 0 or nil when it is in no heap.
local YOUNG_AGE = 0.001
local arriving, narriving = {}, 0
local leaving, nleaving = {}, 0
local young, nyoung = {}, 0
local young_until = nil             -- when the young timers move on (nil: none is young)

-- Puts an entry that arrived in the young list or the heap (`old_enough`: the deadline past
-- which it is young); a cancelled one is dropped.
local function place(e, old_enough)
  if e.pos == -1 then
    if e.at > old_enough then
      e.pos = -2
      nyoung = nyoung + 1
      young[nyoung] = e
    else
      heap:push(e)
    end
  end
end

-- Moves the notes into the heap or the young list, as of `now`. A turn usually settles one
-- timer or none, so the first is placed before the loop: the loop op is not reached then, and a
-- loop entered for a single pass aborts the trace of the code that calls settle (the loop's
-- turn: "inner loop in root trace").
local function settle(now)
  -- removals first: an entry cancelled and scheduled again since the last settle has its stale
  -- removal note here and must not lose its new place (clock.schedule took it out already)
  if nleaving > 0 then
    for i = 1, nleaving do
      local e = leaving[i]
      leaving[i] = nil
      heap:remove(e)
    end
    nleaving = 0
  end
  if narriving > 0 then
    local old_enough = now + 2 * YOUNG_AGE
    place(arriving[1], old_enough)
    arriving[1] = nil
    for i = 2, narriving do
      place(arriving[i], old_enough)
      arriving[i] = nil
    end
    narriving = 0
    if nyoung > 0 and young_until == nil then young_until = now + YOUNG_AGE end
  end
end

-- Moves the young timers still pending into the heap, once they are YOUNG_AGE old.
local function grow_up(now)
  if young_until == nil or now < young_until then return end
  for i = 1, nyoung do
    local e = young[i]
    young[i] = nil
    if e.pos == -2 then heap:push(e) end
  end
  nyoung = 0
  young_until = nil
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

-- The loop's time: when its last wait for I/O ended (luact.loop notes it every turn). It costs
-- no clock read, and it is behind clock.get() by at most the CPU time of the turn so far: for
-- deadlines that need not be exact to the microsecond (a call's default timeout).
local loop_time = 0
function clock.loop_time()
  return loop_time
end

function clock.set_loop_time(t)
  loop_time = t
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
-- allocation of its own, for hot paths. An entry may be scheduled again once it fired or was
-- cancelled (a tentacle is the timer of every call it makes).
function clock.schedule(entry)
  local pos = entry.pos
  if pos and pos > 0 then heap:remove(entry) end   -- (an entry scheduled again: rare, not hot)
  entry.pos = -1
  narriving = narriving + 1
  arriving[narriving] = entry
  return entry
end

-- Drops a timer made by clock.at or clock.schedule (no effect once it fired).
function clock.cancel(entry)
  local pos = entry.pos
  if pos == -1 or pos == -2 then
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

local floor = math.floor

local function schedule_next(r, now)
  -- Fixed rate without drift; a late loop skips missed beats instead of bursting.
  local at = r.next_at + r.interval
  if at <= now then
    at = now + r.interval
    -- (a grid timer: back on its grid, the next multiple of its interval)
    if r.grid then at = (floor(now / r.interval) + 1) * r.interval end
  end
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

-- clock.timer whose beats fall on whole multiples of `interval` on the monotonic clock (the
-- first one within `interval` from now): timers whose intervals are multiples of one another
-- then fire in the same turn of the loop, and a thread running several wakes once for them all.
function clock.grid_timer(interval, fn, ...)
  check_seconds(interval, "interval", "clock.grid_timer")
  if interval <= 0 then error("bad 'interval' argument to clock.grid_timer (must be > 0)", 2) end
  if type(fn) ~= "function" then
    error("bad 'fn' argument to clock.grid_timer (function expected, got " .. type(fn) .. ")", 2)
  end
  local now = C.luact_clock_monotonic()
  local r = setmetatable({ interval = interval, fn = fn, args = { n = select("#", ...), ... },
                           fire = fire_timer, grid = true,
                           next_at = floor(now / interval) * interval }, Repeating)
  schedule_next(r, now)
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
  settle(now)
  grow_up(now)
  if not heap:due(now) then return 0 end   -- (most turns: no loop entered, see settle)
  local n = 0
  while true do
    local entry = heap:pop_due(now)
    if not entry then return n end
    entry.fire(entry, now)
    n = n + 1
  end
end

-- For the loop: the next deadline (nil: none), as of `now`.
function clock.next_deadline(now)
  settle(now)
  local d = heap:next_deadline()
  if young_until and (d == nil or young_until < d) then d = young_until end
  return d
end

-- Timers pending (scheduled, not fired, not cancelled).
function clock.pending()
  settle(C.luact_clock_monotonic())
  local n, seen = heap:size(), {}
  for i = 1, nyoung do
    local e = young[i]
    if e.pos == -2 and not seen[e] then n = n + 1; seen[e] = true end   -- (a rescheduled entry may be listed twice)
  end
  return n
end

-- Drops every timer (between two runs of luact.start in one VM).
function clock.reset()
  heap = timer_heap.new()
  arriving, narriving, leaving, nleaving = {}, 0, {}, 0
  young, nyoung, young_until = {}, 0, nil
end

return clock
