-- A rolling restart under load (issue 26): 5 members (3 voters, the spec's cluster members
-- driven through spec/helpers/cluster_procs.lua) restarted the graceful way one after the
-- other while 4 clients on a sixth member call 8 virtual actors by name and write to luact.db
-- (default timeouts). Reports failed calls and writes, acknowledged writes a read misses
-- afterwards (both targets 0), and the seconds the whole roll took.
-- `luajit bench/rolling_restart.lua`; opens sockets: run it inside a network namespace
-- (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"

procs.setup()
local ok, err = pcall(function()
  local calls, writes, failed, acked, missing, took = procs.roll_under_load(8, 4)
  for _, f in ipairs(failed) do io.stderr:write("failed: ", f, "\n") end
  common.report("cluster_rolling_restart", { calls = calls, writes = writes, acked = acked, failed = #failed,
    lost_acked = #missing, roll_s = took }, { "calls", "writes", "acked", "failed", "lost_acked", "roll_s" })
end)
procs.teardown()
if not ok then error(err, 0) end
