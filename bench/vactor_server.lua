-- The host side of bench/vactor_call.lua: a one-voter cluster at ADDRESS (its own seed) that
-- registers the virtual actor /bench/room and prints "ready" (`luajit bench/vactor_server.lua
-- ADDRESS DATADIR`). Stops by itself after 120 s.
require "bench.common"
local luact = require "luact"
luact.start({ n_core = 1, address = arg[1], secret = "bench", seeds = { arg[1] }, datadir = arg[2],
              timeout = 130 }, function()
  local luact = require "luact"
  while not luact.cluster.leader() do luact.clock.sleep(0.01) end
  luact.register("/bench/room", function() return { hoge = function(self, x) return x end } end)
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(120)
  luact.stop()
end)
