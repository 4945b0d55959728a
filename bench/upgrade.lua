-- Upgrading virtual actors' code under calls (issue 26): 5 members (3 voters, the spec's
-- cluster members driven through spec/helpers/cluster_procs.lua), 1000 names (a fifth
-- registered on each member), 8 clients on member 5 calling them by name (default timeouts)
-- while member 2 upgrades every name (luact.register with upgrade = true, 64 at a time).
-- Reports the calls, the failed calls (target 0), the seconds until every upgrade was
-- committed and until every name answered its new code (asked from member 3, one name after
-- the other, so it includes those calls).
-- `luajit bench/upgrade.lua [names]`; opens sockets: run it inside a network namespace
-- (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"

local names = tonumber(arg[1]) or 1000
procs.setup()
local ok, err = pcall(function()
  assert(procs.start_all(30), "the cluster did not form")
  assert(procs.settle(40), "the cluster did not settle")
  local calls, failed, n, committed, took = procs.upgrade_under_load(names, 8)
  for _, f in ipairs(failed) do io.stderr:write("failed: ", f, "\n") end
  common.report("cluster_upgrade", { names = n, calls = calls, failed = #failed, commit_s = committed, upgrade_s = took },
    { "names", "calls", "failed", "commit_s", "upgrade_s" })
end)
procs.teardown()
if not ok then error(err, 0) end
