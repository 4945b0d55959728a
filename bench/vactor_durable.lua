-- Persistent virtual actors under kill -9 of their host: 3 voters + 2 followers (the spec's
-- cluster members, spec/nodes/cluster_node.lua, driven through spec/helpers/cluster_procs.lua),
-- a persistent counter registered on a follower, a caller on the other follower calling its
-- `incr` (one luact.save per call) by name every 10 ms; the host is killed (kill -9) after
-- 0.7 s. Per trial: acknowledged saves lost (an acknowledged value not exceeded by every later
-- one: the counter went backwards), and the time from the kill to the first answer of the new
-- activation (which started from the saved state). `luajit bench/vactor_durable.lua [trials]`;
-- prints one JSON line. Opens sockets: run it inside a network namespace (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"

local trials = tonumber(arg[1]) or tonumber(os.getenv("BENCH_TRIALS")) or 20

procs.setup()
local ok, err = pcall(function()
  -- (the spec's members stop by themselves after 120 s; 20 trials take longer: members that
  -- are not restarted by a trial must outlive them all)
  procs.start_all(30, procs.LONG_LIFE)
  local samples, lost, acked_total, missed, skipped = {}, 0, 0, 0, 0
  local function trial(t)
    local host, caller = t % 2 == 0 and 4 or 5, t % 2 == 0 and 5 or 4
    local vid = ("/bench/durable/%d"):format(t)
    assert(procs.wait_until(procs.calm, 30), "the cluster did not calm down")
    assert(procs.value(host, "preg", vid))
    local first = { procs.value(caller, "vcall", vid, "incr", 5) }
    assert(first[1] == true, ("trial %d: the first call failed: %s"):format(t, tostring(first[2])))
    assert(procs.value(caller, "start_counter", vid, 400, 0.01))
    os.execute("sleep 0.7")
    local t0 = procs.value(caller, "walltime")
    procs.kill(host)
    local acked
    procs.wait_until(function()
      local done, a = procs.value(caller, "counter", vid)
      acked = a
      return done
    end, 60)
    local last, first_new = 1, nil
    for _, a in ipairs(acked) do
      if a[1] <= last then lost = lost + 1 end
      if a[1] > last then last = a[1] end
      if not first_new and a[2] ~= procs.addr(host) and a[3] > t0 then first_new = a[3] end
    end
    acked_total = acked_total + #acked
    if first_new then samples[#samples + 1] = first_new - t0 else missed = missed + 1 end
    procs.start(host, procs.LONG_LIFE)
    procs.wait_rejoined(host, caller, 30)
  end
  for t = 1, trials do
    local tok, terr = pcall(trial, t)
    if not tok then
      -- (a shared machine under heavy load: a trial that could not start is counted, not fatal)
      skipped = skipped + 1
      io.stderr:write(("trial %d skipped: %s\n"):format(t, tostring(terr)))
      for i = 1, 5 do if not procs.pid(i) then pcall(procs.start, i, procs.LONG_LIFE) end end
    end
  end
  table.sort(samples)
  common.report("cluster_vactor_durable_kill", { trials = trials - skipped, skipped = skipped, acked = acked_total,
    lost_acked = lost, missed = missed, median_s = common.percentile(samples, 0.5),
    p99_s = common.percentile(samples, 0.99), max_s = samples[#samples] },
    { "trials", "skipped", "acked", "lost_acked", "missed", "median_s", "p99_s", "max_s" })
end)
procs.teardown()
if not ok then error(err, 0) end
