local membership = require "luact.cluster.gossip.membership"
local simnet = require "helpers.simnet"

local function list_of(n, random)
  local ms = membership.new("self")
  ms:add({ id = "self", state = "alive", inc = 0 }, random)
  for i = 1, n do ms:add({ id = "m" .. i, state = "alive", inc = 0 }, random) end
  return ms
end

local function any() return true end

describe("luact.cluster.gossip.membership", function()
  it("probes every other member exactly once per round", function()
    local random = simnet.rng(1):fn()
    local ms = list_of(7, random)
    for _ = 1, 3 do
      local seen = {}
      for _ = 1, 7 do
        local rec = ms:next_probe(any)
        assert.is_nil(seen[rec.id])
        assert.are_not.equal("self", rec.id)
        seen[rec.id] = true
      end
    end
  end)

  it("skips members it may not probe and returns nil when none is left", function()
    local ms = list_of(3, simnet.rng(2):fn())
    local rec = ms:next_probe(function(r) return r.id == "m2" end)
    assert.are.equal("m2", rec.id)
    assert.is_nil(ms:next_probe(function() return false end))
  end)

  it("orders members by the random function only", function()
    local function order(seed)
      local ms = list_of(20, simnet.rng(seed):fn())
      local out = {}
      for i = 1, 20 do out[i] = ms:next_probe(any).id end
      return table.concat(out, ",")
    end
    assert.are.equal(order(5), order(5))
    assert.are_not.equal(order(5), order(6))
  end)

  it("reaches every other member as a gossip target within ceil(n / k) rounds", function()
    local ms = list_of(8, simnet.rng(7):fn())
    for _ = 1, 5 do
      local seen, count = {}, 0
      for _ = 1, 3 do
        for _, rec in ipairs(ms:next_gossip(3, any)) do
          assert.are_not.equal("self", rec.id)
          if not seen[rec.id] then seen[rec.id] = true; count = count + 1 end
        end
      end
      assert.are.equal(8, count)
      ms:next_gossip(1, any)          -- shift the phase for the next pass
    end
    assert.are.equal(2, #ms:next_gossip(5, function(r) return r.id == "m1" or r.id == "m2" end))
  end)

  it("picks k distinct members other than itself", function()
    local ms = list_of(10, simnet.rng(3):fn())
    local random = simnet.rng(4):fn()
    for _ = 1, 50 do
      local got = ms:pick(random, 3, any)
      assert.are.equal(3, #got)
      local seen = {}
      for _, r in ipairs(got) do
        assert.are_not.equal("self", r.id)
        assert.is_nil(seen[r.id])
        seen[r.id] = true
      end
    end
    assert.are.equal(10, #ms:pick(random, 99, any))
  end)

  it("counts live members and forgets reaped ones", function()
    local ms = list_of(4, simnet.rng(5):fn())
    assert.are.equal(5, ms:live_count())
    ms:set_state(ms:get("m1"), "suspect")
    assert.are.equal(5, ms:live_count())
    assert.are.equal(1, ms:suspect_count())
    ms:set_state(ms:get("m1"), "dead")
    assert.are.equal(4, ms:live_count())
    assert.are.equal(0, ms:suspect_count())
    assert.are.equal(1, ms:reap(function(r) return r.state == "dead" end))
    assert.is_nil(ms:get("m1"))
    for _ = 1, 6 do assert.are_not.equal("m1", ms:next_probe(any).id) end
  end)
end)
