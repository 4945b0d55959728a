-- A keep-alive HTTP/1.1 "hello" server written on luact.socket (the server of the
-- socket_http_hello case: bench/sockets.sh drives it with wrk and compares nginx with
-- lua-nginx-module). Usage: luajit bench/socket_http_hello.lua PORT SECONDS [N_CORE]
-- Accepts on every thread; prints "ready" once listening; stops after SECONDS.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"
local port, seconds, n_core = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3] or 2)

luact.start({ n_core = n_core, port = port, seconds = seconds }, function()
  local luact = require "luact"
  if luact.thread_id ~= 1 then return end
  assert(luact.socket.listen("tcp://127.0.0.1:" .. luact.opts.port, function(sock)
    local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"
    sock:settimeout(0)
    while true do
      local line = sock:receive("*l")        -- the request line
      if not line then return end
      local close = false
      repeat                                  -- headers, up to the empty line
        line = sock:receive("*l")
        if not line then return end
        if line:lower() == "connection: close" then close = true end
      until line == ""
      sock:send(RESPONSE)
      if close then return end
    end
  end, { threads = "all", max_connections = 4096 }))
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(luact.opts.seconds)
  luact.stop()
end)
