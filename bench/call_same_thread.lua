-- Sync calls per second to actors on the caller's own thread (one caller), two figures:
--   call_same_thread         64 actors called in turn (actor i % 64), each counting its calls;
--                            which actor, whether it is alive and the call's deadline change
--                            from one call to the next, so LuaJIT cannot hoist luact's per-call
--                            work out of the loop: this is what a same-thread call costs.
--   call_same_thread_1actor  one actor called in a loop: LuaJIT hoists that work out of the
--                            loop and what is left is about a plain Lua method call (shown for
--                            information only).
-- Every result is used and every actor's count checked at the end, so the calls did happen.
local common = require "bench.common"
local luact = require "luact"

local N, ACTORS = 3000000, 64
local rr, one = luact.start({ n_core = 1 }, function()
  local N, ACTORS = 3000000, 64
  local luact = require "luact"
  local function counter()
    return luact({ n = 0, hoge = function(self, x) self.n = self.n + 1; return x end,
                   get_n = function(self) return self.n end })
  end
  -- 64 actors in turn
  local as = {}
  for k = 1, ACTORS do as[k] = counter() end
  for i = 1, 64000 do as[i % ACTORS + 1]:hoge(i) end   -- warm up (JIT)
  local sum, t0 = 0, luact.clock.get()
  for i = 1, N do sum = sum + as[i % ACTORS + 1]:hoge(i) end
  local rr = luact.clock.get() - t0
  assert(sum == N * (N + 1) / 2, "the calls did not all happen")
  for k = 1, ACTORS do
    assert(as[k]:get_n() == (64000 + N) / ACTORS, "actor " .. k .. " did not count every call")
  end
  -- one actor
  local a = counter()
  for i = 1, 1000 do a:hoge(i) end
  sum, t0 = 0, luact.clock.get()
  for i = 1, N do sum = sum + a:hoge(i) end
  local one = luact.clock.get() - t0
  assert(sum == N * (N + 1) / 2 and a:get_n() == N + 1000, "the calls did not all happen")
  luact.stop(rr, one)
end)
common.report("call_same_thread", { n = N, actors = ACTORS, seconds = rr, rate = N / rr },
  { "n", "actors", "seconds", "rate" })
common.report("call_same_thread_1actor", { n = N, actors = 1, seconds = one, rate = N / one },
  { "n", "actors", "seconds", "rate" })
