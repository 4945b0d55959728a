-- The server side of the cross-node benchmarks: a node at ADDRESS with an echo actor whose
-- reference it hands out through tcp://LISTEN/bench/echo (`luajit bench/node_server.lua ADDRESS
-- LISTEN_ADDR [CERT KEY CA]`; with the three PEM paths its node links are mutual TLS). Stops by
-- itself after 120 s.
require "bench.common"
local luact = require "luact"
local tls = arg[5] and { cert = arg[3], key = arg[4], ca = arg[5] } or nil
luact.start({ n_core = 1, address = arg[1], secret = "bench", listen = arg[2], timeout = 130, tls = tls }, function()
  local luact = require "luact"
  local echo = luact({ hoge = function(self, x) return x end })
  luact.register("/bench/echo", { get = function() return echo end })
  luact.listen("tcp://" .. luact.opts.listen)
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(120)
  luact.stop()
end)
