-- spec/sim/raft_simnet_spec.lua: the seeded network simulator itself (spec/helpers/simnet.lua),
-- which the raft and gossip simulations rely on

local simnet = require "helpers.simnet"

-- a node that sends one "ping" to each peer per tick and records what it receives
local function pinger(id, peers)
  local n = { id = id, out = {}, got = {}, ticks = 0, advanced = 0 }
  function n:tick()
    self.ticks = self.ticks + 1
    for _, p in ipairs(peers) do
      if p ~= id then self.out[#self.out + 1] = { to = p, from = id, n = self.ticks } end
    end
  end
  function n:step(m) self.got[#self.got + 1] = m end
  function n:ready()
    if #self.out == 0 then return nil end
    local rd = { messages = self.out }
    self.out = {}
    return rd
  end
  function n:advance() self.advanced = self.advanced + 1 end
  return n
end

local function net_of(opts, ids)
  local net = simnet.new(opts)
  for _, id in ipairs(ids) do net:add(id, pinger(id, ids)) end
  return net
end

local function trace(net)
  local parts = {}
  for _, id in ipairs(net.ids) do
    for _, m in ipairs(net:node(id).got) do
      parts[#parts + 1] = ("%s<%s:%d"):format(tostring(id), tostring(m.from), m.n)
    end
  end
  return table.concat(parts, " ")
end

describe("helpers.simnet", function()
  it("draws the same numbers for the same seed and different ones for another", function()
    local a, b, c = simnet.rng(7), simnet.rng(7), simnet.rng(8)
    local same, differ = true, false
    for _ = 1, 100 do
      local x, y, z = a:random(1, 1000), b:random(1, 1000), c:random(1, 1000)
      if x ~= y then same = false end
      if x ~= z then differ = true end
      assert.is_true(x >= 1 and x <= 1000 and x == math.floor(x))
    end
    assert.is_true(same)
    assert.is_true(differ)
    -- a fixed sequence, so that a seed means the same run on every machine
    local r = simnet.rng(42)
    local got = {}
    for i = 1, 5 do got[i] = r:random(1, 100) end
    assert.same({ 20, 76, 57, 51, 17 }, got)
  end)

  it("covers the whole inclusive range evenly", function()
    local r = simnet.rng(1)
    local seen = { 0, 0, 0, 0, 0, 0 }
    for _ = 1, 6000 do
      local v = r:random(1, 6)
      seen[v] = seen[v] + 1
    end
    for i = 1, 6 do assert.is_true(seen[i] > 850 and seen[i] < 1150) end
  end)

  it("replays a faulty run exactly from its seed", function()
    local opts = { seed = 99, drop = 0.2, delay = { 0, 3 }, duplicate = 0.1, reorder = true }
    local a = net_of(opts, { 1, "b", 3 }):run(30)
    local b = net_of(opts, { 1, "b", 3 }):run(30)
    assert.equal(trace(a), trace(b))
    opts.seed = 100
    assert.are_not.equal(trace(a), trace(net_of(opts, { 1, "b", 3 }):run(30)))
  end)

  it("delivers copies, never the sender's tables", function()
    local net = net_of({ seed = 1 }, { 1, 2 })
    local sent
    net.on_ready = function(id, rd) if id == 1 then sent = rd.messages[1] end end
    net:tick()
    local got = net:node(2).got[1]
    assert.same(sent, got)
    assert.are_not.equal(sent, got)
  end)

  it("refuses messages holding functions", function()
    local net = simnet.new({ seed = 1 })
    net:add(1, pinger(1, {}))
    assert.has_error(function() net:send(1, { to = 1, f = print }) end,
      "simnet: message holds a value of type function (only plain data may travel)")
  end)

  it("drops and counts messages to unknown nodes", function()
    local net = simnet.new({ seed = 1 })
    net:add(1, pinger(1, {}))
    net:send(1, { to = "nobody" })
    net:send(1, { from = 1 })
    assert.equal(2, net.stats.unknown)
  end)

  it("drops about the configured share of messages", function()
    local net = net_of({ seed = 3, drop = 0.25 }, { 1, 2 }):run(400)
    local got = #net:node(1).got + #net:node(2).got
    assert.is_true(got > 520 and got < 680)
    assert.equal(800 - got, net.stats.dropped)
  end)

  it("holds messages for the configured delay in ticks", function()
    local net = net_of({ seed = 1, delay = { 2, 2 } }, { 1, 2 })
    net:tick()
    net:tick()
    assert.equal(0, #net:node(2).got)
    net:tick()
    assert.equal(1, #net:node(2).got)
    assert.equal(1, net:node(2).got[1].n)
  end)

  it("delivers a message sent between ticks in the next tick", function()
    local net = net_of({ seed = 1 }, { 1, 2 })
    net:send(1, { to = 2, from = 1, n = 0 })
    assert.equal(1, net:in_flight())
    assert.equal(0, #net:node(2).got)
    net:tick()
    assert.equal(0, net:node(2).got[1].n)
    assert.equal(0, net:in_flight())
  end)

  it("separates partitions in both directions and cuts one direction only", function()
    local net = net_of({ seed = 1 }, { 1, 2, 3 })
    net:partition({ 1 }, { 2, 3 })
    net:run(5)
    assert.equal(0, #net:node(1).got)
    assert.equal(5, #net:node(2).got) -- from 3 only
    net:heal()
    net:cut(1, 2)
    net:run(5)
    local from1 = 0
    for _, m in ipairs(net:node(2).got) do if m.from == 1 then from1 = from1 + 1 end end
    assert.equal(0, from1)
    assert.equal(10, #net:node(1).got) -- 2 -> 1 still works
  end)

  it("isolates a node and loses what was in flight when a link is cut", function()
    local net = net_of({ seed = 1, delay = { 1, 1 } }, { 1, 2 })
    net:tick()            -- 1 -> 2 and 2 -> 1 are in flight
    net:isolate(2)
    net:tick()
    assert.equal(0, #net:node(1).got)
    assert.equal(0, #net:node(2).got)
    assert.is_true(net.stats.blocked >= 2)
  end)

  it("stops a crashed node and replaces it on restart", function()
    local net = net_of({ seed = 1 }, { 1, 2 })
    net:crash(2)
    net:run(3)
    assert.equal(0, net:node(2).ticks)
    assert.equal(0, #net:node(1).got)
    assert.same({ 1 }, net:live_ids())
    local fresh = pinger(2, { 1, 2 })
    net:restart(2, fresh)
    net:tick()
    assert.equal(fresh, net:node(2))
    assert.equal(1, fresh.ticks)
    assert.equal(1, #net:node(1).got)
  end)

  it("gives every node its own stream, and a restarted node a new one", function()
    local net = simnet.new({ seed = 5 })
    local a, b = net:random_for(1), net:random_for(2)
    local a2 = net:random_for(1)
    local sa, sb, sa2 = {}, {}, {}
    for i = 1, 10 do sa[i], sb[i], sa2[i] = a(1, 1e6), b(1, 1e6), a2(1, 1e6) end
    assert.are_not.same(sa, sb)
    assert.are_not.same(sa, sa2)
    local again = simnet.new({ seed = 5 }):random_for(1)
    for i = 1, 10 do assert.equal(sa[i], again(1, 1e6)) end
  end)

  it("names the seed when a run fails", function()
    if os.getenv("LUACT_SIM_SEED") then return end -- replay mode runs one chosen seed only
    assert.has_error(function()
      simnet.for_seeds(3, function(seed) if seed == 2 then error("boom", 0) end end)
    end)
    local ok, err = pcall(simnet.for_seeds, 3, function(seed)
      if seed == 2 then error("boom", 0) end
    end)
    assert.is_false(ok)
    assert.truthy(err:find("^seed 2: boom"))
  end)
end)
