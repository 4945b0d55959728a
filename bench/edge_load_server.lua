-- The node of the edge_load case (bench/edge_load.py): an http:// listener with the default
-- limits in front of an echo actor, one thread. `luajit bench/edge_load_server.lua PORT SECONDS`.
require "bench.common"
local luact = require "luact"
luact.start({ n_core = 1, port = tonumber(arg[1]), seconds = tonumber(arg[2]) }, function()
  local luact = require "luact"
  luact.register("/echo", { back = function(_, x) return x end })
  luact.listen("http://127.0.0.1:" .. luact.opts.port)
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(luact.opts.seconds)
  luact.stop()
end)
