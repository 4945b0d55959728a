-- Sync calls from this node to an actor on another node process over the node transport, with C
-- concurrent callers (`luajit bench/node_call.lua C`; node_call_1.lua and node_call_64.lua set
-- C). Opens sockets: run it inside a network namespace (bench/run does).
local common = require "bench.common"
local luact = require "luact"

local callers = tonumber(arg[1]) or 1
local total = callers == 1 and 20000 or 200000
local server = "127.0.0.1:7402"
local log = os.tmpname()
local p = io.popen(("luajit bench/node_server.lua 127.0.0.1:7401 %s >%s 2>&1 & echo $!"):format(server, log))
local pid = tonumber(p:read("*l"))
p:close()
local function cleanup() os.execute("kill " .. pid .. " 2>/dev/null"); os.remove(log) end
for _ = 1, 200 do
  local f = io.open(log); local s = f and f:read("*a") or ""; if f then f:close() end
  if s:find("ready") then break end
  os.execute("sleep 0.05")
end

local ok, seconds, lat = pcall(luact.start, { n_core = 1, address = "127.0.0.1:7403", secret = "bench",
                                              callers = callers, total = total, server = server, timeout = 120 }, function()
  local luact = require "luact"
  local echo = luact.ref("tcp://" .. luact.opts.server .. "/bench/echo"):get()
  for i = 1, 1000 do echo:hoge(i) end                 -- connect, warm up
  local callers, total = luact.opts.callers, luact.opts.total
  local per = math.floor(total / callers)
  local lat = {}
  local clock = luact.clock
  local t0 = clock.get()
  local ts = {}
  for c = 1, callers do
    ts[c] = luact.tentacle(function()
      for i = 1, per do
        local s = clock.get()
        echo:hoge(i)
        if callers == 1 then lat[i] = clock.get() - s end
      end
    end)
  end
  luact.event.join(nil, unpack(ts))
  luact.stop(clock.get() - t0, lat)
end)
cleanup()
if not ok then error(seconds, 0) end
table.sort(lat)
local fields = { n = total, callers = callers, seconds = seconds, rate = total / seconds }
if callers == 1 then
  fields.p50_us = common.percentile(lat, 0.5) * 1e6
  fields.p99_us = common.percentile(lat, 0.99) * 1e6
end
common.report("node_call_" .. callers, fields, { "n", "callers", "seconds", "rate", "p50_us", "p99_us" })
