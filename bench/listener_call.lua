-- Sync calls through another node's tcp:// listener (the path of a listener client: the body is
-- checked in Rust as untrusted input, the reply's references signed), with C concurrent callers
-- (`luajit bench/listener_call.lua C`). Each call passes a small table and gets back a reference.
-- Opens sockets: run it inside a network namespace (bench/limits_ab.sh does).
local common = require "bench.common"
local luact = require "luact"

local callers = tonumber(arg[1]) or 1
local total = callers == 1 and 20000 or 100000
local server = "127.0.0.1:7412"
local log = os.tmpname()
local p = io.popen(("luajit bench/node_server.lua 127.0.0.1:7411 %s >%s 2>&1 & echo $!"):format(server, log))
local pid = tonumber(p:read("*l"))
p:close()
local function cleanup() os.execute("kill " .. pid .. " 2>/dev/null"); os.remove(log) end
for _ = 1, 200 do
  local f = io.open(log); local s = f and f:read("*a") or ""; if f then f:close() end
  if s:find("ready") then break end
  os.execute("sleep 0.05")
end

local ok, seconds = pcall(luact.start, { n_core = 1, address = "127.0.0.1:7413", secret = "bench",
                                         callers = callers, total = total, server = server, timeout = 120 }, function()
  local luact = require "luact"
  local svc = luact.ref("tcp://" .. luact.opts.server .. "/bench/echo")
  local arg = { n = 1, name = "x", list = { 1, 2, 3 } }
  for _ = 1, 1000 do svc:get(arg) end                 -- connect, warm up
  local callers, total = luact.opts.callers, luact.opts.total
  local per = math.floor(total / callers)
  local clock = luact.clock
  local t0 = clock.get()
  local ts = {}
  for c = 1, callers do
    ts[c] = luact.tentacle(function()
      for _ = 1, per do svc:get(arg) end
    end)
  end
  luact.event.join(nil, unpack(ts))
  luact.stop(clock.get() - t0)
end)
cleanup()
if not ok then error(seconds, 0) end
common.report("listener_call_" .. callers, { n = total, callers = callers, seconds = seconds, rate = total / seconds },
  { "n", "callers", "seconds", "rate" })
