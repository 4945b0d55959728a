-- Virtual actors under the faults that end a host's lease without killing it (3 voters
-- 127.0.0.1-3 + 2 followers 127.0.0.4-5, real luajit processes of two threads): partitions that
-- drop and that answer with resets, a host cut off from the leader alone, a majority lost for
-- seconds, the leader stopped, a node restarted. The two promises checked each time: the name
-- answers again (bounded) once a majority is healthy, and never from two activations at
-- overlapping times (the old activation's last answer precedes the new one's first, on the
-- wall clock all processes of this machine share). The cases run in order on one cluster.
local procs = require "helpers.cluster_procs"
local addr_no, vcall, leader_no, other_than = procs.addr_no, procs.vcall, procs.leader_no, procs.other_than

-- Waits (bounded) until vid answers `where` by name from member i; returns the host's address.
local function answers_from(i, vid, timeout)
  return procs.wait_until(function()
    local ok, where = vcall(i, vid, "where", 1)
    return ok and where or nil
  end, timeout)
end

-- Every `where` that activations of id answered on member i (wall clock), sorted.
local function served(i, id)
  local t = procs.value(i, "served_log", id)
  for _, x in ipairs(procs.value(i, { "served_log", thread = 2 }, id)) do t[#t + 1] = x end
  table.sort(t)
  return t
end

-- No overlap: whatever the old host's activation answered precedes the new host's first answer.
local function assert_no_overlap(old_host, new_host, id)
  local old_times, new_times = served(old_host, id), served(new_host, id)
  assert.is_true(#old_times > 0 and #new_times > 0, "no answers logged")
  assert.is_true(old_times[#old_times] < new_times[1],
    ("old activation answered until %.3f, the new one first at %.3f"):format(old_times[#old_times], new_times[1]))
end

describe("luact virtual actors when a host loses its lease", function()
  setup(function()
    procs.setup()
    for i = 1, 5 do procs.start(i) end
  end)
  teardown(function() procs.teardown() end)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)
  after_each(function() procs.heal() end)

  for n, how in ipairs({ "drop", "reject" }) do
    it(("a partition that %ss: the isolated host stops answering before the new activation first answers"):format(how), function()
      local vid, id = "/cut/" .. how, 10 + n
      local victim = other_than(leader_no(), 5)
      assert.is_true(procs.value(victim, "vreg", vid, id))
      assert.is_true(procs.value(victim, "pin", vid))
      -- the isolated side keeps calling its own activation all along
      assert.is_true(procs.value(victim, "start_hammer", vid, 8))
      os.execute("sleep 0.3")
      local boot_before = procs.value(victim, "lease_info").boot
      -- the majority's side calls the name every 5 ms: the new activation answers as early as
      -- it can, so an overlap with the old one's answers would show
      assert.is_true(procs.value(5, "start_failover_probe", vid, procs.addr(victim), 20))
      procs.isolate(victim, how)
      local r = procs.wait_until(function() return procs.value(5, "failover_result") end, 25)
      assert.is_truthy(r and r[1], "no activation answered on the majority's side")
      local where = r[2]
      assert.are_not.equal(procs.addr(victim), where)
      -- on its own node, the old activation now refuses (its lease ran out before the new one)
      local dok, why = procs.value(victim, "dcall", vid, "where", 2)
      assert.is_false(dok)
      assert.is_truthy(why == "actor_no_body" or why == "actor_temporary_fail", tostring(why))
      os.execute("sleep 8")                             -- the hammer has stopped
      procs.heal()
      assert_no_overlap(victim, addr_no(where), id)
      -- back from the partition: given up for dead, it hosts again under a new boot id, and the
      -- name answers from it too
      assert.is_truthy(procs.wait_until(function()
        local t = procs.value(victim, "lease_info")
        return t.boot ~= boot_before and t.until_ > t.now
      end, 20))
      assert.equal(where, answers_from(victim, vid, 20))
    end)
  end

  it("a host cut off from the leader alone: its name moves while the cut lasts, never answering twice", function()
    local vid, id = "/cut/leader-only", 21
    local leader = leader_no()
    local victim = other_than(leader, 5)
    assert.is_true(procs.value(victim, "vreg", vid, id))
    assert.is_true(procs.value(victim, "pin", vid))
    assert.is_true(procs.value(victim, "start_hammer", vid, 8))
    os.execute("sleep 0.3")
    assert.is_true(procs.value(5, "start_failover_probe", vid, procs.addr(victim), 20))
    procs.cut_pair(victim, leader, "drop")
    -- the victim still talks to every other member: membership may keep it alive, yet it
    -- cannot serve without its lease; the leader must not leave the name silent
    local r = procs.wait_until(function() return procs.value(5, "failover_result") end, 25)
    assert.is_truthy(r and r[1], "the name did not move while its host was cut off from the leader")
    local where = r[2]
    os.execute("sleep 8")
    procs.heal()
    assert_no_overlap(victim, addr_no(where), id)
    assert.equal(where, answers_from(victim, vid, 15))
  end)

  it("a majority lost for seconds: names on every host answer again once a leader is back", function()
    local leader = leader_no()
    local voters_down = {}
    for _, v in ipairs(procs.VOTERS) do if v ~= leader and #voters_down < 2 then voters_down[#voters_down + 1] = v end end
    -- names hosted by the leader (the one voter left) and by both followers
    local vids = {}
    for _, h in ipairs({ leader, 4, 5 }) do
      local vid = "/majority/" .. h
      assert.is_true(procs.value(h, "vreg", vid, 30 + h))
      vids[#vids + 1] = vid
    end
    for _, v in ipairs(voters_down) do procs.kill(v) end
    finally(function() for _, v in ipairs(voters_down) do if not procs.pid(v) then procs.start(v) end end end)
    os.execute("sleep 3")                             -- every lease has run out by now
    procs.start(voters_down[1])                       -- a majority again
    for _, vid in ipairs(vids) do
      assert.is_truthy(answers_from(5, vid, 15), vid .. " did not answer again after the majority came back")
    end
  end)

  it("the leader stopped for 3 s: every name answers again after it resumes", function()
    local leader = leader_no()
    local vids = {}
    for _, h in ipairs({ leader, other_than(leader, 4, 5), 4, 5 }) do
      local vid = "/stopped-leader/" .. h
      assert.is_true(procs.value(h, "vreg", vid, 40 + h))
      vids[#vids + 1] = vid
    end
    procs.signal(leader, "STOP")
    finally(function() procs.signal(leader, "CONT") end)
    os.execute("sleep 3")
    procs.signal(leader, "CONT")
    for _, vid in ipairs(vids) do
      assert.is_truthy(answers_from(5, vid, 15), vid .. " did not answer again after the leader resumed")
      assert.is_truthy(answers_from(4, vid, 15), vid .. " did not answer again (from member 4)")
    end
  end)

  it("a restarted node's first call by name reaches the name, also one it hosted before", function()
    for round = 1, 3 do
      local vid = "/restarted/" .. round
      assert.is_true(procs.value(4, "vreg", vid, 50 + round))
      procs.kill(4)
      procs.start(4)
      local ok, where = vcall(4, vid, "where", 10)
      assert.is_true(ok, ("round %d: the first call by name failed: %s"):format(round, tostring(where)))
      assert.are_not.equal(nil, where)
      assert.is_truthy(procs.settle(40), "the cluster did not settle")
    end
  end)
end)
