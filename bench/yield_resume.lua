-- tentacle.yield / tentacle.resume: round trips per second between two tentacles of one thread
-- (each round trip is two switches: a wakes b, b wakes a).
local common = require "bench.common"
local luact = require "luact"

local N = 1000000
local seconds = luact.start({ n_core = 1 }, function()
  local luact = require "luact"
  local tentacle = luact.tentacle
  local n = 1000000
  local a, b
  b = tentacle(function()
    for _ = 1, n do tentacle.yield(); assert(tentacle.resume(a)) end
  end)
  local t0
  a = tentacle(function()
    t0 = luact.clock.get()
    for _ = 1, n do assert(tentacle.resume(b)); tentacle.yield() end
  end)
  luact.event.join(nil, a, b)
  luact.stop(luact.clock.get() - t0)
end)
common.report("yield_resume", { n = N, seconds = seconds, rate = N / seconds }, { "n", "seconds", "rate" })
