-- Virtual actors in a cluster (3 voters 127.0.0.1-3 + 2 followers 127.0.0.4-5, real luajit
-- processes of two threads): a name registered once answers from every node and thread and
-- through the listeners, moves to another node when its host is killed, stopped or cut off,
-- and never has two activations answering. The cases run in order on one cluster.
local procs = require "helpers.cluster_procs"
local addr_no, vcall, leader_no, other_than = procs.addr_no, procs.vcall, procs.leader_no, procs.other_than
local process = require "helpers.process"

-- The member hosting vid now (asked from member i).
local function host_of(i, vid)
  local ok, where = vcall(i, vid, "where", 10)
  assert(ok, "where failed: " .. tostring(where))
  return addr_no(where)
end

-- What each member knows (printed when a case fails, to tell why).
local function diagnose(vid)
  for i = 1, 5 do
    if procs.pid(i) then
      local ok, t = pcall(procs.value, i, "lease_info")
      if ok then
        print(("member %d: lease %.2f s left, gen %d, boot %s, leader %s, %s resolves: %s; called from there: %s"):format(
          i, t.until_ - t.now, t.gen, t.boot, tostring(t.leader), vid, tostring(procs.value(i, "resolve", vid)),
          table.concat({ tostring(select(1, vcall(i, vid, "where", 2))), tostring(select(2, vcall(i, vid, "where", 2))) }, " ")))
      else
        print(("member %d: %s"):format(i, tostring(t)))
      end
    end
  end
end

describe("luact virtual actors in a cluster", function()
  setup(function()
    procs.setup()
    assert.is_truthy(procs.start_all(20))
  end)
  teardown(function() procs.teardown() end)
  -- every case starts from a calm cluster (the cases before may have killed, stopped or cut off
  -- members)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)

  it("registers once cluster-wide: first activation on the calling thread, taken everywhere else", function()
    assert.is_true(procs.value(4, { "vreg", thread = 2 }, "/room/1", 1))
    local where, thread = select(2, vcall(4, "/room/1", "where"))
    assert.equal(procs.addr(4), where)
    assert.equal(2, thread)
    for i = 1, 5 do
      assert.same({ false, "vid_registered" }, { procs.value(i, "try_vreg", "/room/1") })
    end
  end)

  it("resolves on every thread of every node and through any node's listeners, one activation", function()
    local n = 0
    for i = 1, 5 do
      for thread = 1, 2 do
        n = n + 1
        local ok, count, where = procs.value(i, { "vcall", thread = thread }, "/room/1", "join", 5, "p" .. n)
        assert.is_true(ok)
        assert.equal(n, count)
        assert.equal(procs.addr(4), where)
      end
    end
    -- a plain client of node 2's tcp:// listener, and curl on node 5's http:// listener
    local r = require("helpers.runtime").start({ n_core = 1 }, function()
      local luact = require "luact"
      luact.stop(luact.ref("tcp://127.0.0.2:8002/room/1"):join("tcp-client"))
    end)
    assert.equal(n + 1, r)
    local out = process.run([[curl -s -X POST -d '["http-client"]' http://127.0.0.5:9005/room/1/join]])
    assert.matches("^%[" .. (n + 2) .. ",", out)
  end)

  it("moves to another node when its host (a follower) is killed; the next call answers there", function()
    assert.is_true(procs.value(3, { "monitor_name", thread = 2 }, "/room/1"))
    procs.kill(4)
    finally(function() procs.start(4) end)
    -- (a call sent before the death is noticed fails with actor_unreachable: it was in flight)
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(5, 4) == "dead" end, 10))
    local ok, count, where = vcall(5, "/room/1", "join", 10, "after-kill")
    if not ok then diagnose("/room/1") end
    assert.is_true(ok, tostring(count))
    assert.equal(1, count)                              -- a new activation: state starts afresh
    assert.are_not.equal(procs.addr(4), where)
    -- a monitor on the name fired with the node's death
    assert.equal("actor_unreachable", procs.wait_until(function() return procs.value(3, { "monitored", thread = 2 }) end, 10))
    -- the http:// listener of a surviving node answers for it
    local out = process.run([[curl -s -X POST -d '["http-client"]' http://127.0.0.2:9002/room/1/join]])
    assert.matches("^%[2,", out)
  end)

  it("moves when its host is the Raft leader, and when it is a follower voter", function()
    for _, which in ipairs({ "leader", "voter" }) do
      local vid = "/room/" .. which
      local target = leader_no()
      if which == "voter" then target = target == 1 and 2 or 1 end
      assert.is_true(procs.value(target, "vreg", vid, 7))
      assert.equal(target, host_of(5, vid))
      procs.kill(target)
      finally(function() if not procs.pid(target) then procs.start(target) end end)
      local caller = other_than(target, 4)
      assert.is_truthy(procs.wait_until(function() return procs.state_seen(caller, target) == "dead" end, 10))
      local ok, where = vcall(caller, vid, "where", 10)
      assert.is_true(ok, tostring(where))
      assert.are_not.equal(procs.addr(target), where)
      procs.start(target)
      assert.is_truthy(procs.wait_until(function() return procs.state_seen(5, target) == "alive" end, 15))
    end
  end)

  it("hands its state over when its node stops with luact.stop", function()
    local vid = "/room/stopping"
    assert.is_true(procs.value(4, "vreg", vid, 12))
    for k = 1, 2 do assert.is_true((vcall(5, vid, "join", 5, "s" .. k))) end
    procs.call(4, "stop")                                 -- (its answer may not make it out)
    finally(function() procs.kill(4); procs.start(4) end)
    local ok, count, where = vcall(5, vid, "join", 10, "after-stop")
    assert.is_true(ok, tostring(count))
    assert.equal(3, count)                                -- the players came along
    assert.are_not.equal(procs.addr(4), where)
  end)

  it("after SIGSTOP of its host, answers from a new node; the old activation never answers again", function()
    local vid = "/room/stopped"
    local victim = other_than(leader_no(), 5)
    assert.is_true(procs.value(victim, "vreg", vid, 3))
    assert.is_true(procs.value(5, "pin", vid))
    procs.signal(victim, "STOP")
    finally(function() procs.signal(victim, "CONT") end)
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(5, victim) == "dead" end, 15))
    local ok, where = vcall(5, vid, "where", 15)
    assert.is_true(ok, tostring(where))
    assert.are_not.equal(procs.addr(victim), where)
    procs.signal(victim, "CONT")
    -- the old activation, called directly, refuses: its node's lease is gone for good
    assert.is_truthy(procs.wait_until(function() return procs.state_seen(5, victim) == "alive" end, 15))
    for _ = 1, 3 do
      local dok, why = procs.value(5, "dcall", vid, "where", 2)
      assert.is_false(dok)
      assert.is_truthy(why == "actor_no_body" or why == "actor_temporary_fail" or why == "actor_unreachable", why)
    end
    local ok2, where2 = vcall(victim, vid, "where", 10)    -- by name, from the stopped node itself
    assert.is_true(ok2)
    assert.equal(where, where2)
  end)

  it("unregisters cluster-wide, and the name can be registered again on another node", function()
    assert.is_true(procs.value(2, "vunreg", "/room/1"))
    assert.is_truthy(procs.wait_until(function()
      return select(2, vcall(5, "/room/1", "where", 1)) == "actor_no_body"
    end, 10))
    assert.is_true(procs.value(3, { "vreg", thread = 2 }, "/room/1", 9))
    assert.equal(3, host_of(1, "/room/1"))
  end)

  it("spreads a multi_actor name round robin over the nodes that registered it", function()
    for _, i in ipairs({ 1, 2, 5 }) do assert.is_true(procs.value(i, "vreg", "/pool", i, true)) end
    local seen = {}
    for _ = 1, 9 do
      local ok, where = vcall(3, "/pool", "where", 5)
      if not ok then diagnose("/pool") end
      assert.is_true(ok, tostring(where))
      seen[where] = (seen[where] or 0) + 1
    end
    assert.same({ [procs.addr(1)] = 3, [procs.addr(2)] = 3, [procs.addr(5)] = 3 }, seen)
  end)

  it("hands its state over when its node leaves gracefully, with no failed call", function()
    local vid = "/room/moving"
    assert.is_true(procs.value(5, "vreg", vid, 11))
    for k = 1, 3 do
      local ok, n = vcall(1, vid, "join", 5, "m" .. k)
      if not ok then diagnose(vid) end
      assert.is_true(ok, tostring(n))
    end
    assert.is_true(procs.value(5, "leave"))
    local ok, count, where = vcall(1, vid, "join", 10, "after-leave")
    if not ok then diagnose(vid) end
    assert.is_true(ok, tostring(count))
    assert.equal(4, count)                               -- the players came along
    assert.are_not.equal(procs.addr(5), where)
  end)
end)
