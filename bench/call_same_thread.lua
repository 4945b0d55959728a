-- Sync calls per second to an actor on the caller's own thread (one caller).
local common = require "bench.common"
local luact = require "luact"

local N = 3000000
local seconds = luact.start({ n_core = 1 }, function()
  local luact = require "luact"
  local a = luact({ n = 0, hoge = function(self, x) self.n = self.n + 1; return x end })
  for i = 1, 1000 do a:hoge(i) end   -- warm up (JIT)
  local t0 = luact.clock.get()
  for i = 1, 3000000 do a:hoge(i) end
  luact.stop(luact.clock.get() - t0)
end)
common.report("call_same_thread", { n = N, seconds = seconds, rate = N / seconds }, { "n", "seconds", "rate" })
