-- Simulation specs for luact.cluster.gossip: whole clusters of gossip nodes in one VM over the
-- seeded network of spec/helpers/simnet.lua. Every property runs over many seeds; a failure
-- names its seed, and LUACT_SIM_SEED=N replays that seed alone. LUACT_SIM_SEEDS=N raises the
-- seed count of every property (the 10-minute loss property runs N / 5 seeds).
--
-- Timing: the simulator delivers a message sent in tick t during tick t + d, d drawn from the
-- `delay` range; { 0, 1 } is used unless a property says otherwise.

local gossip = require "luact.cluster.gossip"
local simnet = require "helpers.simnet"

local SEEDS = simnet.seed_count(200)
local LONG_SEEDS = math.max(1, math.floor(simnet.seed_count(200) / 5))

local function ids_of(n)
  local ids = {}
  for i = 1, n do ids[i] = "n" .. i end
  return ids
end

-- a cluster of n gossip nodes; every node joins through seeds n1 and n2. Events reported by
-- ready() are collected in `c.events` as { at = tick, by = node, type =, id = }.
local function cluster(seed, n, netopts, gopts)
  netopts = netopts or {}
  local c = { ids = ids_of(n), events = {} }
  local net = simnet.new({ seed = seed, drop = netopts.drop or 0, delay = netopts.delay or { 0, 1 },
                           duplicate = netopts.duplicate, reorder = netopts.reorder })
  c.net = net
  net.on_ready = function(id, rd)
    for _, e in ipairs(rd.events) do
      c.events[#c.events + 1] = { at = net.now, by = id, type = e.type, id = e.id }
    end
  end
  function c.new_node(id, seeds)
    local o = { id = id, seeds = seeds or { "n1", "n2" }, random = net:random_for(id) }
    for k, v in pairs(gopts or {}) do o[k] = v end
    return gossip.new(o)
  end
  for _, id in ipairs(c.ids) do net:add(id, c.new_node(id)) end
  return c
end

local converged = require("helpers.gossip_cluster").converged

-- A run_until condition: every live node sees `victim` as dead.
local function dead_everywhere(victim)
  return function(net)
    for _, id in ipairs(net:live_ids()) do
      if net:node(id):members()[victim] ~= "dead" then return false end
    end
    return true
  end
end

local function settle(c, seed, max_ticks)
  local t = c.net:run_until(converged, max_ticks or 300)
  if not t then error("the cluster did not converge after start", 0) end
  return t
end

local function events_since(c, from_tick, pred)
  local out = {}
  for _, e in ipairs(c.events) do
    if e.at > from_tick and pred(e) then out[#out + 1] = e end
  end
  return out
end

-- simnet.for_seeds adds the seed to the message
local function fail(fmt, ...)
  error(fmt:format(...), 0)
end

describe("luact.cluster.gossip (simulated cluster)", function()

  it("declares a silent member dead on every live member within 50 ticks in a 9-member cluster",
    function()
      simnet.for_seeds(SEEDS, function(seed)
        local c = cluster(seed, 9)
        settle(c, seed)
        c.net:run(seed % 40)                  -- crash at a different phase for each seed
        local victim = c.ids[1 + seed % 9]
        local t0 = c.net.now
        c.net:crash(victim)
        local took = c.net:run_until(dead_everywhere(victim), 50)
        if not took then fail("%s was not dead everywhere 50 ticks after it stopped", victim) end
        local wrong = events_since(c, t0, function(e)
          return e.type == "dead" and e.id ~= victim
        end)
        if #wrong > 0 then fail("%s declared %s dead", wrong[1].by, wrong[1].id) end
        local deaths = events_since(c, t0, function(e) return e.type == "dead" end)
        assert.are.equal(8, #deaths, "seed " .. seed .. ": one dead event per live member")
      end)
    end)

  it("declares a silent member dead within 50 ticks when every message takes a full tick",
    function()
      simnet.for_seeds(math.max(1, math.floor(SEEDS / 2)), function(seed)
        local c = cluster(seed, 9, { delay = { 1, 1 } })
        settle(c, seed)
        c.net:run(seed % 40)
        local victim = c.ids[1 + seed % 9]
        c.net:crash(victim)
        local took = c.net:run_until(dead_everywhere(victim), 50)
        if not took then fail("%s was not dead everywhere after 50 ticks", victim) end
      end, 1000)
    end)

  local function no_false_deaths(seed, ticks, drop)
    local c = cluster(seed, 9)
    settle(c, seed)
    local t0 = c.net.now
    c.net:set_drop(drop)
    c.net:run(ticks)
    local deaths = events_since(c, t0, function(e) return e.type == "dead" end)
    if #deaths > 0 then
      fail("%s declared %s dead at tick %d", deaths[1].by, deaths[1].id, deaths[1].at)
    end
    c.net:set_drop(0)
    if not c.net:run_until(converged, 100) then fail("members disagree after the run") end
    local suspicions = 0
    for _, id in ipairs(c.ids) do
      suspicions = suspicions + c.net:node(id):stats().suspicions
    end
    return suspicions
  end

  it("never declares a live member dead over one minute with 5% of messages dropped", function()
    local total = 0
    simnet.for_seeds(SEEDS, function(seed)
      total = total + no_false_deaths(seed, 600, 0.05)
    end, 2000)
    -- rarely suspected: well under one probe-born suspicion per simulated minute on average
    assert.is_true(total < SEEDS / 2, ("%d suspicions in %d runs"):format(total, SEEDS))
  end)

  it("never declares a live member dead over ten minutes with 5% of messages dropped", function()
    -- the expensive property: LUACT_SIM_SEEDS / 5 seeds (40 by default)
    local total = 0
    simnet.for_seeds(LONG_SEEDS, function(seed)
      local s = no_false_deaths(seed, 6000, 0.05)
      if s > 10 then fail("%d suspicions in ten minutes", s) end
      total = total + s
    end, 3000)
    assert.is_true(total < LONG_SEEDS * 3, ("%d suspicions in %d runs"):format(total, LONG_SEEDS))
  end)

  it("refutes a false suspicion: the suspect raises its incarnation and nobody declares it dead",
    function()
      simnet.for_seeds(SEEDS, function(seed)
        local c = cluster(seed, 9)
        settle(c, seed)
        local victim = c.ids[1 + seed % 9]
        local inc0 = c.net:node(victim):incarnation()
        local t0 = c.net.now
        -- cut the victim off until somebody suspects it, then let it talk again
        c.net:isolate(victim)
        local took = c.net:run_until(function()
          return #events_since(c, t0, function(e)
            return e.type == "suspect" and e.id == victim
          end) > 0
        end, 200)
        if not took then fail("nobody suspected an isolated member") end
        c.net:heal()
        local function agreed(net)
          if not converged(net) then return false end
          local inc = net:node(victim):incarnation()
          for _, id in ipairs(c.ids) do
            for _, r in ipairs(net:node(id):member_list()) do
              if r.id == victim and r.inc ~= inc then return false end
            end
          end
          return true
        end
        if not c.net:run_until(agreed, 60) then
          fail("the suspicion of %s was not refuted everywhere within 60 ticks", victim)
        end
        local deaths = events_since(c, t0, function(e) return e.type == "dead" end)
        if #deaths > 0 then fail("%s declared %s dead", deaths[1].by, deaths[1].id) end
        assert.is_true(c.net:node(victim):incarnation() > inc0, "seed " .. seed)
        local alive = events_since(c, t0, function(e) return e.type == "alive" and e.id == victim end)
        assert.is_true(#alive > 0, "seed " .. seed .. ": no alive event after the refutation")
      end, 4000)
    end)

  it("converges on one membership after a partition heals", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, 9, { drop = 0.01 })
      settle(c, seed)
      local a, b = { "n1", "n2", "n3", "n4" }, { "n5", "n6", "n7", "n8", "n9" }
      c.net:partition(a, b)
      c.net:run(200 + seed % 100)
      -- both sides gave up on each other
      for _, id in ipairs(a) do
        assert.are.equal("dead", c.net:node(id):members()[b[1 + seed % 5]], "seed " .. seed)
      end
      for _, id in ipairs(b) do
        assert.are.equal("dead", c.net:node(id):members()[a[1 + seed % 4]], "seed " .. seed)
      end
      c.net:heal()
      local t0 = c.net.now
      if not c.net:run_until(converged, 300) then
        fail("members still disagree 300 ticks after the partition healed")
      end
      -- and it stays converged: no member is declared dead again afterwards
      local t1 = c.net.now
      c.net:run(100)
      local deaths = events_since(c, t1, function(e) return e.type == "dead" end)
      if #deaths > 0 then fail("%s declared %s dead after convergence", deaths[1].by,
        deaths[1].id) end
      local joins = events_since(c, t0, function(e) return e.type == "join" end)
      assert.is_true(#joins >= 2 * 4 * 5, "seed " .. seed .. ": each side sees the other rejoin")
    end, 5000)
  end)

  it("lets a new member join through a seed and the whole cluster learn of it", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, 8)
      settle(c, seed)
      local t0 = c.net.now
      local seed_id = c.ids[1 + seed % 8]
      c.net:add("n9", c.new_node("n9", { seed_id }))
      if not c.net:run_until(converged, 50) then fail("n9 not known everywhere after 50 ticks") end
      for _, id in ipairs(c.ids) do
        local joins = events_since(c, t0, function(e)
          return e.by == id and e.type == "join" and e.id == "n9"
        end)
        assert.are.equal(1, #joins, "seed " .. seed .. ": join events for n9 on " .. id)
      end
      assert.are.equal(8, #events_since(c, t0, function(e) return e.by == "n9" and e.type == "join" end))
    end, 6000)
  end)

  it("joins through the second seed when the first one is down", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, 8)
      settle(c, seed)
      c.net:crash("n1")
      c.net:add("n9", c.new_node("n9", { "n1", "n2" }))
      if not c.net:run_until(function(net)
        return converged(net) or false
      end, 120) then
        fail("n9 did not join through n2")
      end
    end, 7000)
  end)

  it("takes a restarted member back under its old id", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, 9, { drop = 0.01 })
      settle(c, seed)
      local v = c.ids[3 + seed % 7]
      c.net:crash(v)
      c.net:run(seed % 2 == 0 and 10 or 100)     -- before, or after, it was declared dead
      c.net:restart(v, c.new_node(v))
      local took = c.net:run_until(function(net)
        if not converged(net) then return false end
        local inc = net:node(v):incarnation()
        for _, id in ipairs(c.ids) do
          for _, r in ipairs(net:node(id):member_list()) do
            if r.id == v and r.inc ~= inc then return false end
          end
        end
        return true
      end, 50)
      if not took then fail("restarted %s not taken back everywhere within 50 ticks", v) end
      local died = events_since(c, 0, function(e) return e.type == "dead" and e.id == v end)
      if #died > 0 then
        -- it had been declared dead: it must have outbid that incarnation
        assert.is_true(c.net:node(v):incarnation() > 0, "seed " .. seed)
      end
    end, 7500)
  end)

  it("spreads a graceful leave: everybody sees the member as left, never as dead", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, 9, { drop = 0.01 })
      settle(c, seed)
      local leaver = c.ids[1 + seed % 9]
      local t0 = c.net.now
      c.net:node(leaver):leave()
      local took = c.net:run_until(function(net) return net:node(leaver):left() end, 100)
      if not took then fail("%s did not finish leaving within 100 ticks", leaver) end
      c.net:crash(leaver)                     -- gone for good
      c.net:run(200)
      for _, id in ipairs(c.ids) do
        if id ~= leaver then
          assert.are.equal("left", c.net:node(id):members()[leaver], "seed " .. seed .. " on " .. id)
          local leaves = events_since(c, t0, function(e)
            return e.by == id and e.type == "leave" and e.id == leaver
          end)
          assert.are.equal(1, #leaves, "seed " .. seed .. ": leave events on " .. id)
        end
      end
      local bad = events_since(c, t0, function(e)
        return (e.type == "dead" or e.type == "suspect") and e.id == leaver
      end)
      if #bad > 0 then fail("%s saw %s as %s", bad[1].by, leaver, bad[1].type) end
    end, 8000)
  end)

  it("disseminates metadata to every member with an update event", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, 9, { drop = 0.02 })
      settle(c, seed)
      local who = c.ids[1 + seed % 9]
      local t0 = c.net.now
      local meta = { addr = "127.0.0.1:" .. (7000 + seed), role = "leader", term = seed }
      c.net:node(who):set_meta(meta)
      local took = c.net:run_until(function(net)
        for _, id in ipairs(c.ids) do
          local m = net:node(id):meta(who)
          if not m or m.addr ~= meta.addr or m.role ~= "leader" or m.term ~= seed then
            return false
          end
        end
        return true
      end, 50)
      if not took then fail("metadata of %s not everywhere after 50 ticks", who) end
      for _, id in ipairs(c.ids) do
        if id ~= who then
          local ups = events_since(c, t0, function(e)
            return e.by == id and e.type == "update" and e.id == who
          end)
          assert.are.equal(1, #ups, "seed " .. seed .. ": update events on " .. id)
        end
      end
    end, 9000)
  end)

  it("gives a joining member the metadata others set before it came", function()
    simnet.for_seeds(math.max(1, math.floor(SEEDS / 4)), function(seed)
      local c = cluster(seed, 4, nil, {})
      settle(c, seed)
      c.net:node("n3"):set_meta({ addr = "127.0.0.3:7000" })
      c.net:run(50)
      c.net:add("n5", c.new_node("n5"))
      c.net:run_until(converged, 50)
      local m = c.net:node("n5"):meta("n3")
      assert.are.same({ addr = "127.0.0.3:7000" }, m, "seed " .. seed)
    end, 10000)
  end)

  it("survives duplicated, reordered and delayed messages", function()
    simnet.for_seeds(math.max(1, math.floor(SEEDS / 4)), function(seed)
      local c = cluster(seed, 9, { delay = { 0, 2 }, duplicate = 0.05, reorder = true })
      settle(c, seed)
      local t0 = c.net.now
      c.net:run(300)
      local deaths = events_since(c, t0, function(e) return e.type == "dead" end)
      if #deaths > 0 then fail("%s declared %s dead", deaths[1].by, deaths[1].id) end
      local victim = c.ids[1 + seed % 9]
      c.net:crash(victim)
      local took = c.net:run_until(dead_everywhere(victim), 100)
      if not took then fail("%s not dead everywhere after 100 ticks", victim) end
    end, 11000)
  end)

  it("replays the same run for the same seed", function()
    local function trace(seed)
      local c = cluster(seed, 9, { drop = 0.05 })
      c.net:run(300)
      c.net:crash("n4")
      c.net:run(100)
      local out = {}
      for _, e in ipairs(c.events) do
        out[#out + 1] = e.at .. " " .. e.by .. " " .. e.type .. " " .. e.id
      end
      for _, id in ipairs(c.ids) do
        local s = c.net:node(id):stats()
        out[#out + 1] = id .. " sent " .. s.sent .. " received " .. s.received
      end
      return table.concat(out, "\n")
    end
    assert.are.equal(trace(42), trace(42))
    assert.are_not.equal(trace(42), trace(43))
  end)
end)
