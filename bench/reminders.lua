-- Reminders at scale (issue 25): 10 000 names registered on a 5-member cluster (3 voters; the
-- spec's members driven through spec/helpers/cluster_procs.lua, with the default snapshot
-- interval), lazy, so that each reminder's
-- wake places its name by rendezvous hashing over the members and their 2 threads (across the
-- cluster, as activation on demand does); each name gets a reminder every 1 s from a common
-- start time t0. Once every name and reminder is set (and 2.5 s more), the lateness histograms
-- are emptied, and after BENCH_REMINDER_SECONDS (10) the lateness of every beat against its
-- due time t0 + k (wall clock; one machine, so one clock) is gathered from every VM (both
-- threads of every member). Reports beats (per name per second: about 1, else beats were
-- skipped), p50/p99/max lateness in ms (target p99 <= 50).
-- Then member 5 (not a voter) is killed with SIGKILL: for each name whose reminder beat there
-- in the 2 s before, the time from the kill to its first beat elsewhere (target <= 1.5 s):
-- fail_p50_s/fail_p99_s/fail_max_s, and fail_missing (names that never beat elsewhere within
-- 8 s). Also reports set_s, how long setting the names and reminders took.
-- `luajit bench/reminders.lua [names]`; opens sockets: run it in a network namespace
-- (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"
local clock = require "luact.clock"

local names = tonumber(arg[1]) or 10000
local seconds = tonumber(os.getenv("BENCH_REMINDER_SECONDS")) or 10
local VICTIM = 5

-- every VM of the members in `members`: { member, thread }
local function vms(members)
  local out = {}
  for _, i in ipairs(members) do
    out[#out + 1] = { i, 1 }
    out[#out + 1] = { i, 2 }
  end
  return out
end
local function on_member(vm, method, ...) return procs.value(vm[1], { method, thread = vm[2] }, ...) end

local function pct(sorted, p)
  if #sorted == 0 then return nil end
  return sorted[math.max(1, math.ceil(p * #sorted))]
end

procs.setup()
local ok, err = pcall(function()
  -- (the default snapshot interval, as bench/vactor_names.lua: the specs' 40 entries would make
  -- every member snapshot its registry of 10 000 names over and over while names move)
  assert(procs.start_all(30, "LUACT_SPEC_SNAPSHOT=2000 " .. procs.LONG_LIFE), "the cluster did not form")
  local started = procs.value(4, "walltime")
  -- beats begin while names are still being set; only those after the reset below count
  local t0 = math.floor(started) + 3
  assert(procs.value(4, "remind_many", "/bench/remind/", names, t0, 1, true))
  local set = procs.wait_until(function()
    local done, set = procs.value(4, "remind_progress")
    io.stderr:write(("%.1f s: names %d, reminders %d\n"):format(procs.value(4, "walltime") - started, done, set))
    return done == names and set == names or nil
  end, 300)
  assert(set, "the names and reminders were not all set in 300 s")
  local set_s = procs.value(4, "walltime") - started
  os.execute("sleep 2.5")
  local all = vms({ 1, 2, 3, 4, 5 })
  for _, vm in ipairs(all) do on_member(vm, "lateness", true) end
  os.execute(("sleep %.1f"):format(seconds))
  local counts = {}
  for _, vm in ipairs(all) do
    local beats, worst, sum = 0, nil, 0
    for ms, n in pairs(on_member(vm, "lateness")) do
      ms = tonumber(ms)
      counts[ms] = (counts[ms] or 0) + n
      beats, sum = beats + n, sum + ms * n
      if not worst or ms > worst then worst = ms end
    end
    io.stderr:write(("member %d thread %d: %d beats, mean %.0f ms, max %s ms late\n"):format(vm[1], vm[2], beats,
      beats > 0 and sum / beats or 0, tostring(worst)))
  end
  local hist = {}
  for ms, n in pairs(counts) do hist[#hist + 1] = { ms, n } end
  table.sort(hist, function(a, b) return a[1] < b[1] end)
  local total = 0
  for _, h in ipairs(hist) do total = total + h[2] end
  local function hpct(p)
    local want, seen = math.ceil(p * total), 0
    for _, h in ipairs(hist) do
      seen = seen + h[2]
      if seen >= want then return h[1] end
    end
  end

  -- failover: the names whose reminder beat on the victim in the last 2 s
  local before = procs.value(4, "walltime")
  local victims, nv = {}, 0
  for _, vm in ipairs(vms({ VICTIM })) do
    for vid in pairs((on_member(vm, "remind_seen", before - 2))) do
      victims[vid] = true
      nv = nv + 1
    end
  end
  assert(nv > 0, ("member %d hosted no reminder"):format(VICTIM))
  local killed = clock.walltime()          -- (this machine's wall clock, as the members')
  procs.signal(VICTIM, "KILL")
  procs.kill(VICTIM)         -- (keeps its output: after the signal, which it would delay)
  os.execute("sleep 8")
  local first = {}
  for _, vm in ipairs(vms({ 1, 2, 3, 4 })) do
    local _, firsts = on_member(vm, "remind_seen", killed)
    for vid, t in pairs(firsts) do
      if victims[vid] and (not first[vid] or t < first[vid]) then first[vid] = t end
    end
  end
  local delays, missing = {}, 0
  for vid in pairs(victims) do
    if first[vid] then delays[#delays + 1] = first[vid] - killed else missing = missing + 1 end
  end
  table.sort(delays)
  common.report("cluster_reminders", { names = names, set_s = set_s, seconds = seconds, beats = total,
    beats_per_name_s = total / names / seconds, p50_ms = hpct(0.5), p99_ms = hpct(0.99),
    max_ms = hist[#hist] and hist[#hist][1], fail_names = nv, fail_p50_s = pct(delays, 0.5),
    fail_p99_s = pct(delays, 0.99), fail_max_s = delays[#delays], fail_missing = missing },
    { "names", "set_s", "seconds", "beats", "beats_per_name_s", "p50_ms", "p99_ms", "max_ms",
      "fail_names", "fail_p50_s", "fail_p99_s", "fail_max_s", "fail_missing" })
end)
procs.teardown()
if not ok then error(err, 0) end
