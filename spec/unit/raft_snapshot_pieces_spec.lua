-- spec/unit/raft_snapshot_pieces_spec.lua: snapshots sent in pieces (luact.cluster.raft.pieces,
-- and Raft's InstallSnapshot on top of it), driven by hand with a seeded schedule that loses,
-- duplicates and reorders pieces, restarts the receiver and changes the leader mid-transfer.
local raft = require "luact.cluster.raft"
local pieces = require "luact.cluster.raft.pieces"

local function fixed(lo) return lo end

-- a deterministic generator (the specs print the seed of a failing run)
local function rng(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return math.floor(s / 65536) % n + 1            -- (the high bits: the low ones cycle)
  end
end

describe("luact.cluster.raft.pieces", function()
  it("delivers a string whole through lost, duplicated and reordered pieces, with at most a " ..
     "window unacknowledged", function()
    for seed = 1, 200 do
      local r = rng(seed)
      local data = {}
      for i = 1, r(3000) - 1 do data[i] = string.char(r(256) - 1) end
      data = table.concat(data)
      local out = pieces.sender(data, 64, 3)
      local rx = pieces.receiver(#data)
      local wire, rounds = {}, 0
      while not rx:complete() or #data == 0 and rounds == 0 do
        rounds = rounds + 1
        assert(rounds < 2000, "seed " .. seed .. ": no progress")
        for _, p in ipairs(out:take()) do
          assert(#p[2] <= 64, "seed " .. seed .. ": a piece over 64 bytes")
          if r(5) > 1 then wire[#wire + 1] = p end              -- 1 in 5 lost
          if r(5) == 1 then wire[#wire + 1] = p end             -- 1 in 5 twice
        end
        assert(out.sent - out.acked <= 3 * 64, "seed " .. seed .. ": more than a window in flight")
        -- deliver what is on the wire in a random order; the answers go back (some lost)
        while #wire > 0 do
          local p = table.remove(wire, r(#wire))
          local held = rx:put(p[1], p[2])
          if r(4) > 1 then out:ack(held) end
        end
        out:stalled()
        if #data == 0 then break end
      end
      assert.equal(data, rx:take(), "seed " .. seed)
    end
  end)

  it("tells a receiver that restarted to start over", function()
    local out = pieces.sender(("ab"):rep(100), 50, 2)
    local first = out:take()
    assert.equal(2, #first)
    out:ack(100)
    assert.equal(2, #out:take())
    out:ack(0)                          -- the receiver lost what it held
    local again = out:take()
    assert.equal(0, again[1][1])
  end)
end)

-- A cluster of 3 Raft nodes driven by hand: `down` nodes receive nothing; messages to `chaos`
-- nodes are lost, duplicated and reordered by a seeded schedule.
local function cluster(seed)
  local c = { nodes = {}, storages = {}, apps = {}, r = rng(seed), queue = {}, down = {}, chaos = {},
              pieces = 0, piece_max = 0 }
  local function new_node(id)
    local app = c.apps[id] or { data = nil, index = 0, installs = 0 }
    c.apps[id] = app
    c.storages[id] = c.storages[id] or raft.storage_memory.new()
    c.nodes[id] = raft.new({
      id = id, peers = { 1, 2, 3 }, random = fixed, storage = c.storages[id],
      snapshot_entries = 5, snapshot_piece = 100, snapshot_window = 2,
      -- the state: every applied entry, after 2000 bytes of padding (a snapshot of many pieces)
      snapshot = function() return app.state end,
    })
  end
  function c.restart(id)
    c.apps[id] = { data = nil, index = 0, installs = 0 }
    new_node(id)
  end
  for id = 1, 3 do new_node(id) end
  function c.drain()
    for _ = 1, 10000 do
      local any = false
      for id = 1, 3 do
        local n = c.nodes[id]
        local rd = n:ready()
        if rd then
          any = true
          local app = c.apps[id]
          for _, m in ipairs(rd.messages) do c.queue[#c.queue + 1] = m end
          if rd.snapshot then
            app.state, app.index, app.installs = rd.snapshot.data, rd.snapshot.index, app.installs + 1
          end
          for _, e in ipairs(rd.committed) do
            assert(e.index == app.index + 1, "applied out of order")
            app.state = (app.state or ("p"):rep(2000)) .. (e.data or "-")
            app.index = e.index
          end
          n:advance(rd)
        end
      end
      if #c.queue > 0 then
        any = true
        local q = c.queue
        c.queue = {}
        -- messages to chaos nodes: reordered, 1 in 6 lost, 1 in 6 twice
        local order = {}
        for i = 1, #q do order[i] = q[i] end
        for i = #order, 2, -1 do
          local j = c.r(i)
          if c.chaos[order[i].to] or c.chaos[order[j].to] then order[i], order[j] = order[j], order[i] end
        end
        for _, m in ipairs(order) do
          if not c.down[m.to] and not c.down[m.from] then
            local times = 1
            if c.chaos[m.to] or c.chaos[m.from] then
              local x = c.r(6)
              times = x == 1 and 0 or x == 2 and 2 or 1
            end
            if m.type == "snapshot" and c.budget then
              -- a limited number of pieces get through (a transfer cut off half-way)
              if c.budget == 0 then times = 0 else c.budget = c.budget - 1 end
            end
            if m.type == "snapshot" and times > 0 then
              c.pieces = c.pieces + 1
              if #m.data > c.piece_max then c.piece_max = #m.data end
            end
            for _ = 1, times do c.nodes[m.to]:step(m) end
          end
        end
      end
      if not any then return end
    end
    error("the cluster never went quiet")
  end
  function c.tick(id, k)
    for _ = 1, k or 1 do c.nodes[id]:tick(); c.drain() end
  end
  function c.leader()
    for id = 1, 3 do
      if not c.down[id] and c.nodes[id]:status().role == "leader" then return id end
    end
  end
  function c.propose(k, tag)
    local l = assert(c.leader(), "no leader")
    for i = 1, k do assert(c.nodes[l]:propose(tag .. i)); c.drain() end
  end
  return c
end

describe("luact.cluster.raft InstallSnapshot in pieces", function()
  it("brings a lagging follower up to date through lost, duplicated and reordered pieces",
     function()
    for seed = 1, 30 do
      local c = cluster(seed)
      c.down[3] = true
      c.tick(1, 10)
      assert.equal(1, c.leader(), "seed " .. seed)
      c.propose(40, "a")
      local l = c.nodes[1]
      assert.is_true(l:status().snapshot_index > 3, "the leader compacted its log")
      c.down[3], c.chaos[3] = nil, true
      for _ = 1, 400 do
        if c.apps[3].index == c.apps[1].index then break end
        c.tick(1)
      end
      assert.equal(c.apps[1].index, c.apps[3].index, "seed " .. seed .. ": the follower caught up")
      assert.equal(c.apps[1].state, c.apps[3].state, "seed " .. seed)
      assert.is_true(c.apps[3].installs >= 1, "seed " .. seed .. ": it installed a snapshot")
      assert.is_true(c.pieces > 20, "seed " .. seed .. ": the snapshot went in pieces")
      assert.is_true(c.piece_max <= 100)
    end
  end)

  it("finishes the transfer when the receiver restarts and when the leader changes mid-way",
     function()
    for seed = 1, 30 do
      local c = cluster(seed)
      c.down[3] = true
      c.tick(1, 10)
      c.propose(40, "a")
      c.down[3] = nil
      -- a few pieces reach node 3, then it restarts (it held part of the snapshot in memory)
      c.budget = 3 + c.r(5)
      c.tick(1)
      assert.is_truthy(c.nodes[3].snap_in, "seed " .. seed .. ": a transfer is under way")
      c.restart(3)
      c.budget = 3 + c.r(5)
      c.tick(1, 3)
      assert.is_truthy(c.nodes[3].snap_in, "seed " .. seed .. ": a transfer is under way again")
      -- now node 2 takes over (no more pieces reach node 3 meanwhile) and the old leader goes away
      c.budget = 0
      c.propose(10, "b")               -- (committed by nodes 1 and 2: both snapshot anew)
      assert.is_true(c.nodes[1]:transfer_leader(2))
      c.drain()
      assert.equal(2, c.leader(), "seed " .. seed)
      c.down[1] = true
      -- node 3 holds part of node 1's snapshot when node 2's pieces arrive
      c.budget = 3 + c.r(5)
      c.tick(2)
      c.budget = nil
      c.chaos[3] = true
      for _ = 1, 400 do
        if c.apps[3].index == c.apps[2].index then break end
        c.tick(2)
      end
      assert.equal(c.apps[2].index, c.apps[3].index, "seed " .. seed .. ": the follower caught up")
      assert.equal(c.apps[2].state, c.apps[3].state, "seed " .. seed)
      -- and the old leader, back, follows too
      c.down[1] = nil
      for _ = 1, 400 do
        if c.apps[1].index == c.apps[2].index then break end
        c.tick(2)
      end
      assert.equal(c.apps[2].state, c.apps[1].state, "seed " .. seed)
    end
  end)

  it("cuts appends at max_append_bytes, one entry at least", function()
    local l = raft.new({ id = 1, peers = { 1 }, random = fixed, max_append_bytes = 250 })
    for _ = 1, 10 do l:tick() end
    local function drain(n)
      local out, rd = {}, n:ready()
      while rd do
        for _, m in ipairs(rd.messages) do out[#out + 1] = m end
        n:advance(rd)
        rd = n:ready()
      end
      return out
    end
    drain(l)
    assert.equal("leader", l:status().role)
    for i = 1, 6 do assert(l:propose(("x"):rep(i == 4 and 600 or 100))) end
    drain(l)
    -- a second node joins empty (a learner first): its appends carry at most 250 bytes, or one
    -- bigger entry
    l:propose_conf({ add = 2 })
    local sizes, held = {}, 0
    for _ = 1, 40 do
      l:tick()
      for _, m in ipairs(drain(l)) do
        if m.type == "append" then
          local b = 0
          for _, e in ipairs(m.entries) do b = b + #(e.data or "") end
          if #m.entries > 0 then sizes[#sizes + 1] = b end
          assert.is_true(b <= 250 or #m.entries == 1, ("an append of %d bytes in %d entries"):format(b, #m.entries))
          -- answered as a follower that holds `held` entries would
          local ok = m.prev_index == held
          if ok then held = held + #m.entries end
          l:step({ to = 1, from = 2, term = m.term, type = "append_resp", reject = not ok,
                   index = ok and held or m.prev_index, hint_index = held })
        elseif m.type == "heartbeat" then
          l:step({ to = 1, from = 2, term = m.term, type = "heartbeat_resp" })
        end
      end
    end
    assert.equal(l:status().last_index, held, "the new node got the whole log")
    assert.is_true(#sizes >= 4, "the appends were cut")
    assert.has_error(function() raft.new({ id = 1, random = fixed, max_append_bytes = 0 }) end,
      "bad 'max_append_bytes' option (a positive integer expected)")
  end)

  it("refuses malformed pieces without touching its state", function()
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed })
    local meta = { index = 9, term = 5, conf = { voters = { 1, 2, 3 } } }
    local bad = {
      { offset = 0, size = 10, data = "abc", done = true },          -- done before the end
      { offset = 8, size = 10, data = "abc", done = true },          -- past the size
      { offset = -1, size = 10, data = "abc", done = false },
      { offset = 0, size = 3, data = 7, done = true },
      { offset = 0, size = 3, data = "abc" },                        -- no done flag
    }
    local before = n:status()
    for i, p in ipairs(bad) do
      p.to, p.from, p.type, p.term, p.snapshot = 1, 3, "snapshot", 5, meta
      assert.is_false(n:step(p), "piece " .. i .. " was accepted")
    end
    assert.is_false(n:step({ to = 1, from = 3, type = "snapshot_resp", term = 5, index = 9, next = "x" }))
    assert.equal(before.dropped_bad + #bad + 1, n:status().dropped_bad)
    assert.equal(before.term, n:status().term)
  end)
end)
