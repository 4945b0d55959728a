-- Unit specs for one luact.cluster.gossip node, driven by hand (no simulated network).
local gossip = require "luact.cluster.gossip"
local simnet = require "helpers.simnet"

local function node(id, opts)
  local o = { id = id, seeds = {}, random = simnet.rng(id):fn() }
  for k, v in pairs(opts or {}) do o[k] = v end
  return gossip.new(o)
end

-- drain a node's ready(): returns messages, events
local function drain(g)
  local rd = g:ready()
  if not rd then return {}, {} end
  g:advance(rd)
  return rd.messages, rd.events
end

-- deliver every message among the given nodes until nothing is left (no loss, no delay)
local function pump(nodes)
  local by_id = {}
  for _, g in ipairs(nodes) do by_id[g.id] = g end
  for _ = 1, 100 do
    local any = false
    for _, g in ipairs(nodes) do
      local msgs = drain(g)
      for _, m in ipairs(msgs) do
        any = true
        if by_id[m.to] then by_id[m.to]:step(simnet.deep_copy(m)) end
      end
    end
    if not any then return end
  end
  error("pump did not quiesce")
end

local function alive_update(id, inc, meta)
  return { kind = "alive", id = id, inc = inc, meta = meta }
end

local function gossip_msg(to, from, updates)
  return { to = to, from = from, type = "gossip", updates = updates }
end

describe("luact.cluster.gossip", function()
  describe("new", function()
    it("rejects missing or malformed options with the option's name", function()
      assert.has_error(function() gossip.new() end, "bad options: a table expected")
      assert.has_error(function() gossip.new({ random = function() return 1 end }) end,
        "bad 'id' option")
      assert.has_error(function() gossip.new({ id = "a" }) end, "bad 'random' option")
      assert.has_error(function()
        gossip.new({ id = "a", random = function() return 1 end, seeds = { 3 } })
      end, "bad 'seeds' option")
      assert.has_error(function()
        gossip.new({ id = "a", random = function() return 1 end, probe_interval = 0 })
      end, "bad 'probe_interval' option")
      assert.has_error(function()
        gossip.new({ id = "a", random = function() return 1 end, meta = { x = {} } })
      end, "bad 'meta' option")
    end)

    it("starts alone and alive when it has no seeds", function()
      local g = node("a")
      assert.are.same({ a = "alive" }, g:members())
      assert.is_nil(g:ready())
      for _ = 1, 50 do g:tick() end
      assert.is_nil(g:ready())
    end)

    it("asks each seed but itself for the cluster's state", function()
      local g = node("a", { seeds = { "a", "s1", "s2" } })
      local msgs = drain(g)
      assert.are.equal(2, #msgs)
      assert.are.equal("s1", msgs[1].to)
      assert.are.equal("sync", msgs[1].type)
      assert.are.equal("a", msgs[1].from)
      assert.are.equal("s2", msgs[2].to)
    end)

    it("keeps asking the seeds until one answers", function()
      local g = node("a", { seeds = { "s1" } })
      drain(g)
      local asked = 0
      for _ = 1, 100 do
        g:tick()
        for _, m in ipairs((drain(g))) do
          if m.type == "sync" then asked = asked + 1 end
        end
      end
      assert.is_true(asked >= 3)
    end)
  end)

  describe("ready and advance", function()
    it("returns the same output until advanced", function()
      local g = node("a", { seeds = { "s1" } })
      local rd1 = g:ready()
      local rd2 = g:ready()
      assert.are.equal(1, #rd1.messages)
      assert.are.same(rd1.messages, rd2.messages)
      g:advance(rd1)
      assert.is_nil(g:ready())
    end)
  end)

  describe("joining", function()
    it("learns the seed's members and the seed learns the joiner", function()
      local s, b = node("s"), node("b", { seeds = { "s" } })
      pump({ s, b })
      assert.are.same({ s = "alive", b = "alive" }, s:members())
      assert.are.same({ s = "alive", b = "alive" }, b:members())
      local c = node("c", { seeds = { "s" } })
      pump({ s, b, c })
      assert.are.same({ s = "alive", b = "alive", c = "alive" }, c:members())
    end)

    it("reports a join event once per new member", function()
      local s, b = node("s"), node("b", { seeds = { "s" } })
      local msgs = drain(b)
      s:step(msgs[1])
      local _, sev = drain(s)
      assert.are.same({ { type = "join", id = "b" } }, sev)
    end)
  end)

  describe("precedence of updates", function()
    local g
    before_each(function()
      g = node("a")
      g:step(gossip_msg("a", "x", { alive_update("b", 3) }))
      drain(g)
    end)

    it("ignores an alive with an older or equal incarnation", function()
      g:step(gossip_msg("a", "x", { alive_update("b", 2, { role = "x" }) }))
      g:step(gossip_msg("a", "x", { alive_update("b", 3, { role = "x" }) }))
      assert.is_nil(g:meta("b"))
      local _, ev = drain(g)
      assert.are.same({}, ev)
    end)

    it("lets a suspicion at the current incarnation override alive", function()
      g:step(gossip_msg("a", "x", { { kind = "suspect", id = "b", inc = 3, from = "x" } }))
      assert.are.equal("suspect", g:members().b)
      local _, ev = drain(g)
      assert.are.same({ { type = "suspect", id = "b" } }, ev)
    end)

    it("ignores a suspicion about an older incarnation", function()
      g:step(gossip_msg("a", "x", { { kind = "suspect", id = "b", inc = 2, from = "x" } }))
      assert.are.equal("alive", g:members().b)
    end)

    it("clears a suspicion on an alive with a higher incarnation", function()
      g:step(gossip_msg("a", "x", { { kind = "suspect", id = "b", inc = 3, from = "x" } }))
      g:step(gossip_msg("a", "x", { alive_update("b", 4) }))
      assert.are.equal("alive", g:members().b)
      local _, ev = drain(g)
      assert.are.same({ { type = "suspect", id = "b" }, { type = "alive", id = "b" } }, ev)
    end)

    it("declares a suspect dead when its suspicion times out", function()
      g:step(gossip_msg("a", "x", { { kind = "suspect", id = "b", inc = 3, from = "x" } }))
      local dead_at
      for t = 1, 500 do
        g:tick()
        if g:members().b == "dead" then dead_at = t break end
      end
      assert.is_not_nil(dead_at)
      local _, ev = drain(g)
      assert.are.same({ type = "dead", id = "b" }, ev[#ev])
    end)

    it("lets a member come back from dead with a higher incarnation, as a join", function()
      g:step(gossip_msg("a", "x", { { kind = "suspect", id = "b", inc = 3, from = "x" } }))
      g:step(gossip_msg("a", "x", { { kind = "dead", id = "b", inc = 3, from = "x" } }))
      assert.are.equal("dead", g:members().b)
      g:step(gossip_msg("a", "x", { alive_update("b", 3) }))
      assert.are.equal("dead", g:members().b)
      g:step(gossip_msg("a", "x", { alive_update("b", 4) }))
      assert.are.equal("alive", g:members().b)
      local _, ev = drain(g)
      assert.are.same({ { type = "suspect", id = "b" }, { type = "dead", id = "b" }, { type = "join", id = "b" } }, ev)
    end)

    it("takes another member's dead verdict on a member it sees alive as a suspicion", function()
      -- (what a member cut off by a partition says of the others when it heals)
      g:step(gossip_msg("a", "x", { { kind = "dead", id = "b", inc = 3, from = "x" } }))
      assert.are.equal("suspect", g:members().b)
      g:step(gossip_msg("a", "x", { alive_update("b", 4) }))   -- b refutes
      assert.are.equal("alive", g:members().b)
      local _, ev = drain(g)
      assert.are.same({ { type = "suspect", id = "b" }, { type = "alive", id = "b" } }, ev)
    end)

    it("marks a member that left as left, even over dead", function()
      g:step(gossip_msg("a", "x", { { kind = "dead", id = "b", inc = 3, from = "x" } }))
      g:step(gossip_msg("a", "x", { { kind = "left", id = "b", inc = 3 } }))
      assert.are.equal("left", g:members().b)
    end)

    it("reports an update event when a member's metadata changes", function()
      g:step(gossip_msg("a", "x", { alive_update("b", 4, { addr = "h:1" }) }))
      assert.are.same({ addr = "h:1" }, g:meta("b"))
      local _, ev = drain(g)
      assert.are.same({ { type = "update", id = "b" } }, ev)
    end)
  end)

  describe("refutation", function()
    it("raises its incarnation and broadcasts alive when suspected", function()
      local a, b = node("a"), node("b", { seeds = { "a" } })
      pump({ a, b })
      a:step(gossip_msg("a", "b", { { kind = "suspect", id = "a", inc = 0, from = "b" } }))
      assert.are.equal(1, a:incarnation())
      assert.are.equal(1, a:stats().refutations)
      -- the next message a sends carries the refutation
      a:tick()
      for _ = 1, 10 do a:tick() end
      local carried = false
      for _, m in ipairs((drain(a))) do
        for _, u in ipairs(m.updates or {}) do
          if u.kind == "alive" and u.id == "a" and u.inc == 1 then carried = true end
        end
      end
      assert.is_true(carried)
    end)

    it("refutes being declared dead by a previous life of the cluster", function()
      local a = node("a")
      a:step({ to = "a", from = "b", type = "sync", reply = true,
               state = { { id = "b", state = "alive", inc = 0 },
                         { id = "a", state = "dead", inc = 7 } } })
      assert.are.equal(8, a:incarnation())
      assert.are.equal("alive", a:members().a)
    end)
  end)

  describe("metadata", function()
    it("returns copies of its own metadata and raises the incarnation on a change", function()
      local a = node("a", { meta = { addr = "h:1" } })
      local m = a:meta()
      m.addr = "changed"
      assert.are.same({ addr = "h:1" }, a:meta("a"))
      a:set_meta({ addr = "h:1" })
      assert.are.equal(0, a:incarnation())
      a:set_meta({ addr = "h:2", role = "follower" })
      assert.are.equal(1, a:incarnation())
    end)

    it("rejects metadata that is not a small flat map", function()
      local a = node("a")
      local msg = "bad metadata: a flat table of string keys and string, number or boolean "
        .. "values, at most 512 bytes"
      assert.has_error(function() a:set_meta({ nested = {} }) end, msg)
      assert.has_error(function() a:set_meta({ [1] = "x" }) end, msg)
      assert.has_error(function() a:set_meta({ big = ("x"):rep(600) }) end, msg)
      assert.has_error(function() a:set_meta("addr") end, msg)
    end)
  end)

  describe("leave", function()
    it("tells every live member directly, then goes quiet", function()
      local a, b, c = node("a"), node("b", { seeds = { "a" } }), node("c", { seeds = { "a" } })
      pump({ a, b, c })
      a:leave()
      assert.are.equal("left", a:members().a)
      local msgs = drain(a)
      assert.are.equal(2, #msgs)
      for _, m in ipairs(msgs) do
        assert.are.equal("left", m.updates[1].kind)
        local peer = m.to == "b" and b or c
        peer:step(m)
      end
      assert.are.equal("left", b:members().a)
      assert.are.equal("left", c:members().a)
      for _ = 1, 200 do a:tick(); drain(a) end
      assert.is_true(a:left())
      a:tick()
      assert.is_nil(a:ready())
    end)
  end)

  describe("bad input", function()
    local function snapshot(g)
      local s = g:stats()
      s.dropped_bad = nil
      return { members = g:members(), list = g:member_list(), stats = s, meta = g:meta("b") }
    end

    local mt_table = setmetatable({}, { __index = function() error("boom") end })
    local bad = {
      "a string", 42, true, mt_table,
      {},
      { to = "zz", from = "b", type = "ping", seq = 1 },                -- foreign
      { to = "a", from = "a", type = "ping", seq = 1 },                 -- from itself
      { to = "a", from = "b", type = "ping" },                          -- no seq
      { to = "a", from = "b", type = "ping", seq = -1 },
      { to = "a", from = "b", type = "ping", seq = 0 / 0 },
      { to = "a", from = "b", type = "ping", seq = 1.5 },
      { to = "a", from = "b", type = "hello" },
      { to = "a", from = "", type = "gossip" },
      { to = "a", from = "b", type = "gossip", updates = "x" },
      { to = "a", from = "b", type = "gossip", updates = { { kind = "alive", id = "c" } } },
      { to = "a", from = "b", type = "gossip", updates = { { kind = "zombie", id = "c", inc = 1 } } },
      { to = "a", from = "b", type = "gossip", updates = { { kind = "suspect", id = "c", inc = 1 } } },
      { to = "a", from = "b", type = "gossip",
        updates = { alive_update("c", 1), { kind = "alive", id = "d", inc = 1, meta = { x = {} } } } },
      { to = "a", from = "b", type = "gossip", updates = { alive_update("c", 1), mt_table } },
      { to = "a", from = "b", type = "gossip", updates = { alive_update("c", 1), nil, alive_update("d", 1) } },
      { to = "a", from = "b", type = "gossip", updates = { [1] = alive_update("c", 1), x = 1 } },
      { to = "a", from = "b", type = "gossip", updates = { alive_update("c", 2 ^ 60) } },
      { to = "a", from = "b", type = "gossip", updates = { alive_update(("c"):rep(300), 1) } },
      { to = "a", from = "b", type = "ping_req", seq = 1 },
      { to = "a", from = "b", type = "ping_req", seq = 1, target = "b" },
      { to = "a", from = "b", type = "sync", state = { { id = "c", state = "alive" } } },
      { to = "a", from = "b", type = "sync", reply = "yes", state = {} },
      { to = "a", from = "b", type = "sync" },
      { to = "a", from = "b", type = "sync",
        state = { { id = "c", state = "dead", inc = 1, meta = { a = "b" } } } },
    }

    it("ignores and counts every malformed or foreign message without raising", function()
      local a = node("a")
      a:step(gossip_msg("a", "x", { alive_update("b", 1, { addr = "h:1" }) }))
      drain(a)
      local before = snapshot(a)
      for i, m in ipairs(bad) do
        local ok, err = pcall(a.step, a, m)
        assert.is_true(ok, "message " .. i .. " raised: " .. tostring(err))
        assert.are.equal(i, a:stats().dropped_bad, "message " .. i .. " was not counted")
      end
      assert.are.same(before, snapshot(a))
      assert.is_nil(a:ready())
    end)

    it("never raises on randomly mutated messages", function()
      local rng = simnet.rng(99)
      local values = { "a", "b", "zz", "", 0, 1, -1, 2 ^ 53, 0 / 0, 1 / 0, true, false, {}, { 1 },
                       { kind = "alive" }, "ping", "sync", "alive", "dead" }
      local function mutate(t, depth)
        local keys = {}
        for k in pairs(t) do keys[#keys + 1] = k end
        table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
        if #keys > 0 then
          local k = keys[rng:random(1, #keys)]
          if type(t[k]) == "table" and depth < 4 and rng:random() < 0.5 then
            mutate(t[k], depth + 1)
          else
            local v = values[rng:random(1, #values)]
            t[k] = type(v) == "table" and simnet.deep_copy(v) or v
          end
        end
      end
      -- real traffic of a small cluster as the corpus
      local a, b, c = node("a"), node("b", { seeds = { "a" } }), node("c", { seeds = { "a" } })
      local corpus = {}
      local nodes = { a = a, b = b, c = c }
      for _ = 1, 100 do
        for _, g in ipairs({ a, b, c }) do
          g:tick()
          for _, m in ipairs((drain(g))) do
            corpus[#corpus + 1] = simnet.deep_copy(m)
            nodes[m.to]:step(simnet.deep_copy(m))
          end
        end
      end
      assert.is_true(#corpus > 50)
      local states = { alive = true, suspect = true, dead = true, left = true }
      for i = 1, 3000 do
        local m = simnet.deep_copy(corpus[rng:random(1, #corpus)])
        for _ = 1, rng:random(1, 3) do mutate(m, 0) end
        local target = nodes[m.to] or a
        local ok, err = pcall(target.step, target, m)
        assert.is_true(ok, "mutation " .. i .. " raised: " .. tostring(err))
        ok, err = pcall(target.tick, target)
        assert.is_true(ok, "tick after mutation " .. i .. " raised: " .. tostring(err))
        drain(target)
        for _, s in pairs(target:members()) do assert.is_true(states[s]) end
      end
      assert.is_true(a:stats().dropped_bad + b:stats().dropped_bad + c:stats().dropped_bad > 0)
    end)
  end)
end)

describe("luact.cluster.gossip declare_dead", function()
  local gossip = require "luact.cluster.gossip"
  local function rnd(lo) return lo end

  it("declares a live member dead on outside evidence, disseminates it, and lets it refute", function()
    local a = gossip.new({ id = "a", seeds = {}, random = rnd })
    a:step({ to = "a", from = "b", type = "sync", state = { { id = "b", state = "alive", inc = 3 } } })
    a:advance(a:ready())
    assert.equal("alive", a:members().b)
    assert.is_true(a:declare_dead("b"))
    assert.is_false(a:declare_dead("b"))          -- already dead
    assert.is_false(a:declare_dead("a"))          -- never itself
    assert.is_false(a:declare_dead("nobody"))
    assert.equal("dead", a:members().b)
    local rd = a:ready()
    local dead_event = false
    for _, e in ipairs(rd.events) do if e.type == "dead" and e.id == "b" then dead_event = true end end
    assert.is_true(dead_event)
    a:advance(rd)
    -- b was alive after all: its higher incarnation brings it back
    a:step({ to = "a", from = "b", type = "gossip", updates = { { kind = "alive", id = "b", inc = 4 } } })
    assert.equal("alive", a:members().b)
  end)
end)
