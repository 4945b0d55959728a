-- The long nemesis soak (run through bench/nemesis, inside a network namespace): one seeded
-- schedule of faults against a 5-member cluster with the checkers of
-- spec/helpers/nemesis_checks.lua; prints the schedule, the report and one JSON line.
-- Env: NEMESIS_SEED (default: from the time), NEMESIS_DURATION (s, default 600),
-- NEMESIS_CLASSES (comma-separated, default all of spec/helpers/nemesis.lua's), NEMESIS_NAMES
-- (virtual actors, default 6), NEMESIS_KEYS (db keys, default 3 per minute, for histories the
-- linearizability search handles), NEMESIS_KEEP=1 keeps the logs of a passing run.
package.path = "./spec/?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local nemesis = require "helpers.nemesis"
require("helpers.process").require_netns()

local seed = tonumber(os.getenv("NEMESIS_SEED") or "") or (os.time() % 1000000)
local duration = tonumber(os.getenv("NEMESIS_DURATION") or "") or 600
local classes = nemesis.CLASSES
if os.getenv("NEMESIS_CLASSES") then
  classes = {}
  for c in os.getenv("NEMESIS_CLASSES"):gmatch("[^,%s]+") do classes[#classes + 1] = c end
end
local r = nemesis.run({ seed = seed, duration = duration, classes = classes,
                        names = tonumber(os.getenv("NEMESIS_NAMES") or "") or 6,
                        keys = tonumber(os.getenv("NEMESIS_KEYS") or "") or math.max(3, math.floor(duration / 20)),
                        keep = os.getenv("NEMESIS_KEEP") == "1",
                        log = function(s) io.stdout:write(s, "\n"); io.stdout:flush() end })
print(r.report)
local s = r.stats
print(('{"bench":"nemesis","seed":%d,"duration_s":%d,"classes":"%s","rounds":%d,"db_ops":%d,"db_acked":%d,"calls":%d,"calls_answered":%d,"activations":%d,"max_rss_mb":%.1f,"lin_check_s":%.1f,"worst_answer_s":%.2f,"failures":%d}'):format(
  s.seed, s.duration, table.concat(classes, ","), s.rounds, s.db_ops, s.db_ok, s.calls, s.calls_ok, s.activations,
  s.max_rss_mb, s.lin_check_s, s.worst_answer_s, s.failures))
os.exit(r.ok and 0 or 1)
