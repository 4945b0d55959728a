-- Voters that change at runtime (luact.cluster.voters, add_voter, remove_voter), as real
-- processes in the spec's network namespace: 3 seeds (127.0.0.1-3, the first voters), two
-- members with a datadir that may be added (127.0.0.4-5) and one without (127.0.0.6). While
-- the voters change, clients write and read through luact.db from several members and threads;
-- their histories must be linearizable and every acknowledged write must stay readable. The
-- cases run in order on one cluster.
local procs = require "helpers.cluster_procs"
local lin = require "helpers.linearizability"
local helpers = require "helpers.runtime"

local K = 2                      -- keys of the linearizability histories

local function addr(i) return procs.addr(i) end
local function index_of(a) return tonumber(a:match("^127%.0%.0%.(%d+)")) end

local function sorted(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  table.sort(out)
  return out
end

local function addrs(...)
  local out = {}
  for i, n in ipairs({ ... }) do out[i] = addr(n) end
  return sorted(out)
end

-- waits until every running member in `who` reports `want` as its voters
local function wait_voters(who, want, timeout)
  local got
  local ok = procs.wait_until(function()
    for _, i in ipairs(who) do
      got = procs.value(i, "voters")
      if table.concat(got, ",") ~= table.concat(want, ",") then return false end
    end
    return true
  end, timeout or 20)
  assert(ok, ("voters: expected %s, got %s"):format(table.concat(want, ","), table.concat(got or {}, ",")))
end

local function change(from, what, target, t)
  local r = procs.call(from, "change_voter", what, addr(target), t or 30)
  assert(r[1], "the call failed: " .. tostring(r[2]))
  return r[2], r[3], r[4]
end

-- clients: { { member, thread, tag = n }, ... } each doing n random set/get/cas on lin/1..K
local function start_histories(clients, n)
  for _, c in ipairs(clients) do
    assert.is_true(procs.value(c[1], { "start_history", thread = c[2] }, c.tag, K, n, c.tag * 7919))
  end
end

local function check_histories(clients, n)
  local by_key, failed, total = {}, 0, 0
  for _, c in ipairs(clients) do
    local ops
    assert.is_truthy(procs.wait_until(function()
      local done, o = procs.value(c[1], { "history", thread = c[2] }, c.tag)
      ops = o
      return done
    end, 120), "a client did not finish")
    for _, o in ipairs(ops) do
      total = total + 1
      if not o.ret then failed = failed + 1 end
      by_key[o.key] = by_key[o.key] or {}
      table.insert(by_key[o.key], o)
    end
  end
  assert.equal(#clients * n, total)
  assert.is_true(failed < total / 2, ("%d of %d operations failed"):format(failed, total))
  for k = 1, K do
    local ok, why = lin.check(by_key["lin/" .. k], k == 1 and 0 or 0)
    assert(ok, ("lin/%d: %s"):format(k, tostring(why)))
  end
  return failed, total
end

-- every acknowledged write of writer `prefix` on member `i` reads back (linearizably, from
-- member `from`)
local function writer_done(i, prefix)
  local acked
  assert.is_truthy(procs.wait_until(function()
    local done, a = procs.value(i, "writer", prefix)
    acked = a
    return done
  end, 120), "the writer did not finish")
  return acked
end

local function assert_all_read(from, prefix, acked)
  local m
  assert.is_truthy(procs.wait_until(function()
    local r = procs.call(from, "missing", prefix, acked)
    m = r[1] and r[2] or nil
    return m and #m == 0
  end, 30), "acknowledged writes lost: " .. table.concat(m or { "(no read served)" }, " "))
end

-- member i's replica (no network) holds key k = v
local function replica_has(i, k, v)
  return procs.wait_until(function() return procs.value(i, "local_get", k) == v end, 20)
end

describe("luact.cluster voters at runtime", function()
  setup(function()
    procs.setup()
    procs.give_datadir(4)
    procs.give_datadir(5)
    for i = 1, 6 do procs.start(i) end
  end)
  teardown(function() procs.teardown() end)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)

  it("lists the seeds as the first voters, on every member and thread", function()
    for i = 1, 6 do
      assert.same(addrs(1, 2, 3), procs.value(i, "voters"))
      assert.same(addrs(1, 2, 3), procs.value(i, { "voters", thread = 2 }))
    end
    for _, m in ipairs(procs.value(6, "members")) do
      assert.equal(index_of(m.address) <= 3, m.voter)
    end
  end)

  it("refuses bad changes with a clear error", function()
    local ok, name, msg = change(4, "add_voter", 1)
    assert.is_false(ok)
    assert.equal("voter_change_refused", name)
    assert.equal(("luact.cluster.add_voter(%q): %s is already a voter"):format(addr(1), addr(1)), msg)
    ok, name, msg = change(5, "remove_voter", 4)
    assert.same({ false, "voter_change_refused" }, { ok, name })
    assert.truthy(msg:find(addr(4) .. " is not a voter", 1, true), msg)
    ok, name, msg = change(6, "add_voter", 6)
    assert.same({ false, "voter_change_refused" }, { ok, name })
    assert.truthy(msg:find(addr(6) .. " has no datadir: only a member started with a datadir can vote", 1, true), msg)
    local r = procs.call(1, { "change_voter", thread = 2 }, "add_voter", "127.0.0.9:7009", 5)
    assert.same({ true, false, "voter_change_refused" }, { r[1], r[2], r[3] })
    assert.truthy(r[4]:find("127.0.0.9:7009 is not a live member of the cluster (unknown)", 1, true), r[4])
    r = procs.call(2, "change_voter", "add_voter", "localhost:1", 5)
    assert.is_false(r[2])
    assert.truthy(r[3]:find("bad 'addr' argument to luact.cluster.add_voter (\"ip:port\" expected, got \"localhost:1\")", 1, true), r[3])
    -- two changes at once: one is made, the other refused
    assert.is_true(procs.value(4, "start_change", "a", "add_voter", addr(4), 30))
    assert.is_true(procs.value(5, "start_change", "b", "add_voter", addr(5), 30))
    local a, b
    assert.is_truthy(procs.wait_until(function()
      a, b = procs.value(4, "change_result", "a"), procs.value(5, "change_result", "b")
      return a and b
    end, 40))
    assert.is_true(a[1] ~= b[1], "both or neither change were made")
    local refused = a[1] and b or a
    assert.equal("voter_change_refused", refused[2])
    assert.truthy(refused[3]:find("another voter change is in progress (adding 127.0.0.", 1, true), refused[3])
    local added = a[1] and 4 or 5
    wait_voters({ 1, 2, 3, 4, 5, 6 }, addrs(1, 2, 3, added))
    -- back to the seeds
    assert.is_true((change(6, "remove_voter", added)))
    wait_voters({ 1, 2, 3, 4, 5, 6 }, addrs(1, 2, 3))
    -- outside a cluster
    local out = helpers.start({ n_core = 1, timeout = 10 }, function()
      local luact = require "luact"
      local ok, e = pcall(luact.cluster.add_voter, "127.0.0.1:7001")
      luact.stop({ ok, tostring(e), #luact.cluster.voters() })
    end)
    assert.is_false(out[1])
    assert.truthy(out[2]:find("luact.cluster.add_voter: this node is not a cluster member (no 'seeds')", 1, true), out[2])
    assert.equal(0, out[3])
  end)

  it("grows from 3 voters to 5 and back to 3 under load, linearizable throughout", function()
    for k = 1, K do assert.is_true(procs.value(1, "set", "lin/" .. k, 0)) end
    local clients = { { 6, 1, tag = 1 }, { 6, 2, tag = 2 }, { 4, 1, tag = 3 }, { 2, 2, tag = 4 } }
    start_histories(clients, 150)
    assert.is_true(procs.value(6, "start_writer", "grow/", 300, 0.01))
    assert.is_true((change(6, "add_voter", 4)))
    assert.is_true((change(1, "add_voter", 5)))
    wait_voters({ 1, 2, 3, 4, 5, 6 }, addrs(1, 2, 3, 4, 5))
    for _, m in ipairs(procs.value(6, "members")) do assert.equal(index_of(m.address) <= 5, m.voter) end
    assert.truthy(procs.output(4):find("this node is a voter now", 1, true))
    assert.is_true((change(5, "remove_voter", 4)))
    assert.is_true((change(4, "remove_voter", 5)))
    wait_voters({ 1, 2, 3, 4, 5, 6 }, addrs(1, 2, 3))
    assert.truthy(procs.output(5):find("registry follows a voter's feed now", 1, true))
    check_histories(clients, 150)
    local acked = writer_done(6, "grow/")
    assert.is_true(#acked >= 250, ("only %d of 300 writes were acknowledged"):format(#acked))
    assert_all_read(4, "grow/", acked)
    -- the removed voters follow the registry again (from the feed)
    assert.is_true(procs.value(1, "set", "after/grow", 1))
    for i = 4, 6 do assert.is_truthy(replica_has(i, "after/grow", 1), "member " .. i .. " stopped following") end
  end)

  it("removes the leader under load: it steps down, another leads, and it follows the feed", function()
    for k = 1, K do assert.is_true(procs.value(1, "set", "lin/" .. k, 0)) end
    local leader = index_of(procs.value(6, "leader"))
    local clients = { { 6, 1, tag = 5 }, { 6, 2, tag = 6 }, { 5, 1, tag = 7 }, { leader, 2, tag = 8 } }
    start_histories(clients, 120)
    os.execute("sleep 0.5")
    local rest = {}
    for i = 1, 3 do if i ~= leader then rest[#rest + 1] = i end end
    assert.is_true((change(rest[1], "remove_voter", leader)))
    wait_voters({ 1, 2, 3, 4, 5, 6 }, addrs(rest[1], rest[2]))
    local now = procs.wait_until(function()
      local l = procs.value(6, "leader")
      return l and l ~= addr(leader) and l
    end, 20)
    assert.is_truthy(now, "no other leader")
    assert.truthy(now == addr(rest[1]) or now == addr(rest[2]), now)
    check_histories(clients, 120)
    assert.is_true(procs.value(6, "set", "after/leader", 1))
    assert.is_truthy(replica_has(leader, "after/leader", 1), "the removed leader stopped following")
    -- it comes back as a voter (its datadir is intact)
    assert.is_true((change(leader, "add_voter", leader)))
    wait_voters({ 1, 2, 3, 4, 5, 6 }, addrs(1, 2, 3))
  end)

  it("replaces a voter whose datadir was deleted, losing no acknowledged write", function()
    for k = 1, K do assert.is_true(procs.value(1, "set", "lin/" .. k, 0)) end
    local leader = index_of(procs.value(6, "leader"))
    local lost = leader == 1 and 2 or 1
    local clients = { { 6, 1, tag = 9 }, { 6, 2, tag = 10 }, { 5, 1, tag = 11 } }
    start_histories(clients, 200)
    assert.is_true(procs.value(6, "start_writer", "wipe/", 300, 0.01))
    os.execute("sleep 0.5")
    -- the disk of `lost` dies: the process is gone, so is its datadir
    procs.kill(lost)
    os.execute("rm -rf " .. procs.datadir(lost))
    -- replace it: add a member with a datadir, then remove the dead voter
    assert.is_true((change(6, "add_voter", 4)))
    assert.is_true((change(5, "remove_voter", lost)))
    local want = {}
    for i = 1, 4 do if i ~= lost then want[#want + 1] = addr(i) end end
    want = sorted(want)
    wait_voters({ 3 == lost and 1 or 3, 4, 5, 6 }, want)
    -- the old address comes back with an empty datadir: a new storage, not the old voter
    procs.start(lost)
    -- it follows the registry as a member: its voters are the cluster's, its replica current
    wait_voters({ lost }, want)
    check_histories(clients, 200)
    local acked = writer_done(6, "wipe/")
    assert.is_true(#acked >= 250, ("only %d of 300 writes were acknowledged"):format(#acked))
    assert_all_read(lost, "wipe/", acked)
    assert.is_truthy(replica_has(lost, "wipe/" .. acked[#acked], acked[#acked]),
      "the wiped voter's replica does not follow the registry")
    assert.truthy(procs.output(lost):find("has a new storage %(%x+%-[%x%-]+%) but cluster %S+ already exists"),
      "the wiped voter did not say it is new:\n" .. procs.output(lost))
    -- it votes again only once added back, after copying the log
    assert.is_true((change(lost, "add_voter", lost)))
    assert.is_truthy(procs.wait_until(function()
      return procs.output(lost):find("counts toward quorums again", 1, true)
    end, 20), procs.output(lost))
    assert.is_true((change(lost, "remove_voter", 4)))
    wait_voters({ 1, 2, 3, 4, 5, 6 }, addrs(1, 2, 3))
  end)
end)
