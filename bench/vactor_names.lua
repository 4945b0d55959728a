-- Many virtual actors that are registered but not active (luact.register(vid, { lazy = true,
-- persist = true }, ...)): 3 voters + 2 followers (the spec's cluster members,
-- spec/nodes/cluster_node.lua, driven through spec/helpers/cluster_procs.lua). A follower
-- registers N names (BENCH_NAMES, default 100 000; 256 registrations in flight, 1 000 per
-- control call; a call that does not end within 20 s ends the registering and is reported as
-- `stalled_at`, the names registered before it), then activates
-- A of them (BENCH_ACTIVE, default 1 000) by a first call from another follower, one after the
-- other. Reports the registration rate, the memory per inactive name on every member (thread
-- 1's Lua heap, which holds the registry replica, and the process's RSS, which also holds the
-- name table; both after a full collection, as a difference against before the registrations),
-- and the latency of a first call to an inactive name (it asks the leader to place the name,
-- waits for the activation to be created on its host, then calls it).
-- `luajit bench/vactor_names.lua`; prints one JSON line. Opens sockets: run it inside a network
-- namespace (bench/run does).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local common = require "bench.common"
local procs = require "helpers.cluster_procs"

local N = tonumber(os.getenv("BENCH_NAMES")) or 100000
local ACTIVE = tonumber(os.getenv("BENCH_ACTIVE")) or 1000
local PREFIX = "/bench/names/"
local BATCH = 1000             -- names per ctl call (each call must end within its 20 s timeout)

-- the spec's members snapshot every 40 entries and stop after 120 s: not here
local ENV = "LUACT_SPEC_SNAPSHOT=2000 " .. procs.LONG_LIFE

procs.setup()
local ok, err = pcall(function()
  for i = 1, 5 do procs.start(i, ENV) end
  assert(procs.wait_until(function()
    for i = 1, 5 do
      if #procs.value(i, "members") ~= 5 or not procs.value(i, "leader") then return nil end
    end
    return true
  end, 30), "the cluster did not form")
  local before = {}
  for i = 1, 5 do before[i] = { procs.value(i, "mem") } end
  local registered, failed, took, stalled = 0, 0, 0, nil
  for from = 1, N, BATCH do
    local r = procs.call(4, "lazy_many", PREFIX, from, math.min(from + BATCH - 1, N), 256)
    if not r[1] then
      -- a batch that did not end within the control call's 20 s: the registry stalled; measure
      -- what was registered (the names of the unfinished batch are not counted)
      stalled = registered
      io.stderr:write(("registering stalled after %d names: %s\n"):format(registered, tostring(r[2])))
      break
    end
    registered, failed, took = registered + r[2], failed + r[3], took + r[4]
    io.stderr:write(("registered %d names, the last %d at %.0f/s\n"):format(registered, r[2], r[2] / r[4]))
  end
  -- every member holds every name (bounded wait: followers apply the leader's feed)
  assert(procs.wait_until(function()
    for i = 1, 5 do
      if #procs.value(i, "vstates", PREFIX .. registered) ~= 1 then return nil end
    end
    return true
  end, 120), "not every member holds the last name")
  local lua_per, rss_per = {}, {}
  for i = 1, 5 do
    local lua_b, rss_b = procs.value(i, "mem")
    lua_per[i] = (lua_b - before[i][1]) / registered
    rss_per[i] = (rss_b - before[i][2]) / registered
  end
  local lat, call_failed = procs.value(5, "first_calls", PREFIX, registered, math.min(ACTIVE, registered), 10)
  local fields = { names = registered, stalled_at = stalled, register_failed = failed, register_per_s = registered / took,
    active = #lat, first_call_failed = call_failed,
    first_call_p50_ms = (common.percentile(lat, 0.5) or 0) * 1e3,
    first_call_p99_ms = (common.percentile(lat, 0.99) or 0) * 1e3,
    lua_bytes_per_name_voter = math.floor(math.max(lua_per[1], lua_per[2], lua_per[3])),
    lua_bytes_per_name_follower = math.floor(math.max(lua_per[4], lua_per[5])),
    rss_bytes_per_name_max = math.floor(math.max(unpack(rss_per))) }
  common.report("cluster_vactor_names", fields, { "names", "stalled_at", "register_failed", "register_per_s", "active",
    "first_call_failed", "first_call_p50_ms", "first_call_p99_ms", "lua_bytes_per_name_voter",
    "lua_bytes_per_name_follower", "rss_bytes_per_name_max" })
end)
procs.teardown()
if not ok then error(err, 0) end
