-- luact's own http:// listener calling an actor (the server of the http_listener_hello case:
-- bench/sockets.sh drives `POST /hello/hi` with body "[]" with wrk). Usage:
-- luajit bench/http_listener_hello.lua PORT SECONDS [N_CORE [multi]]. With N_CORE > 1 the
-- listener opens on every thread (threads = "all"); the actor lives on thread 1, or with
-- "multi" on every thread (multi_actor: calls are spread round robin over the threads).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"
local port, seconds, n_core, multi = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3] or 1), arg[4] == "multi"

luact.start({ n_core = n_core, port = port, seconds = seconds, multi = multi, spin = tonumber(os.getenv("SPIN") or "5e-4") }, function()
  local luact = require "luact"
  local hello = { hi = function() return "hello" end }
  if luact.opts.multi then
    luact.register("/hello", { multi_actor = true }, hello)
  elseif luact.thread_id == 1 then
    luact.register("/hello", hello)
  end
  if luact.thread_id ~= 1 then return end
  assert(luact.listen("http://127.0.0.1:" .. luact.opts.port, { threads = luact.opts.n_core > 1 and "all" or "this" }))
  luact.clock.sleep(0.2)   -- the other threads open theirs when they read thread 1's message
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(luact.opts.seconds)
  luact.stop()
end)
