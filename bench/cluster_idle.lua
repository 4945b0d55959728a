-- What an idle cluster member costs: 3 voters + 2 followers (the spec's cluster members,
-- spec/nodes/cluster_node.lua, two threads each, driven through spec/helpers/cluster_procs.lua)
-- with no traffic at all after they formed the cluster. Each member's CPU time (user + system,
-- every thread, from /proc/PID/stat) over BENCH_IDLE_SECONDS (default 20) of wall time, as a
-- percentage of one core: the leader's, the median member's and the busiest member's. What runs
-- while idle: SWIM probes, Raft heartbeats, lease renewals and the followers' feed renewals.
-- `luajit bench/cluster_idle.lua`; prints one JSON line. Opens sockets: run it inside a network
-- namespace (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"

local SECONDS = tonumber(os.getenv("BENCH_IDLE_SECONDS")) or 20
local HZ = 100      -- USER_HZ: the unit of /proc/PID/stat's times on Linux

local function cpu_ticks(pid)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  -- fields after the command (which may hold spaces) start at field 3; utime and stime are 14, 15
  local rest = s:match("%) (.*)$")
  local fields = {}
  for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
  return tonumber(fields[12]) + tonumber(fields[13])
end

local function walltime()
  local f = io.popen("date +%s.%N")
  local t = tonumber(f:read("*a"))
  f:close()
  return t
end

procs.setup()
local ok, err = pcall(function()
  -- (the spec's members stop by themselves after 120 s: enough here)
  assert(procs.start_all(30), "the cluster did not form")
  assert(procs.wait_until(procs.calm, 30), "the cluster did not calm down")
  os.execute("sleep 3")
  local leader = procs.leader_no()
  local before, t0 = {}, walltime()
  for i = 1, 5 do before[i] = cpu_ticks(procs.pid(i)) end
  os.execute(("sleep %d"):format(SECONDS))
  local t1 = walltime()
  local pct = {}
  for i = 1, 5 do
    local after = cpu_ticks(procs.pid(i))
    assert(before[i] and after, "member " .. i .. " is gone")
    pct[i] = (after - before[i]) / HZ / (t1 - t0) * 100
  end
  local leader_pct = leader and pct[leader] or nil
  table.sort(pct)
  common.report("cluster_idle_cpu", { seconds = SECONDS, cpu_percent_leader = leader_pct,
    cpu_percent_median = pct[3], cpu_percent_max = pct[5] },
    { "seconds", "cpu_percent_leader", "cpu_percent_median", "cpu_percent_max" })
end)
procs.teardown()
if not ok then error(err, 0) end
