-- Spec helpers for a cluster of real `luajit` processes (spec/nodes/cluster_node.lua) on
-- 127.0.0.1-5 inside the spec's network namespace: start, kill, stop and restart members, call
-- their control actors (/ctl on thread 1, /ctl2 on thread 2) through their tcp:// listeners, and
-- cut a member off with nftables.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

local procs = {}

procs.VOTERS = { 1, 2, 3 }
procs.SEEDS = "127.0.0.1:7001,127.0.0.2:7002,127.0.0.3:7003"

function procs.addr(i) return ("127.0.0.%d:700%d"):format(i, i) end
function procs.ctl(i, thread)
  return ("tcp://127.0.0.%d:800%d/%s"):format(i, i, thread == 2 and "ctl2" or "ctl")
end

local running = {}       -- i -> process
local datadir = nil
local with_datadir = {}  -- i -> true: a member past 3 started with a datadir (it may become a voter)

-- Members i > 3 started from now on get a datadir too (they can be added as voters).
function procs.give_datadir(i) with_datadir[i] = true end

function procs.setup()
  process.require_netns()
  os.execute("rm -rf spec/tmp/cluster")
  os.execute("ip link set lo up")
  datadir = os.tmpname()
  os.remove(datadir)
  assert(os.execute("mkdir -p " .. datadir) == 0)
end

-- Starts member i (a voter when i is 1..3), waiting until it is ready.
function procs.start(i, env)
  local dir = (i <= 3 or with_datadir[i]) and (datadir .. "/n" .. i) or "-"
  -- snapshots every 40 entries: the specs' few hundred writes then also exercise compaction,
  -- InstallSnapshot to a restarted voter and the feed's snapshot to a restarted follower
  local p = process.spawn(("LUACT_SPEC_SNAPSHOT=40 %sluajit spec/nodes/cluster_node.lua %s %s %s tcp://127.0.0.%d:800%d"):format(
    env or "", procs.addr(i), procs.SEEDS, dir, i, i))
  running[i] = p
  process.wait_for(p, "ready", 20)
  return p
end

-- Starts member i when it may refuse to start: waits (bounded) until it is ready (returns true;
-- it then runs as after procs.start) or its process has exited (returns false and what it
-- printed). Errors if neither happens within `timeout` s.
function procs.start_or_refused(i, env, timeout)
  local dir = (i <= 3 or with_datadir[i]) and (datadir .. "/n" .. i) or "-"
  local p = process.spawn(("LUACT_SPEC_SNAPSHOT=40 %sluajit spec/nodes/cluster_node.lua %s %s %s tcp://127.0.0.%d:800%d"):format(
    env or "", procs.addr(i), procs.SEEDS, dir, i, i))
  local deadline = os.time() + (timeout or 20)
  while os.time() <= deadline do
    local out = process.output(p)
    if out:find("ready") then
      running[i] = p
      return true, out
    end
    if os.execute(("kill -0 %d 2>/dev/null"):format(p.pid)) ~= 0 then
      process.cleanup(p)
      return false, out
    end
    os.execute("sleep 0.1")
  end
  process.cleanup(p)
  error(("member %d neither started nor exited in time"):format(i), 2)
end

-- Member i's datadir (voters only).
function procs.datadir(i) return datadir .. "/n" .. i end

function procs.pid(i) return running[i] and running[i].pid end

function procs.signal(i, sig)
  os.execute(("kill -%s %d 2>/dev/null"):format(sig, running[i].pid))
end

-- Keeps a member's output in spec/tmp/cluster/ (for a look after a failed run).
local function keep_log(i)
  os.execute("mkdir -p spec/tmp/cluster")
  local f = io.open(("spec/tmp/cluster/n%d.log"):format(i), "a")
  if f then
    f:write(process.output(running[i]))
    f:close()
  end
end

-- kill -9, and forget it.
function procs.kill(i)
  if running[i] then
    procs.signal(i, "CONT")
    keep_log(i)
    process.cleanup(running[i])
    running[i] = nil
  end
end

function procs.output(i) return running[i] and process.output(running[i]) or "" end

function procs.teardown()
  for i in pairs(running) do procs.kill(i) end
  procs.heal()
  if datadir then os.execute("rm -rf " .. datadir) end
  with_datadir = {}
end

-- Calls method on member i's control actor (thread 1, or 2) with args; returns
-- { ok, results... } (ok false: the error's name, or its text).
function procs.call(i, method, ...)
  local thread = 1
  if type(method) == "table" then method, thread = method[1], method.thread end
  local r = helpers.start({ n_core = 1, timeout = 30, url = procs.ctl(i, thread), method = method,
                            args = { n = select("#", ...), ... } }, function()
    local luact = require "luact"
    local o = luact.opts
    local ctl = luact.ref(o.url)
    local res = { pcall(ctl["timed_" .. o.method], ctl, 20, unpack(o.args, 1, o.args.n)) }
    if not res[1] and type(res[2]) == "table" then
      res[2] = res[2].name .. ": " .. tostring(res[2].message)
    end
    luact.stop({ n = #res, unpack(res) })
  end)
  return r
end

-- The result of a call that must succeed.
function procs.value(i, method, ...)
  local r = procs.call(i, method, ...)
  assert(r[1], ("member %d: %s failed: %s"):format(i, type(method) == "table" and method[1] or method, tostring(r[2])))
  return unpack(r, 2, r.n)
end

-- Polls fn() (bounded) until it returns a true value; returns that value, or nil after `timeout` s.
function procs.wait_until(fn, timeout)
  local deadline = os.time() + (timeout or 15)
  while os.time() <= deadline do
    local v = fn()
    if v then return v end
    os.execute("sleep 0.1")
  end
  return nil
end

-- Waits (bounded) until every running member sees every running member alive, knows the
-- leader, and holds its lease: a calm cluster to start a case from. true when it got there.
-- The wall time of the newest membership event (join, alive, suspect, dead, leave) any running
-- member saw, and how many there were.
local function newest_change()
  local newest, n = 0, 0
  for i in pairs(running) do
    local r = procs.call(i, "seen")
    for _, e in ipairs(r[1] and r[2] or {}) do
      if e[1] ~= "leader" then
        n = n + 1
        if e[3] > newest then newest = e[3] end
      end
    end
  end
  return newest, n
end

function procs.settle(timeout)
  -- calm, then calm again 2 s later with no membership event in between anywhere: news of a
  -- healed partition can still be going round (a member back from one is suspected, refutes,
  -- ...) while every member already sees every other alive
  return procs.wait_until(function()
    if not procs.calm() then return nil end
    local t, n = newest_change()
    os.execute("sleep 2")
    local t2, n2 = newest_change()
    return t == t2 and n == n2 and procs.calm()
  end, timeout or 30)
end

function procs.calm()
  return (function()
    local leader
    for i in pairs(running) do
      local ms = procs.call(i, "members")
      if not ms[1] then return nil end
      local alive = {}
      for _, m in ipairs(ms[2]) do if m.state == "alive" then alive[m.address] = true end end
      for j in pairs(running) do if not alive[procs.addr(j)] then return nil end end
      local t = procs.call(i, "lease_info")
      if not t[1] or not t[2].leader or t[2].until_ <= t[2].now then return nil end
      if leader and t[2].leader ~= leader then return nil end
      leader = t[2].leader
    end
    return true
  end)()
end

-- Member i as seen by member j: "alive", "suspect", "dead", "left" or nil.
function procs.state_seen(j, i)
  local r = procs.call(j, "member_state", procs.addr(i))
  return r[1] and r[2] or nil
end

-- nftables on loopback: each rule a (source ip, destination ip) pair of node ports; the specs'
-- control connections (listeners on 800x) stay up. how = "drop" (silence: the default) or
-- "reject" (dials refused and connections reset, as many firewalls and dead routes answer).
local function cut(pairs_, how)
  local verdict = how == "reject" and "reject with tcp reset" or "drop"
  os.execute("nft 'add table inet luact_part'")
  os.execute("nft 'add chain inet luact_part input { type filter hook input priority 0 ; }'")
  for _, p in ipairs(pairs_) do
    local src, dst = p[1] and ("ip saddr " .. p[1] .. " ") or "", p[2] and ("ip daddr " .. p[2] .. " ") or ""
    for _, ports in ipairs({ "tcp dport 7001-7005", "tcp sport 7001-7005" }) do
      local r = ("add rule inet luact_part input %s%s%s %s"):format(src, dst, ports, verdict)
      assert(os.execute("nft '" .. r .. "'") == 0, "nft failed: " .. r)
    end
  end
end

-- Cuts member i off from every other member.
function procs.isolate(i, how)
  local ip = "127.0.0." .. i
  cut({ { ip, nil }, { nil, ip } }, how)
end

-- Cuts members i and j off from each other only (both directions); each still talks to the rest.
function procs.cut_pair(i, j, how)
  local a, b = "127.0.0." .. i, "127.0.0." .. j
  cut({ { a, b }, { b, a } }, how)
end

function procs.heal()
  os.execute("nft delete table inet luact_part 2>/dev/null")
end

-- Member number of "127.0.0.N:port".
function procs.addr_no(a) return tonumber(a:match("^127%.0%.0%.(%d+)")) end

-- Calls vid.method by name from member i (thread 1), with a timeout; returns ok, results...
-- (or false and the error's name).
function procs.vcall(i, vid, method, t, ...)
  return procs.value(i, "vcall", vid, method, t, ...)
end

-- The Raft leader's member number, as member 5 knows it (bounded wait).
function procs.leader_no()
  local l = procs.wait_until(function() return procs.value(5, "leader") end, 10)
  assert(l, "no leader known")
  return procs.addr_no(l)
end

-- The first member (1..5) other than those listed.
function procs.other_than(...)
  local skip = {}
  for _, x in ipairs({ ... }) do skip[x] = true end
  for i = 1, 5 do if not skip[i] then return i end end
end

-- Starts members 1..5 and waits (bounded) until each sees 5 members and a leader; true if so.
-- The environment that lets a member outlive the spec's default life of 120 s (benchmarks
-- whose trials take longer pass it to procs.start / procs.start_all).
procs.LONG_LIFE = "LUACT_SPEC_LIFE=1800 "

-- After a trial that took member `down` away and brought it back: waits (bounded) until member
-- `watcher` sees every member alive and `down` sees every member alive, then lets it settle 1 s.
-- Returns true when they did within `timeout` s.
function procs.wait_rejoined(down, watcher, timeout)
  local ok = procs.wait_until(function()
    for i = 1, 5 do
      if procs.state_seen(i == down and watcher or down, i) ~= "alive" then return nil end
    end
    return true
  end, timeout or 30)
  os.execute("sleep 1")
  return ok
end

-- Waits (bounded) until member i's process has exited; true when it did within `timeout` s.
function procs.wait_exited(i, timeout)
  local pid = procs.pid(i)
  return procs.wait_until(function()
    return os.execute(("kill -0 %d 2>/dev/null"):format(pid)) ~= 0 or nil
  end, timeout) ~= nil
end

-- Restarts members 1..5 one after the other the graceful way (its control actor's `shutdown`:
-- luact.stop from a tentacle), each started again with `env` and rejoined before the next.
-- Returns the seconds the whole roll took; errors naming a member that did not stop or rejoin.
function procs.rolling_restart(env)
  local t0 = os.time()
  for i = 1, 5 do
    assert(procs.value(i, "shutdown"))
    assert(procs.wait_exited(i, 20), ("member %d did not stop"):format(i))
    procs.kill(i)                      -- (gone already: keeps its log, forgets it)
    procs.start(i, env)
    assert(procs.wait_rejoined(i, i % 5 + 1, 30), ("member %d did not rejoin"):format(i))
  end
  return os.time() - t0
end

-- The rolling restart scenario of issue 26 (spec/nodes/rolling_restart_spec.lua, bench/
-- rolling_restart.lua): members 1..5 and a sixth that is never restarted, `names` virtual
-- actors, `clients` client tentacles on the sixth calling them by name and writing to
-- luact.db, and procs.rolling_restart meanwhile. Returns calls, writes, the failures, the
-- acknowledged writes, those a read misses afterwards, and the seconds the roll took.
function procs.roll_under_load(names, clients)
  assert(procs.start_all(30, procs.LONG_LIFE), "the cluster did not form")
  procs.start(6, procs.LONG_LIFE)
  assert(procs.wait_until(function() return #procs.value(6, "members") == 6 or nil end, 30), "member 6 did not join")
  local vids = {}
  for k = 1, names do
    vids[k] = "/roll/" .. k
    assert(procs.value(1 + k % 5, "vreg", vids[k], k))
  end
  for k = 1, names do
    assert(procs.wait_until(function() return procs.value(6, "resolve", vids[k]) or nil end, 10), vids[k] .. " unresolved")
  end
  assert(procs.value(6, "start_roll", vids, clients, 100000))
  os.execute("sleep 2")
  local took = procs.rolling_restart(procs.LONG_LIFE)
  os.execute("sleep 2")
  assert(procs.value(6, "roll_stop"))
  os.execute("sleep 1")
  local calls, writes, failed, acked, missing = procs.value(6, "roll_result")
  return calls, writes, failed, acked, missing, took
end

-- The upgrade scenario of issue 26 (spec/nodes/vactor_upgrade_spec.lua, bench/upgrade.lua) on a
-- running cluster: `names` rooms (registered a fifth on each member), `clients` client
-- tentacles on member 5 calling them by name, and every name upgraded from member 2 meanwhile.
-- Returns the calls, the failures, the names, the seconds until every upgrade was committed and
-- until every name answered the new code (asked from member 3).
function procs.upgrade_under_load(names, clients)
  local per = math.ceil(names / 5)
  local vids = {}
  for k = 1, 5 do
    assert(procs.value(k, "vreg_rooms", "/many/" .. k .. "/", per) == per, "member " .. k .. " did not register its names")
    for i = 1, per do vids[#vids + 1] = "/many/" .. k .. "/" .. i end
  end
  assert(procs.value(5, "start_upcalls", vids, clients, 1000000, 0.002))
  os.execute("sleep 1")
  local function now()
    local f = io.popen("date +%s.%N")
    local t = tonumber(f:read("*l"))
    f:close()
    return t
  end
  local t0 = now()
  local committed = 0
  for k = 1, 5 do
    local took, failed = procs.value(2, "vupgrade_many", "/many/" .. k .. "/", per, 2)
    assert(#failed == 0, "upgrades failed: " .. tostring(failed[1]))
    committed = committed + took
  end
  local all = procs.wait_until(function()
    for k = 1, 5 do
      if procs.value(3, "count_version", "/many/" .. k .. "/", per, 2) < per then return nil end
    end
    return true
  end, 120)
  local took = now() - t0
  os.execute("sleep 1")
  local calls, failed = procs.value(5, "up_stop")
  assert(all, "not every name answered the new code")
  return calls, failed, #vids, committed, took
end

function procs.start_all(timeout, env)
  for i = 1, 5 do procs.start(i, env) end
  return procs.wait_until(function()
    for i = 1, 5 do
      if #procs.value(i, "members") ~= 5 or not procs.value(i, "leader") then return nil end
    end
    return true
  end, timeout or 30)
end

return procs
