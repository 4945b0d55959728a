-- luact.cluster.registry: the replicated state machine (pure): commands, guards, retries
-- answered from the first result, and snapshots that restore the same state.
local registry = require "luact.cluster.registry"

describe("luact.cluster.registry", function()
  local r
  before_each(function() r = registry.new() end)

  it("sets, deletes and compares-and-sets by value", function()
    assert.is_true(r:apply(1, { op = "set", k = "a", v = { x = 1 } }))
    assert.same({ x = 1 }, r:get("a"))
    assert.is_false(r:apply(2, { op = "cas", k = "a", old = { x = 2 }, new = 5 }))
    assert.is_true(r:apply(3, { op = "cas", k = "a", old = { x = 1 }, new = 5 }))
    assert.equal(5, r:get("a"))
    assert.is_true(r:apply(4, { op = "cas", k = "b", old = nil, new = 1 }))
    assert.is_false(r:apply(5, { op = "cas", k = "b", old = nil, new = 2 }))
    assert.is_true(r:apply(6, { op = "del", k = "a" }))
    assert.is_false(r:apply(7, { op = "del", k = "a" }))
    assert.same({ "b" }, r:keys(""))
    assert.equal(7, r.applied)
  end)

  it("answers a retried request with its first result instead of applying it again", function()
    assert.is_true(r:apply(1, { op = "cas", k = "n", old = nil, new = 1, req = "x:1" }))
    assert.is_true(r:apply(2, { op = "cas", k = "n", old = nil, new = 1, req = "x:1" }))   -- retry
    assert.is_false(r:apply(3, { op = "cas", k = "n", old = nil, new = 1, req = "x:2" }))  -- a new one
  end)

  it("keeps a guarded key for its owner until released or the owner is dropped", function()
    assert.is_true(r:apply(1, { op = "reg", k = "lobby", v = "n1", owner = "b1", addr = "127.0.0.1:1" }))
    assert.is_false(r:apply(2, { op = "reg", k = "lobby", v = "n2", owner = "b2", addr = "127.0.0.2:1" }))
    assert.is_false(r:apply(3, { op = "set", k = "lobby", v = "x" }))
    assert.is_false(r:apply(4, { op = "del", k = "lobby" }))
    assert.is_false(r:apply(5, { op = "release", k = "lobby", owner = "b2" }))
    assert.equal("n1", r:get("lobby"))
    assert.same({ b1 = "127.0.0.1:1" }, r:guard_owners())
    assert.equal(1, r:apply(6, { op = "drop_owner", owner = "b1" }))
    assert.is_nil(r:get("lobby"))
    assert.is_true(r:apply(7, { op = "reg", k = "lobby", v = "n2", owner = "b2", addr = "127.0.0.2:1" }))
    assert.is_true(r:apply(8, { op = "release", k = "lobby", owner = "b2" }))
    assert.is_nil(r:get("lobby"))
  end)

  it("refuses unknown and malformed commands the same way everywhere", function()
    assert.same({ nil, "unknown command 'drop_table'" }, { r:apply(1, { op = "drop_table" }) })
    assert.same({ nil, "not a command" }, { r:apply(2, "set a 1") })
    assert.same({ nil, "undecodable command" }, { r:apply_data(3, "\255\255garbage") })
    assert.equal(3, r.applied)
  end)

  it("restores from a snapshot to the same state, retries included", function()
    r:apply(1, { op = "set", k = "a", v = 1, req = "q:1" })
    r:apply(2, { op = "reg", k = "g", v = true, owner = "b", addr = "x" })
    local copy = registry.new()
    copy:restore(r:snapshot(), 2)
    assert.equal(1, copy:get("a"))
    assert.same({ b = "x" }, copy:guard_owners())
    assert.equal(2, copy.applied)
    assert.is_true(copy:apply(3, { op = "set", k = "a", v = 9, req = "q:1" }))
    assert.equal(1, copy:get("a"))             -- the retry was answered, not applied
  end)

  describe("saves of a persistent virtual actor", function()
    local function reg()
      return r:apply(1, { op = "vreg", vid = "/c", ctor = "", args = "", persist = true,
                          node = "n1", boot = "b1", t = 1, e = 7, l = 100 })
    end
    local function save(index, key, seq, data, where)
      where = where or {}
      local item = { vid = "/c", key = key, boot = where.boot or "b1", t = where.t or 1, e = 7, l = where.l or 100,
                     seq = seq, data = data }
      return r:apply(index, { op = "vsaves", items = { item } })[1]
    end

    it("keeps the last save, in the order the activation made them", function()
      local key = reg()
      assert.is_true(r:apply(2, { op = "vsaves", items = {
        { vid = "/c", key = key, boot = "b1", t = 1, e = 7, l = 100, seq = 1, data = "one" },
        { vid = "/c", key = key, boot = "b1", t = 1, e = 7, l = 100, seq = 2, data = "two" } } })[2])
      assert.equal("two", r:vid("/c").saved)
      assert.is_true(save(3, key, 1, "one again"))      -- an older save arriving late: superseded
      assert.equal("two", r:vid("/c").saved)
      assert.is_true(save(4, key, 3, "three"))
      assert.equal("three", r:vid("/c").saved)
    end)

    it("refuses saves from an activation the name is no longer placed on, and keeps the state for the next", function()
      local key = reg()
      assert.is_true(save(2, key, 1, "1"))
      assert.equal("moved", save(3, key, 2, "2", { l = 101 }))         -- another actor of that process
      assert.is_true(r:apply(4, { op = "vcondemn", boot = "b1" }))
      assert.equal("moved", save(5, key, 2, "2"))                      -- condemned, not moved yet
      assert.is_true(r:apply(6, { op = "vplace", vid = "/c", key = key, from_boot = "b1", node = "n2", boot = "b2" }))
      assert.equal("moved", save(7, key, 3, "3"))
      assert.equal("moved", save(8, key, 1, "x", { boot = "b2" }))    -- placed there, not created yet
      assert.is_true(r:apply(9, { op = "vactive", vid = "/c", key = key, boot = "b2", t = 1, e = 7, l = 5 }))
      assert.equal("1", r:vid("/c").saved)                             -- what the new activation starts from
      assert.is_true(save(10, key, 1, "4", { boot = "b2", l = 5 }))   -- its own saves count from 1
      assert.equal("4", r:vid("/c").saved)
      local copy = registry.new()
      copy:restore(r:snapshot(), 10)
      assert.equal("4", copy:vid("/c").saved)
      assert.is_true(r:apply(11, { op = "vunreg", vid = "/c" }) ~= nil)
      assert.equal("gone", save(12, key, 2, "5", { boot = "b2", l = 5 }))
    end)

    it("moves many activations in one command, each as vplace would", function()
      local key = reg()
      assert.is_true(r:apply(2, { op = "vreg", vid = "/d", ctor = "", args = "", node = "n1", boot = "b1", t = 1, e = 7, l = 101 }) ~= nil)
      local dkey = r:vid("/d") and next(r:vid("/d").acts)
      assert.is_true(r:apply(3, { op = "vcondemn", boot = "b1" }))
      local res = r:apply(4, { op = "vmoves", moves = {
        { vid = "/c", key = key, from_boot = "b1", node = "n2", boot = "b2", why = "failover" },
        { vid = "/d", key = dkey, from_boot = "bX", node = "n2", boot = "b2" },     -- not held by bX: refused
        { vid = "/nobody", key = "/nobody#1", from_boot = "b1", node = "n2", boot = "b2" },
        "bad" } })
      assert.same({ true, false, false, false }, res)
      local act = r:vid("/c").acts[key]
      assert.same({ "pending", "n2", "b2", "failover" }, { act.state, act.node, act.boot, act.why })
      assert.equal("b1", r:vid("/d").acts[dkey].boot)
      assert.same({}, r:apply(5, { op = "vmoves" }))
    end)

    it("bounds the state and touches no name", function()
      local key = reg()
      r:take_touched()
      assert.equal("too_large", save(2, key, 1, ("x"):rep(64 * 1024 + 1)))
      assert.is_true(save(3, key, 2, ("x"):rep(64 * 1024)))
      assert.same({}, r:take_touched())
      assert.equal("bad", r:apply(4, { op = "vsaves", items = { 5 } })[1])
    end)
  end)

  describe("reminders of a virtual actor", function()
    it("keeps them with the name, with a revision, and removes a one-shot only at the revision that fired", function()
      local key = r:apply(1, { op = "vreg", vid = "/r", ctor = "", args = "", node = "n1", boot = "b1", t = 1, e = 7, l = 1 })
      r:take_touched()
      assert.is_true(r:apply(2, { op = "vremind", vid = "/r", name = "a", spec = { at = 10 } }))
      assert.same({ ["/r"] = true }, r:take_touched())            -- its host re-arms its timers
      local rev = r:vid("/r").reminders.a.rev
      assert.is_true(r:apply(3, { op = "vremind", vid = "/r", name = "a", spec = { at = 20 } }))   -- replaced
      assert.is_false(r:apply(4, { op = "vremind", vid = "/r", name = "a", rev = rev }))         -- an old firing
      assert.equal(20, r:vid("/r").reminders.a.at)
      assert.is_true(r:apply(5, { op = "vremind", vid = "/r", name = "a", rev = r:vid("/r").reminders.a.rev }))
      assert.is_nil(r:vid("/r").reminders)
      assert.is_false(r:apply(6, { op = "vremind", vid = "/r", name = "a" }))
      assert.equal("no_name", r:apply(7, { op = "vremind", vid = "/nobody", name = "a", spec = { at = 1 } }))
      -- a placed activation is marked so (its host owes periodic reminders a beat at once)
      assert.is_true(r:apply(8, { op = "vremind", vid = "/r", name = "b", spec = { every = 1, at = 1 } }))
      assert.is_true(r:apply(9, { op = "vplace", vid = "/r", key = key, from_boot = "b1", node = "n2", boot = "b2" }))
      assert.is_true(r:vid("/r").acts[key].placed)
      local copy = registry.new()
      copy:restore(r:snapshot(), 9)
      assert.equal(1, copy:vid("/r").reminders.b.every)
    end)
  end)

  describe("idle activations", function()
    it("files an idle activation with no node, and a call's wake places it once", function()
      local key = r:apply(1, { op = "vreg", vid = "/i", ctor = "", args = "", persist = true, idle = 0.5,
                               node = "n1", boot = "b1", t = 1, e = 7, l = 1 })
      assert.equal(0.5, r:vid("/i").idle)
      assert.is_false(r:apply(2, { op = "vsleep", vid = "/i", key = key, boot = "b1", t = 1, e = 7, l = 2 }))  -- another actor
      assert.is_true(r:apply(3, { op = "vsleep", vid = "/i", key = key, boot = "b1", t = 1, e = 7, l = 1 }))
      assert.same({ state = "idle" }, r:vid("/i").acts[key])   -- (idle: no node, nothing else)
      assert.equal("moved", r:apply(4, { op = "vsaves", items = { { vid = "/i", key = key, boot = "b1", t = 1, e = 7, l = 1,
                                                                 seq = 1, data = "x" } } })[1])
      assert.is_true(r:apply(5, { op = "vwake", vid = "/i", node = "n2", boot = "b2" }))
      assert.is_false(r:apply(6, { op = "vwake", vid = "/i", node = "n3", boot = "b3" }))   -- woken already
      assert.equal("n2", r:vid("/i").acts[key].node)
      assert.equal("pending", r:vid("/i").acts[key].state)
      -- a name with reminders stays
      assert.is_true(r:apply(7, { op = "vactive", vid = "/i", key = key, boot = "b2", t = 1, e = 7, l = 9 }))
      assert.is_true(r:apply(8, { op = "vremind", vid = "/i", name = "x", spec = { at = 1 } }))
      assert.is_false(r:apply(9, { op = "vsleep", vid = "/i", key = key, boot = "b2", t = 1, e = 7, l = 9 }))
    end)

    it("files a name registered lazy idle, with no node; it is taken, and a wake places it", function()
      local key = r:apply(1, { op = "vreg", vid = "/l", ctor = "", args = "", persist = true, lazy = true })
      assert.same({ state = "idle" }, r:vid("/l").acts[key])   -- (idle: no node, nothing else)
      assert.is_false(r:apply(2, { op = "vreg", vid = "/l", ctor = "", args = "", lazy = true }))
      assert.is_false(r:apply(3, { op = "vreg", vid = "/l", ctor = "", args = "", node = "n1", boot = "b1", t = 1, e = 7, l = 1 }))
      assert.is_true(r:apply(4, { op = "vwake", vid = "/l", node = "n2", boot = "b2" }))
      assert.equal("pending", r:vid("/l").acts[key].state)
      local copy = registry.new()
      copy:restore(r:snapshot(), 4)
      assert.equal("n2", copy:vid("/l").acts[key].node)
    end)

    it("keeps each distinct constructor once, in the state and in a snapshot, until its last name goes", function()
      local big = ("c"):rep(1000)
      for i = 1, 50 do
        assert.is_string(r:apply(i, { op = "vreg", vid = "/n/" .. i, ctor = big, args = "", lazy = true }))
      end
      r:apply(51, { op = "vreg", vid = "/other", ctor = "other", args = "", lazy = true })
      assert.equal(big, r:ctor(r:vid("/n/7")))
      assert.equal("other", r:ctor(r:vid("/other")))
      local ids = 0
      for _ in pairs(r.ctors) do ids = ids + 1 end
      assert.equal(2, ids)
      -- 50 names with a 1000-byte constructor: the snapshot holds it once
      local snap = r:snapshot()
      assert.is_true(#snap < 1000 + 50 * 100, ("the snapshot has %d bytes"):format(#snap))
      local copy = registry.new()
      copy:restore(snap, 51)
      assert.equal(big, copy:ctor(copy:vid("/n/50")))
      -- names go; the constructor goes with the last one, on the copy as on the original
      for _, reg in ipairs({ r, copy }) do
        for i = 1, 49 do reg:apply(51 + i, { op = "vunreg", vid = "/n/" .. i }) end
        assert.equal(big, reg:ctor(reg:vid("/n/50")))
        local key = next(reg:vid("/n/50").acts)
        reg:apply(101, { op = "vunreg", vid = "/n/50", key = key })
        assert.is_nil(reg:vid("/n/50"))
        assert.is_nil(reg.ctor_ids[big])
        assert.equal("other", reg:ctor(reg:vid("/other")))
        -- registered again, it gets a new id, the same on every node
        reg:apply(102, { op = "vreg", vid = "/again", ctor = big, args = "", lazy = true })
        assert.equal(3, reg:vid("/again").ctor)
      end
      assert.is_nil(r:apply(103, { op = "vreg", vid = "/bad", ctor = 42, args = "" }))
    end)

    it("knows the names placed on a process apart from the idle ones, after a snapshot too", function()
      local function hosted(reg)
        local out = {}
        for vid in pairs(reg:hosted_names()) do out[#out + 1] = vid end
        table.sort(out)
        return out
      end
      local a = r:apply(1, { op = "vreg", vid = "/a", ctor = "", args = "", node = "n1", boot = "b1", t = 1, e = 7, l = 1 })
      local b = r:apply(2, { op = "vreg", vid = "/b", ctor = "", args = "", persist = true, lazy = true })
      assert.same({ "/a" }, hosted(r))
      assert.is_true(r:apply(3, { op = "vwake", vid = "/b", node = "n2", boot = "b2" }))
      assert.same({ "/a", "/b" }, hosted(r))
      assert.is_true(r:apply(4, { op = "vactive", vid = "/b", key = b, boot = "b2", t = 1, e = 7, l = 5 }))
      assert.is_true(r:apply(5, { op = "vsleep", vid = "/b", key = b, boot = "b2", t = 1, e = 7, l = 5 }))
      assert.same({ "/a" }, hosted(r))
      local copy = registry.new()
      copy:restore(r:snapshot(), 5)
      assert.same({ "/a" }, hosted(copy))
      assert.equal(2, copy:name_count())
      r:apply(6, { op = "vunreg", vid = "/a", key = a })
      assert.same({}, hosted(r))
      assert.equal(1, r:name_count())
      -- idle activations share one read-only record, untouched by all of the above
      local IDLE = require("luact.cluster.registry_vactors").IDLE
      assert.same({ state = "idle" }, IDLE)
      assert.has_error(function() IDLE.stale = true end, "registry: the shared idle activation is read-only")
    end)

    it("restores a snapshot taken before constructors were kept once", function()
      local buffer = require "string.buffer"
      local old = buffer.encode({ kv = {}, guards = {}, condemned = {}, done = {}, applied = 5, vids = {
        ["/a"] = { ctor = "code", args = "", seq = 1, acts = { ["/a#1"] = { key = "/a#1", state = "idle" } } },
        ["/b"] = { ctor = "code", args = "", seq = 1, acts = { ["/b#1"] = { key = "/b#1", state = "idle" } } } } })
      r:restore(old, 5)
      assert.equal("code", r:ctor(r:vid("/a")))
      assert.equal(r:vid("/a").ctor, r:vid("/b").ctor)
      assert.equal(2, r.ctors[r:vid("/a").ctor].refs)
    end)
  end)
end)
