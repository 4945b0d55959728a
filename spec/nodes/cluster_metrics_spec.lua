-- The cluster's own metrics move when their event happens, on real processes (3 voters
-- 127.0.0.1-3 + 2 followers 127.0.0.4-5, spec/nodes/cluster_node.lua): the Raft storage's fsync
-- histogram on a write, suspicions on a SIGSTOP, failovers (counted and listed) and placement
-- time on a kill -9 of a virtual actor's host, leader changes on a kill -9 of the leader. The
-- cases run in order on one cluster.
local procs = require "helpers.cluster_procs"
local vcall, leader_no, other_than, addr_no = procs.vcall, procs.leader_no, procs.other_than, procs.addr_no

local function metrics(i) return procs.value(i, "cluster_metrics") end

describe("luact cluster metrics", function()
  setup(function()
    procs.setup()
    assert.is_truthy(procs.start_all(20))
  end)
  teardown(function() procs.teardown() end)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)

  it("times each fsync of a voter's Raft storage, and not of a follower (which keeps no log)", function()
    local before = metrics(1).raft_fsync
    assert.is_true(before.count > 0)         -- (joining wrote the log already)
    for k = 1, 3 do procs.value(4, "set", "fsync-" .. k, "v") end
    local after = procs.wait_until(function()
      local m = metrics(1).raft_fsync
      return m.count >= before.count + 3 and m
    end, 10)
    assert.is_truthy(after, "voter 1 timed no fsync for 3 writes")
    local in_buckets = 0
    for _, n in ipairs(after.buckets) do in_buckets = in_buckets + n end
    assert.equal(after.count, in_buckets)
    assert.is_true(after.sum > before.sum)
    assert.equal(0, metrics(4).raft_fsync.count)
  end)

  it("counts a suspicion when a member stops answering (SIGSTOP)", function()
    local before = metrics(5).swim_suspicions
    procs.signal(4, "STOP")
    finally(function() procs.signal(4, "CONT") end)
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(5, 4) ~= "alive" end, 10))
    assert.is_truthy(procs.wait_until(function() return metrics(5).swim_suspicions >= before + 1 end, 5))
    procs.signal(4, "CONT")
    assert.is_truthy(procs.wait_rejoined(4, 5, 20))
  end)

  it("counts and lists a failover, and times the placement, when a name's host is killed", function()
    local vid = "/metrics/room"
    assert.is_true(procs.value(4, "vreg", vid, 1))
    local leader = leader_no()
    local before5, before_l = metrics(5), metrics(leader)
    procs.kill(4)
    finally(function() if not procs.pid(4) then procs.start(4) end end)
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(5, 4) == "dead" end, 10))
    local ok, where = vcall(5, vid, "where", 10)
    assert.is_true(ok, tostring(where))
    assert.are_not.equal(procs.addr(4), where)
    -- every member whose registry applied the move counts it; the leader timed the placement
    -- from when it found the host gone, node 5 from when it applied the new placement
    for _, i in ipairs({ 5, leader }) do
      local b = i == 5 and before5 or before_l
      local m = procs.wait_until(function()
        local m = metrics(i)
        return m.failovers >= b.failovers + 1 and m.placement.count >= b.placement.count + 1 and m
      end, 10)
      assert.is_truthy(m, "member " .. i .. " counted no failover and no placement")
    end
    local fos = procs.value(5, "inspect_cluster").failovers
    local last = fos[#fos]
    assert.same({ vid, procs.addr(4), where }, { last.name, last.from, last.to })
    assert.is_true(last.time > 0)
    procs.start(4)
  end)

  it("counts a leader change when the leader is killed", function()
    local old = leader_no()
    local watcher = other_than(old, 4)
    local before = metrics(watcher).raft_leader_changes
    assert.is_true(before >= 1)               -- (it learned of a first leader)
    procs.kill(old)
    finally(function() if not procs.pid(old) then procs.start(old) end end)
    local new = procs.wait_until(function()
      local l = procs.value(watcher, "leader")
      return l and l ~= procs.addr(old) and l
    end, 20)
    assert.is_truthy(new, "no new leader")
    assert.is_truthy(procs.wait_until(function() return metrics(watcher).raft_leader_changes >= before + 1 end, 5))
    assert.are_not.equal(old, addr_no(new))
    procs.start(old)
  end)
end)
