-- Tentacles spawned and run to completion per second (pooled coroutines, one thread).
local common = require "bench.common"
local luact = require "luact"

local N = tonumber(arg and arg[1]) or 1000000
local seconds = luact.start({ n_core = 1 }, function()
  local luact = require "luact"
  local n = tonumber(os.getenv("N")) or 1000000
  local done = 0
  local function body() done = done + 1 end
  local t0 = luact.clock.get()
  local last
  for _ = 1, n do last = luact.tentacle(body) end
  luact.event.wait(nil, last)
  luact.stop(luact.clock.get() - t0, done)
end)
common.report("tentacle_spawn", { n = N, seconds = seconds, rate = N / seconds }, { "n", "seconds", "rate" })
