-- Sync calls from this node to an actor on another node process over the node transport, with C
-- concurrent callers (`luajit bench/node_call.lua C [tls]`; node_call_1.lua and node_call_64.lua
-- set C, node_call_tls_1.lua and node_call_tls_64.lua add `tls`: both nodes' links in mutual TLS,
-- with certificates made by openssl for the run). Opens sockets: run it inside a network
-- namespace (bench/run does).
local common = require "bench.common"
local luact = require "luact"

local callers = tonumber(arg[1]) or 1
local tls = arg[2] == "tls"
local total = callers == 1 and 20000 or 200000
local server = "127.0.0.1:7402"
local log = os.tmpname()
local certs, dir, client_tls, server_args = nil, nil, nil, ""
if tls then
  certs = require "helpers.certs"
  dir = certs.make("127.0.0.1")
  -- both nodes are on 127.0.0.1; the DNS name is for Erlang's TLS distribution, which bench/run
  -- gives the same certificates
  local cert, key = certs.node(dir, "node", { "127.0.0.1", "DNS:127.0.0.1" })
  client_tls = { cert = cert, key = key, ca = dir .. "/ca.pem" }
  server_args = (" %s %s %s"):format(cert, key, dir .. "/ca.pem")
end
local p = io.popen(("luajit bench/node_server.lua 127.0.0.1:7401 %s%s >%s 2>&1 & echo $!"):format(server, server_args, log))
local pid = tonumber(p:read("*l"))
p:close()
local function cleanup()
  os.execute("kill " .. pid .. " 2>/dev/null"); os.remove(log)
  if dir then os.execute("rm -rf " .. dir) end
end
for _ = 1, 200 do
  local f = io.open(log); local s = f and f:read("*a") or ""; if f then f:close() end
  if s:find("ready") then break end
  os.execute("sleep 0.05")
end

-- CPU seconds used so far by this process and the server (user + system, from /proc): what a
-- call costs, less swayed than the rate by other work on a shared machine.
local function cpu_of(which)
  local f = io.open("/proc/" .. which .. "/stat")
  if not f then return 0 end
  local s = f:read("*a"); f:close()
  local fields = {}
  for x in s:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100      -- utime, stime (fields 14, 15)
end
local function cpu() return cpu_of("self") + cpu_of(pid) end

local ok, seconds, lat, cpu_used = pcall(luact.start, { n_core = 1, address = "127.0.0.1:7403", secret = "bench",
                                              callers = callers, total = total, server = server, timeout = 120,
                                              tls = client_tls, cpu = cpu }, function()
  local luact = require "luact"
  local echo = luact.ref("tcp://" .. luact.opts.server .. "/bench/echo"):get()
  for i = 1, 1000 do echo:hoge(i) end                 -- connect, warm up
  local callers, total = luact.opts.callers, luact.opts.total
  local per = math.floor(total / callers)
  local lat = {}
  local clock = luact.clock
  local cpu0 = luact.opts.cpu()
  local t0 = clock.get()
  local ts = {}
  for c = 1, callers do
    ts[c] = luact.tentacle(function()
      for i = 1, per do
        local s = clock.get()
        local r = echo:hoge(i)
        if callers == 1 then lat[i] = clock.get() - s end
        -- every call is checked: a rate is reported only for calls that did the round trip
        if r ~= i then error(("call %d came back with %s"):format(i, tostring(r)), 0) end
      end
    end)
  end
  luact.event.join(nil, unpack(ts))
  luact.stop(clock.get() - t0, lat, luact.opts.cpu() - cpu0)
end)
cleanup()
if not ok then error(seconds, 0) end
table.sort(lat)
local fields = { n = total, callers = callers, seconds = seconds, rate = total / seconds,
                 cpu_us_per_call = cpu_used and cpu_used / (math.floor(total / callers) * callers) * 1e6 }
if callers == 1 then
  fields.p50_us = common.percentile(lat, 0.5) * 1e6
  fields.p99_us = common.percentile(lat, 0.99) * 1e6
end
common.report("node_call_" .. (tls and "tls_" or "") .. callers, fields, { "n", "callers", "seconds", "rate", "cpu_us_per_call", "p50_us", "p99_us" })
