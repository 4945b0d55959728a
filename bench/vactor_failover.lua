-- Failover of a virtual actor: 3 voters + 2 followers (the spec's cluster members,
-- spec/nodes/cluster_node.lua, driven through spec/helpers/cluster_procs.lua), a name registered
-- on a follower, a caller on another follower calling it by name every 5 ms; the host is killed
-- (kill -9), stopped (SIGSTOP) or cut off from every other member by an nftables partition
-- that drops (drop) or answers with TCP resets (reject), and the time from the fault to the
-- first answer from the new activation (wall clock: one machine) is recorded.
-- `luajit bench/vactor_failover.lua kill|stop|drop|reject [trials]`; prints one JSON line
-- (median, p99, max). Opens sockets: run it inside a network
-- namespace (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"

local mode = arg[1] or "kill"
assert(({ kill = true, stop = true, drop = true, reject = true })[mode], "mode: kill, stop, drop or reject")
local trials = tonumber(arg[2]) or tonumber(os.getenv("BENCH_TRIALS")) or 20

procs.setup()
local ok, err = pcall(function()
  -- (the spec's members stop by themselves after 120 s; 20 trials take longer: members that
  -- are not restarted by a trial must outlive them all)
  procs.start_all(30, procs.LONG_LIFE)
  local samples = {}
  for t = 1, trials do
    local host, caller = t % 2 == 0 and 4 or 5, t % 2 == 0 and 5 or 4
    local vid = ("/bench/failover/%s/%d"):format(mode, t)
    assert(procs.value(host, "vreg", vid, t))
    assert(procs.value(caller, "vcall", vid, "where", 5) == true)
    assert(procs.value(caller, "start_failover_probe", vid, procs.addr(host), 30))
    os.execute("sleep 0.2")
    local t0 = procs.value(caller, "walltime")
    if mode == "kill" then procs.kill(host)
    elseif mode == "stop" then procs.signal(host, "STOP")
    else procs.isolate(host, mode) end
    local r = procs.wait_until(function() return procs.value(caller, "failover_result") end, 40)
    assert(r and r[1], "no new activation answered")
    samples[#samples + 1] = r[1] - t0
    if mode == "kill" then procs.start(host, procs.LONG_LIFE)
    elseif mode == "stop" then procs.signal(host, "CONT")
    else procs.heal() end
    -- back to a calm cluster of 5 before the next trial
    procs.wait_rejoined(host, caller, 30)
  end
  table.sort(samples)
  common.report("cluster_vactor_failover_" .. mode, { trials = #samples, median_s = common.percentile(samples, 0.5),
    p99_s = common.percentile(samples, 0.99), max_s = samples[#samples] }, { "trials", "median_s", "p99_s", "max_s" })
end)
procs.teardown()
if not ok then error(err, 0) end
