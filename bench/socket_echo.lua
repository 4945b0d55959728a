-- TCP echo on luact.socket: `luajit bench/socket_echo.lua server PORT SECONDS` serves lines on
-- two threads; `luajit bench/socket_echo.lua client PORT SECONDS CONNS` runs CONNS connections
-- (one tentacle each, one thread) sending a 32-byte line and waiting for its echo, and prints
-- {"case":"socket_echo","impl":"luact","rate":..,"p50_us":..,"p99_us":..}. bench/sockets.sh
-- runs both inside a network namespace.
package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"
local mode, port, seconds, conns = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4] or 64)

if mode == "server" then
  luact.start({ n_core = 2, port = port, seconds = seconds }, function()
    local luact = require "luact"
    if luact.thread_id ~= 1 then return end
    assert(luact.socket.listen("tcp://127.0.0.1:" .. luact.opts.port, function(sock)
      sock:settimeout(0)
      while true do
        local line = sock:receive("*l")
        if not line then return end
        sock:send(line .. "\n")
      end
    end, { threads = "all" }))
    io.stdout:write("ready\n"); io.stdout:flush()
    luact.clock.sleep(luact.opts.seconds)
    luact.stop()
  end)
  return
end

local common = require "bench.common"
local r = luact.start({ n_core = 1, port = port, seconds = seconds, conns = conns }, function()
  local luact = require "luact"
  local o = luact.opts
  local clock = luact.clock
  local until_t = clock.get() + o.seconds
  local count, samples, ts = 0, {}, {}
  local line = ("x"):rep(31) .. "\n"
  for i = 1, o.conns do
    ts[i] = luact.tentacle(function()
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. o.port))
      local n = 0
      while true do
        local t0 = clock.get()
        if t0 >= until_t then break end
        s:send(line)
        assert(s:receive("*l"))
        n = n + 1
        if n % 16 == 0 then samples[#samples + 1] = (clock.get() - t0) * 1e6 end
      end
      count = count + n
      s:close()
    end)
  end
  for i = 1, o.conns do luact.event.wait(nil, ts[i]) end
  table.sort(samples)
  local common = require "bench.common"
  luact.stop({ rate = count / o.seconds, p50 = common.percentile(samples, 0.5), p99 = common.percentile(samples, 0.99) })
end)
common.report("socket_echo", { conns = conns, rate = r.rate, p50_us = r.p50, p99_us = r.p99 }, { "conns", "rate", "p50_us", "p99_us" })
