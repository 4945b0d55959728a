-- Persistent virtual actors (luact.register(vid, { persist = true }, ...), luact.save) on a
-- cluster of real luajit processes (3 voters 127.0.0.1-3 + 2 followers 127.0.0.4-5, two threads
-- each): a counter that saves at every call must never go backwards, whatever dies: its host
-- (kill -9, several times), the Raft leader while it saves, its host stopped (SIGSTOP) for
-- seconds, or its host cut off by a partition (whose saves are refused once it lost its lease,
-- and never overwrite its successor's state); an idle activation woken by the next call; a name
-- registered lazy (no activation until its first call), and a reminder that wakes one.
-- The cases run in order on one cluster.
local procs = require "helpers.cluster_procs"

local addr_no, leader_no = procs.addr_no, procs.leader_no

-- the member (number) hosting vid now, asked by name from member i
local function host_of(i, vid)
  local where = procs.wait_until(function()
    local ok, _, w = procs.value(i, "vcall", vid, "get", 2)
    return ok and w or nil
  end, 20)
  assert(where, vid .. " did not answer")
  return addr_no(where)
end

-- The last member (5..1) other than those listed: a follower when one is free (procs.other_than
-- picks the first).
local function other_than(...)
  local skip = {}
  for _, x in ipairs({ ... }) do skip[x] = true end
  for i = 5, 1, -1 do if not skip[i] then return i end end
end

-- Waits (bounded) for member i's counter on vid to finish; returns acked ({ value, where }) and
-- the failures' error names.
local function counter_result(i, vid, timeout)
  local r
  assert.is_truthy(procs.wait_until(function()
    local done, acked, failed = procs.value(i, "counter", vid)
    if done then r = { acked, failed } end
    return done
  end, timeout or 60), "the counter's calls did not end")
  return r[1], r[2]
end

-- Every acknowledged value exceeds the one before it (and `last`): no acknowledged save lost.
local function assert_never_backwards(acked, last, what)
  for k, a in ipairs(acked) do
    assert.is_true(a[1] > last, ("%s: call %d answered %d after %d had been acknowledged (at %s)"):format(
      what, k, a[1], last, tostring(a[2])))
    last = a[1]
  end
  return last
end

describe("luact persistent virtual actors", function()
  setup(function()
    procs.setup()
    for i = 1, 5 do procs.start(i) end
  end)
  teardown(function() procs.teardown() end)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)
  after_each(function() procs.heal() end)

  it("refuses a state that is not plain data or too large, saying why", function()
    assert.is_true(procs.value(4, "preg", "/durable/args"))
    local ok, saved, msg = procs.value(4, "vcall", "/durable/args", "save_bad", 5, "function")
    assert.is_true(ok)
    assert.is_false(saved)
    assert.is_truthy(msg:find("state.f is a function: plain data expected", 1, true), msg)
    ok, saved, msg = procs.value(4, "vcall", "/durable/args", "save_bad", 5, "big")
    assert.is_true(ok)
    assert.is_false(saved)
    assert.is_truthy(msg:find("at most 65536", 1, true), msg)
  end)

  it("a counter saved at every call continues from its last saved value after kill -9 of its host, 3 times", function()
    local vid = "/durable/count"
    assert.is_true(procs.value(4, "preg", vid))
    local last = 0
    for round = 1, 3 do
      local h = host_of(5, vid)
      local c = other_than(h)
      assert.is_true(procs.value(c, "start_counter", vid, 200, 0.01))
      os.execute("sleep 0.7")
      procs.kill(h)
      finally(function() if not procs.pid(h) then procs.start(h) end end)
      local acked = counter_result(c, vid)
      assert.is_true(#acked > 0, "nothing was acknowledged")
      local before = last
      last = assert_never_backwards(acked, last, "round " .. round)
      assert.is_true(acked[1][1] > before)
      -- it went on elsewhere, from where it was
      local moved = false
      for _, a in ipairs(acked) do if addr_no(a[2]) ~= h then moved = true end end
      assert.is_true(moved, ("round %d: no call was answered after the host %d was killed"):format(round, h))
      local n, where, from
      assert.is_truthy(procs.wait_until(function()
        local ok
        ok, n, where, from = procs.value(c, "vcall", vid, "get", 5)
        return ok
      end, 30), "the name did not answer")
      assert.is_true(n >= last, ("the counter is at %d, %d was acknowledged"):format(n, last))
      assert.is_truthy(from, "the new activation did not start from a saved state")
      assert.are_not.equal(procs.addr(h), where)
      procs.start(h)
    end
  end)

  it("kill -9 of the Raft leader while saving: no acknowledged save lost, and the registry holds the last one", function()
    local vid = "/durable/leader-kill"
    local leader = leader_no()
    local h = leader == 4 and 5 or 4
    local c = h == 4 and 5 or 4
    assert.is_true(procs.value(h, "preg", vid))
    assert.is_true(procs.value(c, "start_counter", vid, 200, 0.01))
    os.execute("sleep 0.7")
    procs.kill(leader)
    -- (one finally per case: busted keeps the last one given)
    finally(function()
      for _, i in ipairs({ leader, h }) do if not procs.pid(i) then procs.start(i) end end
    end)
    local acked = counter_result(c, vid)
    assert.is_true(#acked > 0, "nothing was acknowledged")
    local last = assert_never_backwards(acked, 0, "leader killed")
    local ok, n = procs.value(c, "vcall", vid, "get", 5)
    assert.is_true(ok)
    assert.is_true(n >= last)
    -- every acknowledged save reached the registry: a new activation starts from it
    procs.kill(h)
    local n2, where
    assert.is_truthy(procs.wait_until(function()
      -- (a call sent to the killed host before its death was known fails: it may have run)
      local ok2
      ok2, n2, where = procs.value(c, "vcall", vid, "get", 10)
      return ok2
    end, 30), "the name did not answer after its host was killed")
    assert.are_not.equal(procs.addr(h), where)
    assert.is_true(n2 >= last, ("after kill -9 of the leader and then of the host, the counter is at %d; %d was acknowledged")
      :format(n2, last))
  end)

  it("SIGSTOP of its host for 3 s: the counter never goes backwards, and the host resumes behind the new activation", function()
    local vid = "/durable/stopped"
    local leader = leader_no()
    local h = other_than(leader, 5)
    assert.is_true(procs.value(h, "preg", vid))
    assert.is_true(procs.value(5, "start_counter", vid, 300, 0.01))
    os.execute("sleep 0.7")
    procs.signal(h, "STOP")
    finally(function() procs.signal(h, "CONT") end)
    os.execute("sleep 3")
    procs.signal(h, "CONT")
    local acked = counter_result(5, vid)
    assert.is_true(#acked > 0, "nothing was acknowledged")
    local last = assert_never_backwards(acked, 0, "host stopped")
    local moved = false
    for _, a in ipairs(acked) do if addr_no(a[2]) ~= h then moved = true end end
    assert.is_true(moved, "no call was answered by a new activation while the host was stopped")
    -- from the resumed host, by name: the current activation, at the last value or beyond
    local n
    assert.is_truthy(procs.wait_until(function()
      local ok
      ok, n = procs.value(h, "vcall", vid, "get", 5)
      return ok
    end, 30), "the name did not answer from the resumed host")
    assert.is_true(n >= last, ("the counter is at %d; %d was acknowledged"):format(n, last))
  end)

  it("a host cut off by a partition: its saves are refused once it lost its lease, and never overwrite its successor's", function()
    local vid = "/durable/cut"
    local leader = leader_no()
    local h = other_than(leader, 5)
    assert.is_true(procs.value(h, "preg", vid))
    assert.is_true(procs.value(h, "pin", vid))
    for _ = 1, 5 do assert.is_true((procs.value(h, "dcall", vid, "incr", 5))) end
    assert.is_true(procs.value(5, "start_counter", vid, 150, 0.01))
    os.execute("sleep 0.3")
    procs.isolate(h, "drop")
    -- on the cut-off host: a save sent while its lease held, stuck in the partition (60 s to
    -- get an answer), and a method that saves after its lease ran out
    assert.is_true(procs.value(h, "start_dcall", "stuck", vid, "incr", 65, 60))
    assert.is_true(procs.value(h, "start_dcall", "late", vid, "incr", 10, 5, 1.5))
    local late = procs.wait_until(function() return procs.value(h, "dcall_result", "late") end, 10)
    assert.is_truthy(late, "the late save did not end")
    assert.is_false(late[1])
    assert.equal("save_refused", late[2])
    assert.is_truthy(tostring(late[3]):find("lease ran out", 1, true), tostring(late[3]))
    -- the majority's side goes on with a new activation, from the saved state
    local acked = counter_result(5, vid)
    assert.is_true(#acked > 0, "nothing was acknowledged")
    local last = assert_never_backwards(acked, 5, "partition")
    assert.are_not.equal(procs.addr(h), acked[#acked][2])
    -- one more, with time to spare: the value the registry must hold from now on
    local ok, m = procs.value(5, "vcall", vid, "incr", 10)
    assert.is_true(ok, tostring(m))
    assert.is_true(m > last)
    last = m
    procs.heal()
    local stuck = procs.wait_until(function() return procs.value(h, "dcall_result", "stuck") end, 70)
    assert.is_truthy(stuck, "the stuck save did not end")
    assert.is_false(stuck[1], "a save from the cut-off host was acknowledged after the name moved")
    if stuck[2] == "save_refused" then
      assert.is_truthy(tostring(stuck[3]):find("no longer places the name on this activation", 1, true), tostring(stuck[3]))
    elseif stuck[2] == "cluster_unavailable" then
      -- (it waited past its deadline: it may or may not have been saved, and says why)
      assert.is_truthy(tostring(stuck[3]):find("lease ran out while the save waited", 1, true), tostring(stuck[3]))
    else
      -- (its node learnt that it was given up for dead and killed the activation first)
      assert.equal("actor_no_body", stuck[2])
    end
    -- whatever became of it, the registry holds the new activation's last save
    os.execute("sleep 1")
    for _, i in ipairs({ 5, h }) do
      local st = procs.wait_until(function()
        local s = procs.value(i, "saved", vid)
        return s and s.n >= last and s
      end, 10)
      assert.is_truthy(st, "member " .. i .. " does not hold the last acknowledged save")
      assert.equal(last, st.n)
    end
    local gok, n = procs.value(h, "vcall", vid, "get", 10)
    assert.is_true(gok)
    assert.equal(last, n)
  end)

  it("an idle activation goes away; the next call, from any node and thread or through a listener, activates it from its saved state", function()
    local vid = "/durable/idle"
    assert.is_true(procs.value(4, "preg", vid, 0.5))
    for k = 1, 3 do
      local ok, n = procs.value(4, "vcall", vid, "incr", 5)
      assert.is_true(ok)
      assert.equal(k, n)
    end
    local function idle_everywhere()
      return procs.wait_until(function()
        for _, i in ipairs({ 1, 5 }) do
          local st = procs.value(i, "vstates", vid)
          if not (#st == 1 and st[1] == "idle") then return nil end
        end
        return true
      end, 15)
    end
    local want = 3
    local callers = {
      function() return procs.value(2, { "vcall", thread = 2 }, vid, "incr", 10) end,
      function() return procs.value(5, "vcall", vid, "incr", 10) end,
      function() return procs.value(3, "ucall", "tcp://127.0.0.1:8001" .. vid, "incr", 10) end,
    }
    for k, call in ipairs(callers) do
      assert.is_truthy(idle_everywhere(), ("round %d: the activation did not go idle"):format(k))
      want = want + 1
      local ok, n = call()
      assert.is_true(ok, ("round %d: %s"):format(k, tostring(n)))
      assert.equal(want, n)
    end
  end)

  it("a name registered lazy has no activation until its first call, from any node and thread, activates it once", function()
    local vid = "/durable/lazy"
    assert.is_true(procs.value(4, "preg", vid, nil, true))
    local function states_everywhere(want)
      return procs.wait_until(function()
        for _, i in ipairs({ 1, 4, 5 }) do
          if table.concat(procs.value(i, "vstates", vid), ",") ~= want then return nil end
        end
        return true
      end, 15)
    end
    assert.is_truthy(states_everywhere("idle"), "the lazy name was not filed idle on every member")
    -- taken: a second registration of the name, lazy or not, is refused
    local again = procs.call(5, "preg", vid, nil, true)
    assert.is_false(again[1])
    assert.is_truthy(tostring(again[2]):find("vid_registered", 1, true), tostring(again[2]))
    -- the first call (thread 2 of another node) creates it; the next one, from a third node,
    -- reaches the same activation, started from nothing
    local first = { procs.value(2, { "vcall", thread = 2 }, vid, "incr", 10) }
    assert.is_true(first[1], tostring(first[2]))
    assert.equal(1, first[2])
    local ok, n, where, started = procs.value(5, "vcall", vid, "get", 10)
    assert.is_true(ok)
    assert.equal(1, n)
    assert.is_false(started)            -- its constructor got no saved state
    assert.equal(first[3], where)       -- the same activation
    assert.is_truthy(states_everywhere("active"), "the woken name is not active on every member")
  end)

  it("a reminder set on a name with no activation wakes it", function()
    local vid = "/durable/lazy_remind"
    assert.is_true(procs.value(4, "rreg", vid, true))
    assert.is_truthy(procs.wait_until(function()
      return table.concat(procs.value(1, "vstates", vid), ",") == "idle"
    end, 15), "the lazy name was not filed idle")
    assert.is_true(procs.value(4, "remind", vid, "tick", { every = 0.2 }))
    local rung = procs.wait_until(function()
      for i = 1, 5 do
        for _, th in ipairs({ 1, 2 }) do
          local r = procs.call(i, { "ring_log", thread = th }, vid)
          if r[1] and #r[2] >= 2 then return true end
        end
      end
    end, 15)
    assert.is_truthy(rung, "the reminder never called the name: nothing woke it")
    assert.is_true(procs.value(4, "remind", vid, "tick", nil))
  end)
end)
