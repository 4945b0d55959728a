-- luact.cluster.registry: vupgrade, a registered name's new constructor and arguments (issue 26):
-- its placed activations are marked stale until their host places them again; idle ones are not.
local registry = require "luact.cluster.registry"

describe("luact.cluster.registry upgrades", function()
  local r
  before_each(function() r = registry.new() end)

  it("replaces the constructor and arguments, keeps the options, and marks the placed activations stale", function()
    local key = r:apply(1, { op = "vreg", vid = "/u", ctor = "old", args = "a1", opts = { max_restarts = 2 }, persist = true,
                             node = "n1", boot = "b1", t = 2, e = 7, l = 1 })
    r:take_touched()
    assert.is_true(r:apply(2, { op = "vupgrade", vid = "/u", ctor = "new", args = "a2" }))
    local entry = r:vid("/u")
    assert.equal("new", r:ctor(entry))
    assert.equal("a2", entry.args)
    assert.same({ max_restarts = 2 }, entry.opts)
    assert.is_true(entry.persist)
    assert.is_true(entry.acts[key].stale)
    assert.equal("active", entry.acts[key].state)
    assert.is_true(r:take_touched()["/u"])
    -- the old constructor went with its last name; placed again by its host, it is fresh
    assert.is_nil(r.ctor_ids["old"])
    assert.is_true(r:apply(3, { op = "vplace", vid = "/u", key = key, from_boot = "b1", node = "n1", boot = "b1",
                                handoff = { n = 3 }, why = "upgrade" }))
    assert.is_nil(entry.acts[key].stale)
    assert.same({ n = 3 }, entry.acts[key].handoff)
    assert.is_true(r:apply(4, { op = "vactive", vid = "/u", key = key, boot = "b1", t = 2, e = 7, l = 5 }))
    assert.is_nil(entry.acts[key].stale)
    -- (in a snapshot too)
    assert.is_true(r:apply(5, { op = "vupgrade", vid = "/u", ctor = "newer", args = "a3" }))
    local copy = registry.new()
    copy:restore(r:snapshot(), 5)
    assert.is_true(copy:vid("/u").acts[key].stale)
    assert.equal("newer", copy:ctor(copy:vid("/u")))
  end)

  it("leaves an idle name's activation alone and shares a constructor other names use", function()
    local key = r:apply(1, { op = "vreg", vid = "/i", ctor = "same", args = "", lazy = true })
    r:apply(2, { op = "vreg", vid = "/j", ctor = "same", args = "", lazy = true })
    assert.is_true(r:apply(3, { op = "vupgrade", vid = "/i", ctor = "v2", args = "x" }))
    assert.same({ state = "idle" }, r:vid("/i").acts[key])   -- (idle: no node, nothing else)
    assert.equal("same", r:ctor(r:vid("/j")))
    assert.equal("v2", r:ctor(r:vid("/i")))
    -- upgraded to the code it has: one reference still
    assert.is_true(r:apply(4, { op = "vupgrade", vid = "/i", ctor = "v2", args = "x" }))
    assert.equal(1, r.ctors[r:vid("/i").ctor].refs)
  end)

  it("refuses an unknown name and malformed commands", function()
    assert.equal("no_name", r:apply(1, { op = "vupgrade", vid = "/none", ctor = "c", args = "" }))
    r:apply(2, { op = "vreg", vid = "/b", ctor = "c", args = "", lazy = true })
    assert.is_false(r:apply(3, { op = "vupgrade", vid = "/b", ctor = 42, args = "" }))
    assert.is_false(r:apply(4, { op = "vupgrade", vid = "/b", ctor = "d" }))
    assert.equal("c", r:ctor(r:vid("/b")))
  end)
end)
