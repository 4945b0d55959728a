-- The nemesis soak: 5 real members (spec/nodes/cluster_node.lua; voters 127.0.0.1-3 with
-- datadirs, followers 127.0.0.4-5), one client process (spec/helpers/nemesis_client.lua: luact.db
-- set/get/cas and calls by name to virtual actors from every member), and a seeded random
-- schedule of faults, one round at a time: each round applies one fault, holds it, heals it,
-- then leaves the cluster quiet long enough for the availability check. Then the checkers of
-- spec/helpers/nemesis_checks.lua run. Used by spec/nodes/nemesis_spec.lua (short, CI) and
-- bench/nemesis (long). Runs only inside a network namespace (spec/run's unshare -n).
--
-- Fault classes (`classes` option; nemesis.CLASSES lists them all):
--   kill          kill -9 one member, restart it from the same datadir at the heal
--   stop          SIGSTOP one member, SIGCONT at the heal
--   drop          cut one member off from every other (nftables drop)
--   reject        the same, answering with a TCP reset (`reject with tcp reset`)
--   oneway        drop everything one member sends to another (the other way still works)
--   leader_alone  cut the Raft leader off from every other member (drop)
--   leader_only   cut one non-leader member off from the leader only, both ways (drop or
--                 reject, by the seed)
--   stop_leader   SIGSTOP the Raft leader
--   majority_down kill -9 two voters (no majority for a while), restart both at the heal
--   wipe          a voter's datadir deleted plus one more voter down (see damaged() below)
--   flip          the same with one bit flipped in that voter's raft log instead
--   slow_disk     every fsync of one voter (the leader, or another voter, by the seed) takes
--                 0.2-1.5 s (an LD_PRELOAD shim, spec/helpers/slow_fsync.c, around fsync and
--                 fdatasync; every voter runs with it, slowed only during this round)
--   clock         one member runs its whole life with its clock slowed to 0.8 (libfaketime):
--                 not a round of its own, it runs under every other fault
-- Node ports only (7001-7005) are cut: the control listeners (800x) that the clients and the
-- harness use stay up. Every process started is killed at the end, also on error.
local process = require "helpers.process"
local checks = require "helpers.nemesis_checks"
local ffi = require "ffi"

pcall(ffi.cdef, [[
  typedef struct { long tv_sec; long tv_nsec; } nemesis_timespec;
  int clock_gettime(int clk, void *ts);   /* void *: luact declares it the same way */
  int poll(void *fds, unsigned long n, int timeout);
]])

local nemesis = {}

nemesis.CLASSES = { "kill", "stop", "drop", "reject", "oneway", "leader_alone", "leader_only",
                    "stop_leader", "majority_down", "clock", "wipe", "flip", "slow_disk" }
nemesis.FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
nemesis.SLOW_RATE = 0.8

local ts = ffi.new("nemesis_timespec")
local function now()
  ffi.C.clock_gettime(0, ts)   -- CLOCK_REALTIME: the clients' clock (luact.clock.walltime)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
nemesis.now = now
local function sleep(s) if s > 0 then ffi.C.poll(nil, 0, math.floor(s * 1000)) end end

-- A seeded generator (the same numbers on every LuaJIT): rng() in [0, 1), rng(a, b) in a..b.
function nemesis.rng(seed)
  local x = (math.floor(seed) % 2147483646) + 1
  return function(lo, hi)
    x = (x * 16807) % 2147483647
    if lo then return lo + x % (hi - lo + 1) end
    return x / 2147483647
  end
end

local function addr(i) return ("127.0.0.%d:700%d"):format(i, i) end
local SEEDS = "127.0.0.1:7001,127.0.0.2:7002,127.0.0.3:7003"

-- The schedule of a seed: rounds { class, start (s after the clients started), hold (s), pick
-- (a number that chooses the members when the round starts) }, and the slowed member (or nil).
-- Rounds fill `duration` minus the final quiet period; each is followed by `quiet` seconds.
function nemesis.schedule(seed, duration, classes, quiet)
  local r = nemesis.rng(seed)
  local rounds, usable, slow = {}, {}, nil
  for _, c in ipairs(classes) do
    if c == "clock" then slow = true else usable[#usable + 1] = c end
  end
  if slow then slow = r(1, 5) end
  local t = 3
  while #usable > 0 do
    local class = usable[r(1, #usable)]
    local hold = 2 + r() * 4
    if t + hold + quiet > duration then break end
    rounds[#rounds + 1] = { class = class, start = t, hold = hold, pick = r(1, 1000000) }
    t = t + hold + quiet + r() * 2
  end
  return { seed = seed, rounds = rounds, slow = slow, duration = duration }
end

function nemesis.describe(sched)
  local lines = { ("seed %d, %.0f s, slowed clock: %s"):format(sched.seed, sched.duration,
    sched.slow and ("member %d at x%.2f"):format(sched.slow, nemesis.SLOW_RATE) or "none") }
  for i, rd in ipairs(sched.rounds) do
    lines[#lines + 1] = ("  round %d at %5.1f s: %-13s hold %.1f s%s"):format(i, rd.start, rd.class, rd.hold,
      rd.did and (": " .. rd.did) or "")
  end
  return table.concat(lines, "\n")
end

---------------------------------------------------------------------------------------------
-- members

local Cluster = {}
Cluster.__index = Cluster

local function sh(cmd) return os.execute(cmd) end
local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

function nemesis.cluster(opts)
  local c = setmetatable({ dir = opts.dir, life = opts.life, slow = opts.slow, members = {},
                           logs = {}, rss = {}, incarnations = {}, expected_exits = {},
                           gone = {} }, Cluster)
  sh("rm -rf " .. c.dir .. " && mkdir -p " .. c.dir)
  c.fsync_shim = c.dir .. "/slow_fsync.so"
  assert(sh(("cc -shared -fPIC -O2 -o %s spec/helpers/slow_fsync.c -ldl"):format(c.fsync_shim)),
    "could not build spec/helpers/slow_fsync.c (cc)")
  return c
end

-- Every fsync of member i takes `ms` milliseconds more from now on (0: a healthy disk again).
function Cluster:slow_disk(i, ms)
  local f = assert(io.open(("%s/fsync_delay%d"):format(self.dir, i), "w"))
  f:write(tostring(math.floor(ms)))
  f:close()
end

-- Starts member i (its datadir is kept across restarts) and waits until it prints "ready".
function Cluster:start(i)
  if self.gone[i] then return end     -- (it refused its damaged datadir: it stays down)
  local k = (self.incarnations[i] or 0) + 1
  self.incarnations[i] = k
  local log = ("%s/n%d.%d.log"):format(self.dir, i, k)
  local pidf = ("%s/n%d.%d.pid"):format(self.dir, i, k)
  local data = i <= 3 and (self.dir .. "/data" .. i) or "-"
  local env = ("LUACT_SPEC_SNAPSHOT=40 LUACT_SPEC_LIFE=%d LUACT_TEST_FSYNC_DELAY_FILE=%s/fsync_delay%d"):format(
    self.life, self.dir, i)
  local preload = self.fsync_shim
  if self.slow == i then
    env = env .. (" FAKETIME='+0 x%s' FAKETIME_NO_CACHE=1"):format(nemesis.SLOW_RATE)
    preload = preload .. " " .. nemesis.FAKETIME_LIB
  end
  env = env .. (" LD_PRELOAD='%s'"):format(preload)
  local cmd = ("env %s luajit spec/nodes/cluster_node.lua %s %s %s tcp://127.0.0.%d:800%d"):format(
    env, addr(i), SEEDS, data, i, i)
  -- a wrapper notes the exit status in the log (the harness reads it for the crash check)
  local wrapper = ("sh -c '%s >>%s 2>&1 & echo $! >%s; wait $!; echo \"nemesis: exit status $?\" >>%s' >/dev/null 2>&1 &"):format(
    cmd:gsub("'", "'\\''"), log, pidf, log)
  sh(wrapper)
  local pid
  for _ = 1, 100 do
    pid = tonumber(read(pidf):match("%d+"))
    if pid then break end
    sleep(0.02)
  end
  assert(pid, "member " .. i .. " did not start: " .. cmd)
  self.members[i] = { pid = pid, log = log, started = now(), stopped = false }
  self.logs[#self.logs + 1] = { member = i, log = log, pid = pid }
  local deadline = now() + 30
  while now() < deadline do
    local out = read(log)
    if out:find("ready") then return pid end
    if out:find("nemesis: exit status") then break end
    sleep(0.05)
  end
  error(("member %d did not get ready; output:\n%s"):format(i, read(log)))
end

-- Starts member i from a datadir the nemesis damaged: true when it got ready. A voter that
-- refuses its damaged storage (what it should do: its exit and its ERROR lines are then not
-- counted as a crash, a panic is) is started again the way its README tells an operator to:
-- its raft directory moved away, so that it rejoins as a recovering member; then true, and the
-- refusal's last output lines. false and those lines when that fails too (it stays down).
function Cluster:start_damaged(i)
  self.gone[i] = nil
  if pcall(self.start, self, i) then return true end
  local l = self.logs[#self.logs]
  l.refused = true
  self.expected_exits[l.pid] = true
  self:kill(i)
  local why = read(l.log)
  sh(("mv %s/data%d/raft %s/data%d/raft.damaged.%d 2>/dev/null"):format(self.dir, i, self.dir, i, self.incarnations[i]))
  if pcall(self.start, self, i) then return true, why end
  self.gone[i] = true
  local l2 = self.logs[#self.logs]
  self.expected_exits[l2.pid] = true
  self:kill(i)
  return false, why .. "\n(with its raft directory moved away:)\n" .. read(l2.log):sub(-1000)
end

function Cluster:signal(i, sig)
  local m = self.members[i]
  if m then sh(("kill -%s %d 2>/dev/null"):format(sig, m.pid)) end
end

function Cluster:kill(i)
  local m = self.members[i]
  if not m then return end
  self.expected_exits[m.pid] = true
  sh(("kill -KILL %d 2>/dev/null; kill -CONT %d 2>/dev/null"):format(m.pid, m.pid))
  self.members[i] = nil
end

function Cluster:stop(i)
  if self.members[i] then self:signal(i, "STOP"); self.members[i].stopped = true end
end
function Cluster:cont(i) self:signal(i, "CONT"); if self.members[i] then self.members[i].stopped = false end end

function Cluster:sample_rss()
  local t = now()
  for i, m in pairs(self.members) do
    local kb = tonumber(read(("/proc/%d/status"):format(m.pid)):match("VmRSS:%s*(%d+)"))
    if kb then self.rss[#self.rss + 1] = { member = i, pid = m.pid, t = t, rss_kb = kb } end
  end
end

-- Kills every member (at the end, or on error).
function Cluster:teardown()
  for i in pairs(self.members) do self:kill(i) end
  nemesis.heal()
end

-- The crash check: every member process that exited without being killed by the harness, and
-- every line of any member's output that says it failed.
function Cluster:crashes()
  local failures = {}
  for _, l in ipairs(self.logs) do
    local out = read(l.log)
    local status = out:match("nemesis: exit status (%d+)")
    if status and not self.expected_exits[l.pid] then
      failures[#failures + 1] = ("crash: member %d (pid %d) exited by itself with status %s; last lines:\n%s"):format(
        l.member, l.pid, status, out:sub(-1500))
    end
    for _, line in ipairs(checks.bad_lines(out)) do
      if not (l.refused and (line:find(" ERROR ") or line:find(" FATAL ") or line:find("^luajit: "))) then
        failures[#failures + 1] = ("crash: member %d (pid %d) logged: %s"):format(l.member, l.pid, line)
      end
    end
  end
  return failures
end

---------------------------------------------------------------------------------------------
-- nftables (node ports only)

local TABLE = "inet luact_nem"

local function nft(rules)
  sh(("nft add table %s 2>/dev/null; nft 'add chain %s input { type filter hook input priority 0 ; }' 2>/dev/null"):format(TABLE, TABLE))
  for _, r in ipairs(rules) do
    local cmd = ("nft 'add rule %s input %s'"):format(TABLE, r)
    assert(sh(cmd) == 0, "nft failed: " .. cmd)
  end
end

-- everything member a sends to member b over the node transport, with `verdict`
local function one_way(a, b, verdict)
  return { ("ip saddr 127.0.0.%d ip daddr 127.0.0.%d tcp dport 7001-7005 %s"):format(a, b, verdict),
           ("ip saddr 127.0.0.%d ip daddr 127.0.0.%d tcp sport 7001-7005 %s"):format(a, b, verdict) }
end

function nemesis.isolate(i, verdict)
  local rules = {}
  for j = 1, 5 do
    if j ~= i then
      for _, r in ipairs(one_way(i, j, verdict)) do rules[#rules + 1] = r end
      for _, r in ipairs(one_way(j, i, verdict)) do rules[#rules + 1] = r end
    end
  end
  nft(rules)
end

function nemesis.cut(a, b, verdict, oneway)
  local rules = one_way(a, b, verdict)
  if not oneway then for _, r in ipairs(one_way(b, a, verdict)) do rules[#rules + 1] = r end end
  nft(rules)
end

function nemesis.heal() sh(("nft delete table %s 2>/dev/null"):format(TABLE)) end

nemesis.DROP, nemesis.RESET = "drop", "reject with tcp reset"

---------------------------------------------------------------------------------------------
-- control calls from the harness (a short-lived runtime in this process, short deadlines)

function nemesis.ask(i, method, ...)
  local helpers = require "helpers.runtime"
  local r = helpers.start({ n_core = 1, timeout = 8, url = ("tcp://127.0.0.%d:800%d/ctl"):format(i, i),
                            method = method, args = { n = select("#", ...), ... } }, function()
    local luact = require "luact"
    local o = luact.opts
    local ctl = luact.ref(o.url)
    local res = { pcall(ctl["timed_" .. o.method], ctl, 3, unpack(o.args, 1, o.args.n)) }
    if not res[1] then res = { false } end
    luact.stop({ n = #res, unpack(res) })
  end)
  return r
end

-- The leader's member number as some running, unstopped member knows it (nil: none known).
function Cluster:leader()
  for i = 1, 5 do
    local m = self.members[i]
    if m and not m.stopped then
      local r = nemesis.ask(i, "leader")
      if r[1] and r[2] then return tonumber(r[2]:match("^127%.0%.0%.(%d+)")) end
    end
  end
end

-- Waits (bounded) until every member sees all 5 alive and they agree on a leader.
function Cluster:settle(timeout)
  local deadline = now() + timeout
  while now() < deadline do
    local ok, leader = true, nil
    for i = 1, 5 do
      local ms = nemesis.ask(i, "members")
      if not ms[1] then ok = false; break end
      local alive = 0
      for _, m in ipairs(ms[2]) do if m.state == "alive" then alive = alive + 1 end end
      local l = nemesis.ask(i, "leader")
      if alive ~= 5 or not l[1] or not l[2] or (leader and l[2] ~= leader) then ok = false; break end
      leader = l[2]
    end
    if ok then return true end
    sleep(0.3)
  end
  return false
end

---------------------------------------------------------------------------------------------
-- one round: apply a fault; returns the function that heals it and a description

local function others(except, pick)
  local l = {}
  for j = 1, 5 do if not except[j] then l[#l + 1] = j end end
  return l[pick % #l + 1]
end

local apply = {}
function apply.kill(c, pick)
  local i = pick % 5 + 1
  c:kill(i)
  return function() c:start(i) end, ("kill -9 member %d"):format(i)
end
function apply.majority_down(c, pick)
  local a = pick % 3 + 1
  local b = (a + (pick % 2)) % 3 + 1
  c:kill(a); c:kill(b)
  return function() c:start(a); c:start(b) end, ("kill -9 voters %d and %d"):format(a, b)
end
function apply.stop(c, pick)
  local i = pick % 5 + 1
  c:stop(i)
  return function() c:cont(i) end, ("SIGSTOP member %d"):format(i)
end
function apply.stop_leader(c, pick)
  local i = c:leader() or (pick % 3 + 1)
  c:stop(i)
  return function() c:cont(i) end, ("SIGSTOP the leader, member %d"):format(i)
end
local function isolate(verdict, name)
  return function(c, pick)
    local i = pick % 5 + 1
    nemesis.isolate(i, verdict)
    return nemesis.heal, ("%s: member %d cut off from all"):format(name, i)
  end
end
apply.drop = isolate(nemesis.DROP, "drop")
apply.reject = isolate(nemesis.RESET, "reject")
function apply.leader_alone(c, pick)
  local i = c:leader() or (pick % 3 + 1)
  nemesis.isolate(i, nemesis.DROP)
  return nemesis.heal, ("drop: the leader, member %d, cut off from all"):format(i)
end
function apply.oneway(c, pick)
  local a = pick % 5 + 1
  local b = others({ [a] = true }, math.floor(pick / 5))
  nemesis.cut(a, b, nemesis.DROP, true)
  return nemesis.heal, ("drop: everything member %d sends to member %d"):format(a, b)
end
function apply.leader_only(c, pick)
  local l = c:leader() or 1
  local i = others({ [l] = true }, pick)
  local reject = math.floor(pick / 7) % 2 == 1
  nemesis.cut(i, l, reject and nemesis.RESET or nemesis.DROP, false)
  return nemesis.heal, ("%s: member %d cut off from the leader (member %d) only"):format(reject and "reject" or "drop", i, l)
end

-- A voter's datadir damaged, with one more fault (issue 23 points 3 and 4: a damaged voter
-- must not count toward a quorum for what it lost): voter b is killed and writes go on for 2 s
-- (acknowledged by a and c); then a is killed and its datadir damaged, c is killed, a and b
-- restart (a majority that holds the 2 s of writes only if a still does); c restarts at the heal.
local function damaged(how)
  return function(c, pick)
    local a = pick % 3 + 1
    local b = a % 3 + 1
    local third = b % 3 + 1
    c:kill(b)
    sleep(2)
    c:kill(a)
    local what
    if how == "wipe" then
      sh(("rm -rf %s/data%d"):format(c.dir, a))
      what = ("voter %d's datadir deleted"):format(a)
    else
      local path = ("%s/data%d/raft/log"):format(c.dir, a)
      local f = io.open(path, "r+b")
      local size = f and f:seek("end") or 0
      if size > 0 then
        local at = math.floor(size / 2) + pick % math.max(1, math.floor(size / 2))
        f:seek("set", at)
        local byte = f:read(1):byte()
        f:seek("set", at)
        f:write(string.char(bit.bxor(byte, 2 ^ (pick % 8))))
        what = ("one bit flipped in voter %d's raft log at byte %d of %d"):format(a, at, size)
      else
        what = ("voter %d's raft log is empty: nothing flipped"):format(a)
      end
      if f then f:close() end
    end
    c:kill(third)
    local started, why = c:start_damaged(a)
    if why then
      local first = why:match("(raft storage: [^\n]-Refusing to start)") or why:gsub("%s+", " "):sub(-200)
      what = what .. (" (voter %d refused to start: %s; %s)"):format(a, first,
        started and "restarted with its raft directory moved away" or "it stays down")
    end
    c:start(b)
    return function() c:start(third) end, ("voter %d killed, 2 s of writes, then voter %d killed and %s, voter %d killed; %d and %d restarted, %d at the heal"):format(
      b, a, what, third, a, b, third)
  end
end
apply.wipe = damaged("wipe")
apply.flip = damaged("flip")
function apply.slow_disk(c, pick)
  local leader = c:leader()
  local i = (pick % 2 == 0 and leader) or (math.floor(pick / 2) % 3 + 1)
  local ms = 200 + math.floor(pick / 6) % 1300
  c:slow_disk(i, ms)
  return function() c:slow_disk(i, 0) end, ("every fsync of voter %d%s takes %d ms more"):format(i,
    i == leader and " (the leader)" or "", ms)
end

---------------------------------------------------------------------------------------------
-- the soak

-- opts: seed, duration (s, of client traffic), classes, names (virtual actors), keys,
-- window (the availability deadline, 5 s), quiet (s after each heal), dir (logs, kept on
-- failure), rss_limit_mb, max_states (linearizability search budget).
-- Returns { ok =, failures = {...}, report = text, stats = {...} }.
function nemesis.run(opts)
  local seed = opts.seed
  local duration = opts.duration or 90
  local window = opts.window or 5
  local quiet = opts.quiet or (window + 2)
  local names, keys = opts.names or 4, opts.keys or 3
  local sched = nemesis.schedule(seed, duration, opts.classes or nemesis.CLASSES, quiet)
  local dir = opts.dir or ("spec/tmp/nemesis/%d-%d"):format(seed, os.time())
  local log = opts.log or function() end
  local c = nemesis.cluster({ dir = dir, life = duration + 300, slow = sched.slow })
  local client
  local heals = {}
  local t_end = math.huge
  local ok, err = pcall(function()
    nemesis.heal()
    for i = 1, 5 do c:start(i) end
    assert(c:settle(60), "the cluster did not settle at the start")
    for v = 1, names do
      local r = nemesis.ask(v % 5 + 1, "nreg", "/nem/" .. v)
      assert(r[1] and r[2], "could not register /nem/" .. v)
    end
    for k = 1, keys do
      local r = nemesis.ask(1, "dbop", "set", 2, "nem/" .. k, 0)
      assert(r[1] and r[2], "could not set nem/" .. k)
    end
    local out = dir .. "/records.tsv"
    os.remove(out)
    client = process.spawn(("luajit spec/helpers/nemesis_client.lua %s %s %d %d %d"):format(out, duration, seed, names, keys))
    local t0 = now()
    t_end = t0 + duration
    log(nemesis.describe(sched))
    -- (a heal that took long, e.g. restarts under load, pushes the next round back: each heal
    -- gets its full quiet period; rounds that no longer fit before the clients stop are skipped)
    local quiet_until = 0
    for _, rd in ipairs(sched.rounds) do
      local start = math.max(t0 + rd.start, quiet_until)
      if start + rd.hold + quiet > t0 + duration then
        rd.did = "skipped: no time left after the earlier heals"
        goto next_round
      end
      while now() < start do c:sample_rss(); sleep(math.min(1, start - now())) end
      do
        local undo, did = apply[rd.class](c, rd.pick)
        rd.did = did
        log(("%6.1f s: %s"):format(now() - t0, did))
        local until_ = now() + rd.hold
        while now() < until_ do c:sample_rss(); sleep(math.min(1, until_ - now())) end
        undo()
        heals[#heals + 1] = { t = now(), label = ("round at %.1f s, %s"):format(rd.start, did) }
        quiet_until = now() + quiet
        log(("%6.1f s: healed"):format(now() - t0))
      end
      ::next_round::
    end
    -- the clients stop by themselves at `duration`
    while now() < t0 + duration + 15 do
      c:sample_rss()
      if process.output(client):find("done") then break end
      sleep(1)
    end
    assert(process.output(client):find("done"), "the client did not finish:\n" .. process.output(client))
  end)
  if client then process.kill(client, "KILL") end
  local crashes = c:crashes()   -- (before the harness's own kills at teardown)
  c:teardown()
  local failures = {}
  if not ok then failures[#failures + 1] = "harness: " .. tostring(err) end
  local db, va = checks.parse(dir .. "/records.tsv")
  local vids = {}
  for v = 1, names do vids[v] = "/nem/" .. v end
  local function add(list) for _, f in ipairs(list) do failures[#failures + 1] = f end end
  local t_lin = now()
  add(checks.linearizable(db, 0, opts.max_states or 3e5))
  t_lin = now() - t_lin
  add(checks.single_activation(va))
  -- a heal whose window runs past the clients' end cannot be checked (a slow heal near the end)
  local checked, unchecked = {}, 0
  for _, h in ipairs(heals) do
    if h.t + window <= t_end then checked[#checked + 1] = h else unchecked = unchecked + 1 end
  end
  local unavailable, worst_answer = checks.available(va, checked, vids, window)
  add(unavailable)
  add(crashes)
  add(checks.memory(c.rss, opts.rss_limit_mb or 256, 1.5, 16))
  local n_db_ok, n_va_ok, acts = 0, 0, 0
  for _, o in ipairs(db) do if o.ret then n_db_ok = n_db_ok + 1 end end
  for _, o in ipairs(va) do if o.ok then n_va_ok = n_va_ok + 1 end end
  for _, a in pairs(checks.activations(va)) do for _ in pairs(a) do acts = acts + 1 end end
  local max_rss = 0
  for _, s in ipairs(c.rss) do if s.rss_kb > max_rss then max_rss = s.rss_kb end end
  local stats = { seed = seed, duration = duration, rounds = #sched.rounds, db_ops = #db, db_ok = n_db_ok,
                  calls = #va, calls_ok = n_va_ok, activations = acts, heals = #heals,
                  max_rss_mb = max_rss / 1024, lin_check_s = t_lin, worst_answer_s = worst_answer,
                  failures = #failures }
  local lines = { nemesis.describe(sched),
    ("%d db operations (%d acknowledged), %d calls by name (%d answered) by %d activations, max RSS %.1f MB, linearizability checked in %.1f s, %d heals checked for availability (%d too close to the end; the longest wait for a name's first answer after a heal: %.2f s)"):format(
      #db, n_db_ok, #va, n_va_ok, acts, max_rss / 1024, t_lin, #checked, unchecked, worst_answer) }
  if #failures > 0 then
    lines[#lines + 1] = ("%d FAILURES (seed %d; replay: NEMESIS_SEED=%d, logs in %s):"):format(#failures, seed, seed, dir)
    for _, f in ipairs(failures) do lines[#lines + 1] = "  " .. f end
  elseif not opts.keep then
    sh("rm -rf " .. dir)
  end
  return { ok = #failures == 0, failures = failures, report = table.concat(lines, "\n"), stats = stats }
end

return nemesis
