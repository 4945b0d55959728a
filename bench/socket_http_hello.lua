-- A keep-alive HTTP/1.1 "hello" server written on luact.socket (the server of the
-- socket_http_hello case: bench/sockets.sh drives it with wrk and compares nginx with
-- lua-nginx-module). Usage: luajit bench/socket_http_hello.lua PORT SECONDS [N_CORE]
-- Accepts on every thread; prints "ready" once listening; stops after SECONDS.
-- It does the work nginx does for its peer: parses the request line (method, path, version)
-- and every header (name and value, names case-insensitive), routes on the path ("/" answers
-- hello, any other path 404, as nginx's `location = /` and `location /` do), answers a
-- malformed request line with 400 and closes, and honours "Connection: close".
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"
local port, seconds, n_core = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3] or 2)

luact.start({ n_core = n_core, port = port, seconds = seconds }, function()
  local luact = require "luact"
  if luact.thread_id ~= 1 then return end
  assert(luact.socket.listen("tcp://127.0.0.1:" .. luact.opts.port, function(sock)
    local HELLO = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"
    local NOT_FOUND = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n"
    local BAD = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    local routes = { ["/"] = HELLO }     -- on the path alone, as nginx's locations are
    sock:settimeout(0)
    while true do
      local line = sock:receive("*l")        -- the request line
      if not line then return end
      local method, target, minor = line:match("^(%u+) (%S+) HTTP/1%.([01])$")
      if not method then sock:send(BAD); return end
      local path = target:match("^[^?#]*")
      local headers = {}
      repeat                                  -- headers, up to the empty line
        line = sock:receive("*l")
        if not line then return end
        if line ~= "" then
          local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
          if not name then sock:send(BAD); return end
          headers[name:lower()] = value
        end
      until line == ""
      sock:send(routes[path] or NOT_FOUND)
      local conn = headers.connection
      if (conn and conn:lower() == "close") or (minor == "0" and not (conn and conn:lower() == "keep-alive")) then
        return
      end
    end
  end, { threads = "all", max_connections = 4096 }))
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(luact.opts.seconds)
  luact.stop()
end)
