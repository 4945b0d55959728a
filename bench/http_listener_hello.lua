-- luact's own http:// listener calling an actor (the server of the http_listener_hello case:
-- bench/sockets.sh drives `POST /hello/hi` with body "[]" with wrk). Usage:
-- luajit bench/http_listener_hello.lua PORT SECONDS. The listener and the actor are on thread 1
-- (a listener is served by the thread that opened it).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"
local port, seconds = tonumber(arg[1]), tonumber(arg[2])

luact.start({ n_core = 1, port = port, seconds = seconds }, function()
  local luact = require "luact"
  luact.register("/hello", { hi = function() return "hello" end })
  assert(luact.listen("http://127.0.0.1:" .. luact.opts.port))
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(luact.opts.seconds)
  luact.stop()
end)
