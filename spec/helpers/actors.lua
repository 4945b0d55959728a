-- Helpers that run inside luact.start's main on any thread (require "spec.helpers.actors").
local helpers = {}

-- Waits (bounded) until `vid` names an actor; returns a reference to the name.
function helpers.wait_for(vid, timeout)
  local luact = require "luact"
  local names = require "luact.actor.names"
  local deadline = luact.clock.get() + (timeout or 5)
  while not names.resolve(vid) do
    assert(luact.clock.get() < deadline, "nothing registered under " .. vid)
    luact.clock.sleep(0.001)
  end
  return luact.ref(vid)
end

-- pcall that returns the exception's name (or the error) when f fails.
function helpers.failure(f, ...)
  local ok, e = pcall(f, ...)
  if ok then return nil end
  if type(e) == "table" and e.is then return e.name, e end
  return tostring(e)
end

return helpers
