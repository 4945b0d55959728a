-- luact.cluster.failover.choose: the member a virtual actor's activation is placed on (failover,
-- and waking an idle name) by rendezvous hashing of its key over the live members. Names spread
-- evenly over the members, and a member that goes takes only its own names with it.
local failover = require "luact.cluster.failover"

local function members(n, addr)
  local out = {}
  for i = 1, n do out[i] = { addr = addr(i), boot = "b" .. i } end
  return out
end

local function spread(keys, hosts)
  local count, at = {}, {}
  for _, h in ipairs(hosts) do count[h.addr] = 0 end
  for _, key in ipairs(keys) do
    local to = failover.choose(key, hosts)
    count[to.addr] = count[to.addr] + 1
    at[key] = to.addr
  end
  return count, at
end

describe("luact.cluster.failover.choose", function()
  local keys = {}
  for i = 1, 10000 do keys[i] = "/bench/remind/" .. i .. "#1" end

  -- members whose addresses differ only in their last characters (the usual case: one port per
  -- member, or consecutive addresses)
  local layouts = {
    { "127.0.0.i:700i", function(i) return ("127.0.0.%d:700%d"):format(i, i) end },
    { "127.0.0.1:700i", function(i) return ("127.0.0.1:700%d"):format(i) end },
    { "10.1.2.i:7000", function(i) return ("10.1.2.%d:7000"):format(i) end },
  }

  for _, layout in ipairs(layouts) do
    it("spreads 10 000 names evenly over 3, 4 and 5 members at " .. layout[1], function()
      for n = 3, 5 do
        local count = spread(keys, members(n, layout[2]))
        for addr, c in pairs(count) do
          local share = c / #keys
          assert(math.abs(share - 1 / n) < 0.03,
            ("%d members: %s got %.1f %% of the names (%.1f %% expected)"):format(n, addr, share * 100, 100 / n))
        end
      end
    end)
  end

  it("moves only the names of a member that went, spread over the others", function()
    local hosts = members(5, layouts[1][2])
    local _, before = spread(keys, hosts)
    local gone = table.remove(hosts, 3)
    local count, after = spread(keys, hosts)
    local moved, to = 0, {}
    for _, key in ipairs(keys) do
      if before[key] == gone.addr then
        moved = moved + 1
        to[after[key]] = (to[after[key]] or 0) + 1
      else
        assert.equal(before[key], after[key])
      end
    end
    assert.is_true(moved > 0)
    for _, h in ipairs(hosts) do
      local share = (to[h.addr] or 0) / moved
      assert(math.abs(share - 0.25) < 0.06,
        ("%s took %.1f %% of the %d names that moved"):format(h.addr, share * 100, moved))
    end
    assert.equal(#keys, count[hosts[1].addr] + count[hosts[2].addr] + count[hosts[3].addr] + count[hosts[4].addr])
  end)

  it("does not depend on the order of the members", function()
    local hosts = members(5, layouts[1][2])
    local reversed = {}
    for i = #hosts, 1, -1 do reversed[#reversed + 1] = hosts[i] end
    for i = 1, 500 do
      assert.equal(failover.choose(keys[i], hosts).addr, failover.choose(keys[i], reversed).addr)
    end
    assert.is_nil(failover.choose(keys[1], {}))
  end)
end)
