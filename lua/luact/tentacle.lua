-- luact.tentacle: lightweight cooperative threads. `luact.tentacle(fn, ...)` runs fn in a pooled
-- coroutine; the tentacle is a one-shot event that fires ('end', ok, results...) when fn returns
-- or fails. A failure nobody waits for is logged, never lost.
local scheduler = require "luact.scheduler"
local metrics = require "luact.metrics"
local TENTACLES = metrics.SLOT.tentacles
local event = require "luact.event"
local exception = require "luact.exception"
local select, unpack = select, unpack

local Tentacle = setmetatable({}, { __index = event.Event })
Tentacle.__index = Tentacle
Tentacle.__luact_event = true

function Tentacle:__tostring()
  return ("tentacle(%s): %s"):format(self.name or "?", self.status)
end

local tentacle = {}

-- Called by the scheduler with the outcome of a tentacle's body.
local function finished(t, ok, ...)
  if getmetatable(t) == Tentacle then
    local mb = metrics.b
    mb[TENTACLES] = mb[TENTACLES] - 1
  end
  t.status = "dead"
  if not ok and not t.waiters and not t.watched then
    local err = ...
    local log = package.loaded["luact.logger"]
    local msg = "tentacle failed and nobody waited for it: " .. tostring(err)
    if log then log.error(msg) else io.stderr:write(msg, "\n") end
  end
  t:emit("end", ok, ...)
end
scheduler.set_finish_handler(finished)

local function spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad 'fn' argument to luact.tentacle (function expected, got " .. type(fn) .. ")", 3)
  end
  local t = setmetatable(event.init({}, true), Tentacle)
  local mb = metrics.b
  mb[TENTACLES] = mb[TENTACLES] + 1
  return scheduler.spawn(t, fn, ...)
end

setmetatable(tentacle, { __call = function(_, fn, ...) return spawn(fn, ...) end })
tentacle.new = function(fn, ...) return spawn(fn, ...) end

function tentacle.running()
  return scheduler.running()
end

function tentacle.is_tentacle(v)
  return getmetatable(v) == Tentacle
end

-- Suspends the running tentacle until `tentacle.resume(t, ...)`; returns resume's values.
function tentacle.yield(...)
  local t, token = scheduler.prepare_wait("tentacle.yield")
  t.yielded = { n = select("#", ...), ... }
  t.yield_token = token
  return scheduler.suspend()
end

-- Wakes a tentacle suspended in tentacle.yield with the given values (it runs on the next turn
-- of the loop). Returns true and the values it yielded, or false and a reason.
function tentacle.resume(t, ...)
  if not tentacle.is_tentacle(t) then
    error("bad 't' argument to tentacle.resume (tentacle expected, got " .. type(t) .. ")", 2)
  end
  local token = t.yield_token
  if token == nil or t.token ~= token or t.status ~= "waiting" then
    return false, "tentacle is not suspended in tentacle.yield"
  end
  local y = t.yielded
  t.yield_token, t.yielded = nil, nil
  scheduler.wake(t, token, ...)
  return true, unpack(y, 1, y.n)
end

-- Ends a tentacle wherever it waits; its waiters see ('end', false, tentacle_cancelled).
-- Only GC reclaims what it held. Cancelling the running tentacle ends it at once.
function tentacle.cancel(t)
  if not tentacle.is_tentacle(t) then
    error("bad 't' argument to tentacle.cancel (tentacle expected, got " .. type(t) .. ")", 2)
  end
  if t.status == "dead" then return false end
  t.status = "dead"
  t:emit("end", false, exception.new("tentacle_cancelled"))
  scheduler.kill(t)         -- when t is the running tentacle, this does not return
  return true
end

return tentacle
