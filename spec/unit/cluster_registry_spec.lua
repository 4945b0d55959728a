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
end)
