-- luact.future: the result of an async_ call, to collect later. `future(ev):get([timeout])`
-- returns ok, results... (ok == false with an exception on failure or timeout).
local event = require "luact.event"
local clock = require "luact.clock"
local exception = require "luact.exception"

local Future = {}
Future.__index = Future

local function values(tp, ev, ...)
  return ...
end

function Future:get(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error("bad 'timeout' argument to future:get (non-negative number expected, got " .. tostring(timeout) .. ")", 2)
  end
  if timeout == nil then
    return values(event.wait(nil, self.ev))
  end
  local alarm = clock.alarm(timeout)
  local function after(tp, ev, ...)
    alarm.cancel()
    if ev == alarm then
      return false, exception.new("actor_timeout", ("future:get: no result within %gs"):format(timeout))
    end
    return ...
  end
  return after(event.wait(nil, self.ev, alarm))
end

function Future:ready()
  return self.ev:ready()
end

local function new(ev)
  if not event.is_event(ev) then
    error("bad argument to luact.future (event expected, got " .. type(ev) .. ")", 2)
  end
  return setmetatable({ ev = ev }, Future)
end

return setmetatable({ new = new }, { __call = function(_, ev) return new(ev) end })
