local bqueue = require "luact.cluster.gossip.broadcast_queue"

local function ids(list)
  local out = {}
  for i, u in ipairs(list) do out[i] = u.id end
  return out
end

describe("luact.cluster.gossip.broadcast_queue", function()
  it("hands out the newest updates first when none has been sent yet", function()
    local q = bqueue.new()
    q:push("a", { id = "a" })
    q:push("b", { id = "b" })
    q:push("c", { id = "c" })
    assert.are.same({ "c", "b" }, ids(q:take(2, 10)))
  end)

  it("prefers updates sent fewer times", function()
    local q = bqueue.new()
    q:push("a", { id = "a" })
    q:push("b", { id = "b" })
    assert.are.same({ "b" }, ids(q:take(1, 10)))
    assert.are.same({ "a" }, ids(q:take(1, 10)))
    q:push("c", { id = "c" })
    assert.are.same({ "c", "b", "a" }, ids(q:take(3, 10)))
  end)

  it("replaces an older update about the same member", function()
    local q = bqueue.new()
    q:push("a", { id = "a", inc = 1 })
    q:take(1, 10)
    q:push("a", { id = "a", inc = 2 })
    assert.are.equal(1, q:len())
    local got = q:take(5, 10)
    assert.are.equal(1, #got)
    assert.are.equal(2, got[1].inc)
  end)

  it("drops an update once it was sent `limit` times", function()
    local q = bqueue.new()
    q:push("a", { id = "a" })
    for _ = 1, 3 do assert.are.equal(1, #q:take(1, 3)) end
    assert.are.equal(0, q:len())
    assert.are.same({}, q:take(1, 3))
    assert.is_false(q:has("a"))
  end)

  it("skips the key the caller sends its own version of", function()
    local q = bqueue.new()
    q:push("a", { id = "a" })
    q:push("b", { id = "b" })
    assert.are.same({ "a" }, ids(q:take(5, 10, nil, "b")))
  end)

  it("appends to the list it is given", function()
    local q = bqueue.new()
    q:push("a", { id = "a" })
    local out = q:take(1, 10, { { id = "first" } })
    assert.are.same({ "first", "a" }, ids(out))
  end)

  it("allows retransmit_mult * ceil(log10(n + 1)) transmissions", function()
    assert.are.equal(4, bqueue.limit(4, 1))
    assert.are.equal(4, bqueue.limit(4, 9))
    assert.are.equal(8, bqueue.limit(4, 10))
    assert.are.equal(8, bqueue.limit(4, 99))
    assert.are.equal(12, bqueue.limit(4, 129))
  end)
end)
