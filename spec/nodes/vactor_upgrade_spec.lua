-- Upgrading a virtual actor's code in place (issue 26): luact.register(vid, { upgrade = true },
-- ctor, ...) on a registered name. 5 members (3 voters, 2 followers), real luajit processes of
-- two threads; clients on two members call the names by name all along. No call may fail; the
-- state goes over through __actor_handoff__; afterwards every node and thread reaches the new
-- code. Also: an idle name, a persistent one (its new code starts from its last save), a
-- multi_actor one (every activation re-created), a constructor that raises (the name waits
-- for an upgrade that works), each refusal, and 1000 names (UPGRADE_NAMES)
-- upgraded under calls. (With the old activation killed before the new one was placed, the
-- name was lost (actor_no_body); with calls on a calm cluster not retried, the many-names case
-- saw actor_temporary_fail: the checks can fail.) The cases run in order.
local procs = require "helpers.cluster_procs"
local vcall = procs.vcall

-- the version and the handed-over player count the activation of vid answers, asked from
-- member i's thread t (nil when it answers the old code)
local function version_at(i, t, vid)
  local ok, version, started_with = procs.value(i, { "vcall", thread = t }, vid, "version_of", 10)
  if not ok then return nil, version end
  return version, started_with
end

describe("luact virtual actors upgraded in place", function()
  setup(function()
    procs.setup()
    assert.is_truthy(procs.start_all(20))
  end)
  teardown(function() procs.teardown() end)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)

  it("keeps answering through the swap, hands the state over, then answers with the new code everywhere", function()
    local vids = { "/up/a", "/up/b" }
    assert.is_true(procs.value(4, { "vreg", thread = 2 }, vids[1], 1))
    assert.is_true(procs.value(1, "vreg", vids[2], 2))
    local before = { select(2, vcall(5, vids[1], "where")) }
    assert.equal(procs.addr(4), before[1])
    -- clients on member 5 (thread 1) and member 3 (thread 2)
    assert.is_true(procs.value(5, "start_upcalls", vids, 4, 100000, 0.002))
    assert.is_true(procs.value(3, { "start_upcalls", thread = 2 }, vids, 4, 100000, 0.002))
    os.execute("sleep 1")
    -- the upgrade, from a third member
    for k, vid in ipairs(vids) do assert.same({ true }, { procs.value(2, "vupgrade", vid, k, 2) }) end
    for _, vid in ipairs(vids) do
      assert.is_truthy(procs.wait_until(function() return version_at(5, 1, vid) == 2 end, 20), vid .. " not upgraded")
    end
    os.execute("sleep 1")
    local calls5, failed5, ok5, _, version5 = procs.value(5, "up_stop")
    local calls3, failed3, ok3, _, version3 = procs.value(3, { "up_stop", thread = 2 })
    print(("upgrade under calls: %d calls by name, %d failed"):format(calls5 + calls3, #failed5 + #failed3))
    assert.is_true(calls5 > 100 and calls3 > 100, "the clients did not run")
    assert.same({}, failed5)
    assert.same({}, failed3)
    for _, vid in ipairs(vids) do
      assert.equal(2, version5[vid])
      assert.equal(2, version3[vid])
      -- every join made it into the state the new code has: it was handed over
      local ok, count, _, version = vcall(4, vid, "join", 10, "last")
      assert.is_true(ok, tostring(count))
      assert.equal(2, version)
      assert.equal(ok5[vid] + ok3[vid] + 1, count)
      -- and every node and thread reaches the new code
      for i = 1, 5 do
        for t = 1, 2 do
          local v, started_with = version_at(i, t, vid)
          assert.equal(2, v)
          assert.is_true(started_with > 0)
        end
      end
    end
    -- in place: the same node and thread
    assert.same({ procs.addr(4), 2, 2 }, { select(2, vcall(1, vids[1], "where")) })
    -- and through a listener
    local out = require("helpers.process").run([[curl -s -X POST -d '[]' http://127.0.0.5:9005/up/a/version_of]])
    assert.matches("^%[2,", out)
  end)

  it("starts a persistent name's new code from its last save", function()
    assert.is_true(procs.value(2, "preg", "/up/p"))
    for k = 1, 3 do assert.equal(k, select(2, vcall(5, "/up/p", "incr", 10))) end
    assert.same({ true }, { procs.value(3, "pupgrade", "/up/p") })
    assert.is_truthy(procs.wait_until(function()
      local ok, version, started_from = vcall(4, "/up/p", "version_of", 10)
      return ok and version == 2 and started_from == 3
    end, 20), "not upgraded from its save")
    assert.equal(4, select(2, vcall(1, "/up/p", "incr", 10)))
  end)

  it("re-creates every activation of a multi_actor name with its own state", function()
    assert.is_true(procs.value(1, "vreg", "/up/multi", 1, true))
    assert.is_true(procs.value(4, "vreg", "/up/multi", 1, true))
    for k = 1, 8 do assert.is_true((vcall(5, "/up/multi", "join", 10, "m" .. k))) end
    assert.same({ true }, { procs.value(2, "vupgrade", "/up/multi", 1, 2) })
    -- (round robin: 8 calls in a row reach both activations)
    assert.is_truthy(procs.wait_until(function()
      for _ = 1, 8 do
        local ok, version, started_with = vcall(5, "/up/multi", "version_of", 10)
        if not (ok and version == 2 and started_with > 0) then return nil end
      end
      return true
    end, 20), "not every activation upgraded")
  end)

  it("ends with the last code and the state of every swap when upgrades follow each other", function()
    assert.is_true(procs.value(1, { "vreg", thread = 2 }, "/up/twice", 1))
    for k = 1, 3 do assert.is_true((vcall(5, "/up/twice", "join", 10, "t" .. k))) end
    for version = 2, 5 do assert.same({ true }, { procs.value(1 + version % 5, "vupgrade", "/up/twice", 1, version) }) end
    assert.is_truthy(procs.wait_until(function() return version_at(3, 2, "/up/twice") == 5 end, 20), "not at version 5")
    local ok, count, where, version = vcall(4, "/up/twice", "join", 10, "t4")
    assert.is_true(ok, tostring(count))
    assert.same({ 4, procs.addr(1), 5 }, { count, where, version })
  end)

  it("gives an idle name the new code for its next activation", function()
    assert.same({ true }, { procs.value(1, "vupgrade", "/up/lazy", 7, 1, true) })
    assert.same({ true }, { procs.value(3, "vupgrade", "/up/lazy", 7, 2) })
    local v, started_with = version_at(5, 2, "/up/lazy")
    assert.equal(2, v)
    assert.equal(0, started_with)
  end)

  it("waits with a constructor that raises until an upgrade that works, which gets the handed-over state", function()
    assert.is_true(procs.value(4, "vreg", "/up/bad", 1))
    for k = 1, 3 do assert.is_true((vcall(5, "/up/bad", "join", 10, "b" .. k))) end
    assert.same({ true }, { procs.value(2, "try_vupgrade", "/up/bad", { upgrade = true }, "raise") })
    assert.is_truthy(procs.wait_until(function()
      return select(2, vcall(5, "/up/bad", "join", 1, "lost")) == "actor_timeout"
    end, 20), "the broken code did not leave the name waiting")
    assert.same({ true }, { procs.value(2, "vupgrade", "/up/bad", 1, 2) })
    local ok, version, started_with = vcall(5, "/up/bad", "version_of", 10)
    assert.is_true(ok, tostring(version))
    assert.equal(2, version)
    assert.equal(3, started_with)
  end)

  it("refuses an unknown name, a node's own name, other options and bad types", function()
    assert.same({ false, "actor_no_body" }, { procs.value(2, "vupgrade", "/up/nobody", 1, 2) })
    local function refused(opts, ctor)
      local ok, e = procs.value(2, "try_vupgrade", "/up/a", opts, ctor)
      assert.is_false(ok)
      return e
    end
    assert.matches("only a name registered in the cluster", refused({ upgrade = true, scope = "node" }))
    assert.matches("boolean expected", refused({ upgrade = "yes" }))
    assert.matches("bad 'persist' option.*an upgrade changes only the constructor", refused({ upgrade = true, persist = true }))
    assert.matches("bad 'multi_actor' option", refused({ upgrade = true, multi_actor = true }))
    assert.matches("must be a function", refused({ upgrade = true }, "table"))
    -- (the name is untouched)
    assert.equal(2, version_at(4, 1, "/up/a"))
  end)

  it("upgrades many names under calls with no failed call", function()
    local calls, failed, names, committed, took = procs.upgrade_under_load(tonumber(os.getenv("UPGRADE_NAMES")) or 1000, 8)
    print(("%d names upgraded under calls: committed in %.1f s, all answering the new code after %.1f s; " ..
           "%d calls by name, %d failed"):format(names, committed, took, calls, #failed))
    assert.is_true(calls > 100, "the clients did not run")
    assert.same({}, failed)
  end)
end)
