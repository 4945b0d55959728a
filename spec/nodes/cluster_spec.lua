-- The cluster: 3 voters (127.0.0.1-3, each with a datadir) and 2 followers (127.0.0.4-5) as
-- real luajit processes of two threads each, in the spec's network namespace. Membership,
-- the replicated registry (luact.db) from every node and thread, and what survives kill -9,
-- SIGSTOP and an nftables partition. The cases run in order on one cluster.
local procs = require "helpers.cluster_procs"

local function values(r) return { unpack(r, 1, r.n) } end

describe("luact.cluster", function()
  setup(function()
    procs.setup()
    for i = 1, 5 do procs.start(i) end
  end)
  teardown(function() procs.teardown() end)
  -- every case starts from a calm cluster (the cases before may have killed, stopped or cut off
  -- members)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)

  it("converges: every thread of every member sees 5 live members and the same leader", function()
    local leader = procs.wait_until(function()
      local l
      for i = 1, 5 do
        for thread = 1, 2 do
          local ms = procs.value(i, { "members", thread = thread })
          if #ms ~= 5 then return nil end
          for _, m in ipairs(ms) do if m.state ~= "alive" then return nil end end
          local li = procs.value(i, { "leader", thread = thread })
          if li == nil or (l and li ~= l) then return nil end
          l = li
        end
      end
      return l
    end, 20)
    assert.is_truthy(leader, "no agreed leader")
    local ms = procs.value(4, "members")
    local voters = {}
    for _, m in ipairs(ms) do if m.voter then voters[#voters + 1] = m.address end end
    assert.same({ procs.addr(1), procs.addr(2), procs.addr(3) }, voters)
    assert.is_truthy(leader == procs.addr(1) or leader == procs.addr(2) or leader == procs.addr(3))
  end)

  it("shows the cluster through luact.inspect (here and of another node) and the metrics", function()
    local leader = procs.value(4, "leader")
    -- a follower's thread 2 asks its own thread 1, then voter 1 over the node link
    local here = procs.value(4, { "inspect_cluster", thread = 2 })
    assert.is_true(here.member)
    assert.equal(procs.addr(4), here.self)
    assert.equal(leader, here.leader)
    assert.equal(5, #here.members)
    local there = procs.value(4, { "inspect_cluster", thread = 2 }, procs.addr(1))
    assert.equal(procs.addr(1), there.self)
    assert.equal(leader, there.leader)
    assert.is_true(there.raft.term >= 1 and there.raft.commit >= 1)
    assert.same({ procs.addr(1), procs.addr(2), procs.addr(3) }, there.raft.voters)
    local m = procs.value(4, "cluster_metrics")
    assert.equal(1, m.member)
    assert.equal(5, m.alive)
    assert.is_true(m.raft_applied_index >= 1)
  end)

  it("writes from every thread of every node, read back linearizably everywhere", function()
    for i = 1, 5 do
      for thread = 1, 2 do
        assert.is_true(procs.value(i, { "set", thread = thread }, ("w/%d/%d"):format(i, thread), { i = i, t = thread }))
      end
    end
    for j = 1, 5 do
      local keys = procs.value(j, { "keys", thread = 2 }, "w/")
      assert.equal(10, #keys)
      for i = 1, 5 do
        assert.same({ i = i, t = 2 }, procs.value(j, "get", ("w/%d/2"):format(i)))
      end
    end
  end)

  it("cas, del and guards behave the same from a follower and a voter", function()
    assert.is_true(procs.value(4, "set", "c", 1))
    assert.is_false(procs.value(5, "cas", "c", 2, 3))          -- not 2: unchanged
    assert.is_true(procs.value(2, { "cas", thread = 2 }, "c", 1, 3))
    assert.equal(3, procs.value(1, "get", "c"))
    assert.is_true(procs.value(5, "cas", "absent", nil, "now"))  -- nil: only if absent
    assert.is_true(procs.value(3, "del", "c"))
    assert.is_false(procs.value(4, "del", "c"))
    assert.is_nil(procs.value(2, "get", "c"))
    -- a guard: the key is taken; a plain write cannot change it; release removes it
    assert.same({ true }, { procs.value(4, "reg", "lobby/a", "n4") })
    assert.same({ false, "taken" }, { procs.value(5, "reg", "lobby/a", "n5") })
    assert.is_false(procs.value(1, "set", "lobby/a", "x"))
    assert.equal("n4", procs.value(2, "get", "lobby/a"))
    assert.is_true(procs.value(4, "release", "lobby/a"))
    assert.is_nil(procs.value(2, "get", "lobby/a"))
  end)

  it("refuses bad keys and values at the caller, naming the argument", function()
    local r = procs.call(4, "try", "set", 42, 1)
    assert.is_false(r[2])
    assert.matches("bad argument #1 to 'luact.db.set' (non-empty string", r[3], 1, true)
    r = procs.call(4, "try", "set", "k", nil)
    assert.matches("use luact.db.del to remove a key", r[3], 1, true)
    r = procs.call(1, "try", "timed_get", -1, "k")
    assert.matches("bad timeout argument to 'luact.db.timed_get'", r[3], 1, true)
  end)

  -- true when thread `thread` of member i saw event tp about member j
  local function saw(i, thread, tp, j)
    for _, e in ipairs(procs.value(i, { "seen", thread = thread })) do
      if e[1] == tp and e[2] == procs.addr(j) then return true end
    end
    return false
  end

  it("drops a guard when its node is killed (kill -9 of a follower), and every thread hears of the death", function()
    assert.same({ true }, { procs.value(5, "reg", "lobby/eu", "n5") })
    assert.equal("n5", procs.value(1, "get", "lobby/eu"))
    procs.kill(5)
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(1, 5) == "dead" end, 10))
    assert.is_truthy(procs.wait_until(function() return procs.value(2, "get", "lobby/eu") == nil end, 10))
    for i = 1, 4 do
      assert.is_truthy(procs.wait_until(function() return saw(i, 2, "dead", 5) end, 10))
      assert.is_truthy(saw(i, 1, "dead", 5))
    end
    procs.start(5)                      -- back under the same address: it rejoins
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(1, 5) == "alive" end, 15))
  end)

  it("keeps every acknowledged write when the leader is killed mid-stream, and writes resume", function()
    local leader = procs.value(4, "leader")
    local li = tonumber(leader:match("^127%.0%.0%.(%d+)"))
    assert.is_true(procs.value(4, "start_writer", "seq/", 300, 0.01))
    os.execute("sleep 1")
    procs.kill(li)
    local acked, failed
    assert.is_truthy(procs.wait_until(function()
      local done, a, f = procs.value(4, "writer", "seq/")
      acked, failed = a, f
      return done
    end, 60))
    assert.is_true(#acked >= 100, ("only %d of 300 writes were acknowledged"):format(#acked))
    assert.is_true(acked[#acked] > 250, "writes did not resume after the leader died")
    -- none lost: each acknowledged key reads back, from a follower and from a surviving voter
    assert.same({}, procs.value(5, "missing", "seq/", acked))
    local other = li == 1 and 2 or 1
    assert.same({}, procs.value(other, "missing", "seq/", acked))
    assert.are_not.equal(leader, procs.value(other, "leader"))
    -- the old leader restarts from its datadir and catches up
    procs.start(li)
    local last = acked[#acked]
    assert.is_truthy(procs.wait_until(function() return procs.value(li, "local_get", "seq/" .. last) == last end, 20))
    assert.same({}, procs.value(li, "missing", "seq/", acked))
  end)

  it("gives linearizable set/get/cas histories from 4 concurrent clients while the leader is killed and restarted", function()
    local lin = require "helpers.linearizability"
    local K = 2
    for k = 1, K do assert.is_true(procs.value(1, "set", "lin/" .. k, 0)) end
    local leader = procs.value(4, "leader")
    local li = tonumber(leader:match("^127%.0%.0%.(%d+)"))
    local voter = li == 1 and 2 or 1
    local clients = { { 4, 1, tag = 1 }, { 4, 2, tag = 2 }, { 5, 1, tag = 3 }, { voter, 2, tag = 4 } }
    for _, c in ipairs(clients) do
      assert.is_true(procs.value(c[1], { "start_history", thread = c[2] }, c.tag, K, 60, c.tag * 7919))
    end
    os.execute("sleep 0.7")
    procs.kill(li)
    os.execute("sleep 1.5")
    procs.start(li)
    local by_key, failed, total = {}, 0, 0
    for _, c in ipairs(clients) do
      local ops
      assert.is_truthy(procs.wait_until(function()
        local done, o = procs.value(c[1], { "history", thread = c[2] }, c.tag)
        ops = o
        return done
      end, 60))
      for _, o in ipairs(ops) do
        total = total + 1
        if not o.ret then failed = failed + 1 end
        by_key[o.key] = by_key[o.key] or {}
        table.insert(by_key[o.key], o)
      end
    end
    assert.equal(4 * 60, total)
    assert.is_true(failed < total / 2, ("%d of %d operations failed"):format(failed, total))
    for k = 1, K do
      local ok, why = lin.check(by_key["lin/" .. k], 0)
      assert(ok, ("lin/%d: %s"):format(k, tostring(why)))
    end
  end)

  it("declares a SIGSTOPped voter dead, failing calls waiting on it at once; it comes back on SIGCONT", function()
    -- a call from member 1 to an actor of member 2 over the node transport, with a 60 s timeout
    local victim, watcher = 2, 1
    if procs.value(1, "leader") == procs.addr(2) then victim, watcher = 3, 1 end
    finally(function() procs.signal(victim, "CONT") end)
    assert.is_true(procs.value(watcher, "start_probe", procs.ctl(victim), 60))
    os.execute("sleep 0.3")
    assert.is_nil(procs.value(watcher, "probe_result"))     -- still waiting on the victim
    procs.signal(victim, "STOP")
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(watcher, victim) == "dead" end, 15))
    local probe = procs.wait_until(function() return procs.value(watcher, "probe_result") end, 5)
    assert.same({ false, "actor_unreachable" }, probe)
    -- the other two voters still make a majority
    assert.is_true(procs.value(4, "set", "while_stopped", 1))
    procs.signal(victim, "CONT")
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(watcher, victim) == "alive" end, 15))
    assert.is_truthy(procs.wait_until(function() return procs.value(victim, "local_get", "while_stopped") == 1 end, 15))
  end)

  it("partitions: an isolated voter cannot write, the majority can, and after healing it converges", function()
    local leader = procs.value(1, "leader")
    local victim = leader == procs.addr(3) and 2 or 3
    finally(function() procs.heal() end)
    procs.isolate(victim)
    local r = procs.call(victim, "timed_set", 2, "part/x", 1)
    assert.is_false(r[1])
    assert.matches("cluster_unavailable", r[2], 1, true)
    assert.is_true(procs.value(4, "set", "part/y", 2))
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(1, victim) == "dead" end, 15))
    procs.heal()
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(1, victim) == "alive" end, 20))
    assert.is_truthy(procs.wait_until(function() return procs.value(victim, "local_get", "part/y") == 2 end, 15))
    -- its failed write was never applied anywhere
    assert.is_nil(procs.value(1, "get", "part/x"))
    assert.is_true(procs.value(victim, "set", "part/z", 3))
    assert.equal(3, procs.value(5, "get", "part/z"))
  end)

  it("leaves gracefully: seen as left (never dead), guards dropped, a leaving leader hands over", function()
    assert.same({ true }, { procs.value(4, "reg", "lobby/4", "n4") })
    assert.is_true(procs.value(4, "leave"))
    -- the node that left says so itself too (it listed itself alive)
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(4, 4) == "left" end, 5), procs.state_seen(4, 4))
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(1, 4) == "left" end, 10))
    assert.is_truthy(procs.wait_until(function() return procs.value(2, "get", "lobby/4") == nil end, 10))
    assert.is_falsy(saw(1, 1, "dead", 4))
    assert.is_truthy(saw(1, 2, "leave", 4))
    local leader = procs.value(1, "leader")
    local li = tonumber(leader:match("^127%.0%.0%.(%d+)"))
    local other = li == 1 and 2 or 1
    assert.is_true(procs.value(li, "leave"))
    local new = procs.wait_until(function()
      local l = procs.value(other, "leader")
      return l ~= leader and l
    end, 10)
    assert.is_truthy(new)
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(other, li) == "left" end, 10))
    assert.is_true(procs.value(5, "set", "after_leave", 1))
    assert.equal(new, procs.value(5, "leader"))
  end)
end)
