-- Reminders at scale (issue 25): 10 000 names registered on a 5-member cluster (3 voters; the
-- spec's members driven through spec/helpers/cluster_procs.lua), each with a reminder every
-- 1 s from a common start time t0; after the beats ran for BENCH_REMINDER_SECONDS (10), the
-- lateness of every beat against its due time t0 + k (wall clock; one machine, so one clock)
-- is gathered from every member. Reports beats (and per name per second: about 1, else beats
-- were skipped), p50/p99/max lateness in ms (target p99 <= 50).
-- `luajit bench/reminders.lua [names]`; opens sockets: run it in a network namespace
-- (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"

local names = tonumber(arg[1]) or 10000
local seconds = tonumber(os.getenv("BENCH_REMINDER_SECONDS")) or 10

procs.setup()
local ok, err = pcall(function()
  assert(procs.start_all(30, procs.LONG_LIFE), "the cluster did not form")
  -- beats start well after every name and reminder is set (about 5 ms a name on a busy machine)
  local t0 = math.floor(procs.value(4, "walltime")) + math.ceil(names * 0.01) + 15
  assert(procs.value(4, "remind_many", "/bench/remind/", names, t0, 1))
  local set = procs.wait_until(function()
    local done, set = procs.value(4, "remind_progress")
    io.stderr:write(("names %d, reminders %d\n"):format(done, set))
    return done == names and set == names or nil
  end, t0 - procs.value(4, "walltime") - 2)
  assert(set, "the names and reminders were not all set in time")
  local now = procs.value(4, "walltime")
  assert(now < t0 - 2, ("setting the reminders took past t0 (%.1f s late)"):format(now - t0))
  os.execute(("sleep %.1f"):format(t0 - now + seconds + 0.5))
  local hist = {}
  local elapsed = procs.value(4, "walltime") - t0
  for i = 1, 5 do
    for ms, n in pairs(procs.value(i, "lateness")) do hist[#hist + 1] = { tonumber(ms), n } end
  end
  table.sort(hist, function(a, b) return a[1] < b[1] end)
  local total = 0
  for _, h in ipairs(hist) do total = total + h[2] end
  local function pct(p)
    local want, seen = math.ceil(p * total), 0
    for _, h in ipairs(hist) do
      seen = seen + h[2]
      if seen >= want then return h[1] end
    end
  end
  common.report("cluster_reminders", { names = names, seconds = seconds, beats = total,
    beats_per_name_s = total / names / elapsed, p50_ms = pct(0.5), p99_ms = pct(0.99), max_ms = hist[#hist] and hist[#hist][1] },
    { "names", "seconds", "beats", "beats_per_name_s", "p50_ms", "p99_ms", "max_ms" })
end)
procs.teardown()
if not ok then error(err, 0) end
