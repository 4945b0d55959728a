-- spec helper: one timer entry scheduled again and again, as a tentacle is the timer of every
-- call it makes (luact.clock.schedule). Returns the entry, the list of its firings ({ tag,
-- seconds after its time }) and schedule(tag, after), which gives it a tag and a time `after`
-- seconds from now and schedules it. (Runs inside a luact runtime.)
return function()
  local clock = require("luact").clock
  local fired = {}
  local e = { seq = 0, pos = 0, fire = function(e, now) fired[#fired + 1] = { e.tag, now - e.at } end }
  local function schedule(tag, after) e.tag, e.at = tag, clock.get() + after; clock.schedule(e) end
  return e, fired, schedule
end
