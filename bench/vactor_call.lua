-- Calls by name to a virtual actor on another node against calls by direct reference to the
-- same activation, in one run (`luajit bench/vactor_call.lua C`, C concurrent callers): this
-- process joins a one-voter cluster (bench/vactor_server.lua) as a follower and alternates
-- rounds of luact.ref("/bench/room"):hoge(i) and resolved:hoge(i). Also registrations/s
-- (luact.register of new names, each a Raft write, from this follower). Opens sockets: run it
-- inside a network namespace (bench/run does).
local common = require "bench.common"
local luact = require "luact"

local callers = tonumber(arg[1]) or 1
local per_round = callers == 1 and 10000 or 100000
local server = "127.0.0.1:7502"
local dir = os.tmpname()
os.remove(dir)
local log = os.tmpname()
local p = io.popen(("luajit bench/vactor_server.lua %s %s >%s 2>&1 & echo $!"):format(server, dir, log))
local pid = tonumber(p:read("*l"))
p:close()
local function cleanup() os.execute("kill " .. pid .. " 2>/dev/null"); os.remove(log); os.execute("rm -rf " .. dir) end
for _ = 1, 200 do
  local f = io.open(log); local s = f and f:read("*a") or ""; if f then f:close() end
  if s:find("ready") then break end
  os.execute("sleep 0.05")
end

local ok, by_name, direct, regs = pcall(luact.start, { n_core = 1, address = "127.0.0.1:7503", secret = "bench",
    seeds = { server }, callers = callers, per_round = per_round, timeout = 120 }, function()
  local luact = require "luact"
  local named = luact.ref("/bench/room")
  local deadline = luact.clock.get() + 10
  while not luact.resolve("/bench/room") and luact.clock.get() < deadline do luact.clock.sleep(0.01) end
  local resolved = luact.resolve("/bench/room")
  -- measure the steady state: calls by name take a careful path for 10 s after any membership
  -- change (this process just joined)
  local view = require "luact.cluster.view"
  while luact.clock.get() < view.turbulent_until do luact.clock.sleep(0.1) end
  for i = 1, 1000 do named:hoge(i); resolved:hoge(i) end     -- connect, warm up
  local callers, per_round = luact.opts.callers, luact.opts.per_round
  local clock = luact.clock
  local function round(target)
    local per = math.floor(per_round / callers)
    local t0 = clock.get()
    local ts = {}
    for c = 1, callers do
      ts[c] = luact.tentacle(function() for i = 1, per do target:hoge(i) end end)
    end
    luact.event.join(nil, unpack(ts))
    return per * callers / (clock.get() - t0)
  end
  local by_name, direct = {}, {}
  for r = 1, 3 do
    by_name[r] = round(named)
    direct[r] = round(resolved)
  end
  table.sort(by_name); table.sort(direct)
  -- registrations from this follower, one after the other
  local n, t0 = 200, clock.get()
  for i = 1, n do
    luact.register("/bench/r" .. i, function() return { hoge = function(self, x) return x end } end)
  end
  luact.stop(by_name[2], direct[2], n / (clock.get() - t0))
end)
cleanup()
if not ok then error(by_name, 0) end
common.report("cluster_vactor_call_" .. callers, { callers = callers, rate_by_name = by_name, rate_direct = direct,
  ratio = by_name / direct, registrations_per_s = regs },
  { "callers", "rate_by_name", "rate_direct", "ratio", "registrations_per_s" })
