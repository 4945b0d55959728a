-- Actors created per second, and the memory each idle actor costs beyond its body table.
local common = require "bench.common"
local luact = require "luact"

local N = 200000
local seconds, bytes = luact.start({ n_core = 1, timeout = 120, total = N }, function()
  local luact = require "luact"
  local n = luact.opts.total
  local keep = {}
  collectgarbage(); collectgarbage()
  local m0 = collectgarbage("count")
  for i = 1, n do keep[i] = {} end                 -- the bodies alone
  local bodies = (collectgarbage("count") - m0) * 1024
  collectgarbage(); collectgarbage()
  local m1 = collectgarbage("count")
  local t0 = luact.clock.get()
  for i = 1, n do keep[i] = luact(keep[i]) end       -- the same bodies become actors
  local seconds = luact.clock.get() - t0
  collectgarbage(); collectgarbage()
  local with_actors = (collectgarbage("count") - m1) * 1024
  luact.stop(seconds, with_actors / n)
end)
common.report("spawn", { n = N, seconds = seconds, rate = N / seconds, bytes_per_actor = bytes },
  { "n", "seconds", "rate", "bytes_per_actor" })
