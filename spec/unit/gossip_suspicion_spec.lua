local suspicion = require "luact.cluster.gossip.suspicion"

describe("luact.cluster.gossip.suspicion", function()
  it("waits the maximum time when nobody confirms", function()
    local t = suspicion.new("a", 3, 10, 60, 100)
    assert.are.equal(160, t:deadline())
    assert.is_false(t:expired(159))
    assert.is_true(t:expired(160))
  end)

  it("shrinks toward the minimum as independent confirmations arrive", function()
    local t = suspicion.new("a", 3, 10, 60, 0)
    local last = t:deadline()
    for _, from in ipairs({ "b", "c", "d" }) do
      assert.is_true(t:confirm(from))
      assert.is_true(t:deadline() < last)
      last = t:deadline()
    end
    assert.are.equal(10, t:deadline())
    -- max - (max - min) * log(c + 1) / log(k + 1), after one confirmation: 60 - 50 * 0.5
    local one = suspicion.new("a", 3, 10, 60, 0)
    one:confirm("b")
    assert.are.equal(35, one:deadline())
  end)

  it("counts neither the first suspecter nor a repeated confirmer", function()
    local t = suspicion.new("a", 3, 10, 60, 0)
    assert.is_false(t:confirm("a"))
    assert.is_true(t:confirm("b"))
    assert.is_false(t:confirm("b"))
    assert.are.equal(1, t:confirmations())
  end)

  it("stops counting after k confirmations", function()
    local t = suspicion.new("a", 1, 10, 60, 0)
    assert.is_true(t:confirm("b"))
    assert.is_false(t:confirm("c"))
    assert.are.equal(10, t:deadline())
  end)

  it("uses the minimum at once when no confirmation can be expected", function()
    local t = suspicion.new("a", 0, 10, 60, 5)
    assert.are.equal(15, t:deadline())
  end)
end)
