-- spec/helpers/linearizability.lua: the checker the cluster's fault specs rely on must accept
-- linearizable register histories and reject the ones that are not.
local lin = require "helpers.linearizability"

local function set(v, call, ret) return { op = "set", v = v, call = call, ret = ret } end
local function get(r, call, ret) return { op = "get", result = r, call = call, ret = ret } end
local function cas(old, new, r, call, ret) return { op = "cas", old = old, new = new, result = r, call = call, ret = ret } end

describe("spec.helpers.linearizability", function()
  it("accepts sequential and concurrent histories that have a legal order", function()
    assert.is_true(lin.check({ set(1, 0, 1), get(1, 2, 3), cas(1, 2, true, 4, 5), get(2, 6, 7) }))
    -- a read concurrent with a write may see either value
    assert.is_true(lin.check({ set(1, 0, 1), set(2, 2, 5), get(1, 3, 4) }))
    assert.is_true(lin.check({ set(1, 0, 1), set(2, 2, 5), get(2, 3, 4) }))
    assert.is_true(lin.check({ get(nil, 0, 1) }))
  end)

  it("rejects a stale read after a write returned", function()
    local ok, why = lin.check({ set(1, 0, 1), set(2, 2, 3), get(1, 4, 5) })
    assert.is_false(ok)
    assert.matches("no linearization", why)
  end)

  it("rejects a read that flips back (new value seen, then the old one)", function()
    assert.is_false(lin.check({ set(1, 0, 1), set(2, 2, 10), get(2, 3, 4), get(1, 5, 6) }))
  end)

  it("rejects two successful cas from the same old value", function()
    assert.is_false(lin.check({ set(0, 0, 1), cas(0, 1, true, 2, 5), cas(0, 2, true, 3, 6), get(2, 7, 8) }))
  end)

  it("lets an operation with an unknown outcome take effect late, or never", function()
    -- the failed set may have happened after the read...
    assert.is_true(lin.check({ set(1, 0, 1), set(2, 2, nil), get(1, 3, 4), get(2, 5, 6) }))
    -- ... or never
    assert.is_true(lin.check({ set(1, 0, 1), set(2, 2, nil), get(1, 3, 4), get(1, 5, 6) }))
    -- but not before it was called
    assert.is_false(lin.check({ set(1, 0, 1), get(2, 2, 3), set(2, 4, nil) }))
  end)

  it("lets an unknown write nobody read make a failed cas fail", function()
    -- set 7 failed (unknown) and was never read: only it explains why cas(1 -> 2) failed
    assert.is_true(lin.check({ set(1, 0, 1), set(7, 1.5, nil), cas(1, 2, false, 2, 3), set(3, 4, 5), get(3, 6, 7) }))
    -- without it, the same history is not linearizable
    assert.is_false(lin.check({ set(1, 0, 1), cas(1, 2, false, 2, 3), set(3, 4, 5), get(3, 6, 7) }))
  end)

  it("decides (not undecided) a history with many unknown writes and a stale read", function()
    local h = { set(0, 0, 1) }
    for i = 1, 40 do h[#h + 1] = set(100 + i, i, nil) end        -- 40 failed writes, never read
    for i = 1, 40 do h[#h + 1] = set(i, 50 + 2 * i, 51 + 2 * i) end
    h[#h + 1] = get(5, 200, 201)                                   -- stale: 40 was written last
    assert.is_false(lin.check(h, 0))      -- (false: decided, not nil: undecided)
  end)
end)
