-- Sync calls per second to an actor on the caller's own thread (one caller).
local common = require "bench.common"
local luact = require "luact"

local N = 3000000
local seconds = luact.start({ n_core = 1 }, function()
  local luact = require "luact"
  local a = luact({ n = 0, hoge = function(self, x) self.n = self.n + 1; return x end,
                    get_n = function(self) return self.n end })
  for i = 1, 1000 do a:hoge(i) end   -- warm up (JIT)
  -- every result is used and the actor's count checked, so the compiler cannot drop the calls
  local sum, t0 = 0, luact.clock.get()
  for i = 1, 3000000 do sum = sum + a:hoge(i) end
  local dt = luact.clock.get() - t0
  assert(sum == 3000000 * 3000001 / 2 and a:get_n() == 3001000, "the calls did not all happen")
  luact.stop(dt)
end)
common.report("call_same_thread", { n = N, seconds = seconds, rate = N / seconds }, { "n", "seconds", "rate" })
