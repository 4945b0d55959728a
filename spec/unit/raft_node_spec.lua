-- spec/unit/raft_node_spec.lua: one luact.cluster.raft node driven by hand: options, roles,
-- refusals, and malformed input

local raft = require "luact.cluster.raft"

local function fixed(lo) return lo end

local function drain(n)
  local out = {}
  local rd = n:ready()
  while rd do
    for _, m in ipairs(rd.messages) do out[#out + 1] = m end
    n:advance(rd)
    rd = n:ready()
  end
  return out
end

describe("luact.cluster.raft", function()
  it("rejects bad options with a clear message", function()
    assert.has_error(function() raft.new() end, "bad 'opts' argument (table expected)")
    assert.has_error(function() raft.new({ random = fixed }) end,
      "bad 'id' option (number or string expected)")
    assert.has_error(function() raft.new({ id = 1 }) end, "bad 'random' option (function expected)")
    assert.has_error(function()
      raft.new({ id = 1, random = fixed, election_ticks = 1, heartbeat_ticks = 1 })
    end, "bad 'election_ticks' option (must exceed heartbeat_ticks)")
    assert.has_error(function()
      raft.new({ id = 1, random = fixed, snapshot_entries = 10 })
    end, "bad 'snapshot' option (function expected with snapshot_entries)")
  end)

  it("starts as a follower of term 1 with the bootstrap configuration committed", function()
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed })
    local s = n:status()
    assert.equal("follower", s.role)
    assert.equal(1, s.term)
    assert.equal(1, s.commit)
    assert.same({ 1, 2, 3 }, s.voters)
    local rd = n:ready()
    assert.equal(1, #rd.committed)
    assert.is_nil(rd.committed[1].data)
  end)

  it("refuses proposals, configuration changes and transfers on a follower", function()
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed })
    assert.same({ nil, "not_leader" }, { n:propose("x") })
    assert.same({ nil, "not_leader" }, { n:propose_conf({ add = 4 }) })
    assert.same({ nil, "not_leader" }, { n:transfer_leader(2) })
    assert.same({ nil, "no_leader" }, { n:read_index("r") })
    assert.has_error(function() n:propose(42) end, "bad 'data' argument (string expected)")
  end)

  it("sends pre-votes, not votes, when its election timer fires, without raising its term",
     function()
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed, election_ticks = 10 })
    drain(n)
    for _ = 1, 10 do n:tick() end
    local msgs = drain(n)
    assert.equal(2, #msgs)
    for _, m in ipairs(msgs) do
      assert.equal("prevote", m.type)
      assert.equal(2, m.term)
    end
    assert.equal(1, n:status().term)
    assert.equal("candidate", n:status().role)
    assert.is_true(n:status().pre_vote)
  end)

  it("asks again, every heartbeat interval, the voters that have not answered", function()
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed, election_ticks = 10 })
    drain(n)
    for _ = 1, 10 do n:tick() end
    drain(n)
    n:step({ to = 1, from = 2, type = "prevote_resp", term = 2, reject = false })
    local msgs = drain(n)
    assert.equal(2, #msgs) -- the real election starts: votes to 2 and 3
    n:step({ to = 1, from = 2, type = "vote_resp", term = 2, reject = true })
    n:tick()
    msgs = drain(n)
    assert.equal(1, #msgs)
    assert.equal(3, msgs[1].to)
    assert.equal("vote", msgs[1].type)
    n:step({ to = 1, from = 3, type = "vote_resp", term = 2, reject = false })
    assert.equal("leader", n:status().role)
  end)

  it("becomes leader alone in a one-node cluster and commits its proposals", function()
    local n = raft.new({ id = "solo", peers = { "solo" }, random = fixed })
    for _ = 1, 20 do n:tick() end
    drain(n)
    assert.equal("leader", n:status().role)
    local idx = n:propose("hello")
    assert.equal(3, idx)
    local rd = n:ready()
    assert.equal("hello", rd.committed[#rd.committed].data)
    n:advance(rd)
    assert.equal(3, n:status().applied)
    -- reads on a single voter are served at once
    assert.is_true(n:read_index("r1"))
    rd = n:ready()
    assert.same({ { ctx = "r1", index = 3 } }, rd.reads)
  end)

  it("confirms a lazy read with the next regular heartbeats, an ordinary one with a round of its own",
     function()
    -- three nodes whose messages are carried by hand; node 1 campaigns first
    local nodes, reads = {}, {}
    for id = 1, 3 do
      nodes[id] = raft.new({ id = id, peers = { 1, 2, 3 }, election_ticks = 10,
                             random = function(lo, hi) return math.min(hi, lo + 3 * (id - 1)) end })
    end
    local function out_of(id)
      local msgs, rd = {}, nodes[id]:ready()
      while rd do
        for _, m in ipairs(rd.messages) do msgs[#msgs + 1] = m end
        for _, r in ipairs(rd.reads or {}) do reads[#reads + 1] = r.ctx end
        nodes[id]:advance(rd)
        rd = nodes[id]:ready()
      end
      return msgs
    end
    local function deliver(msgs)
      for _ = 1, 50 do
        for id = 1, 3 do
          for _, m in ipairs(out_of(id)) do msgs[#msgs + 1] = m end
        end
        if #msgs == 0 then return end
        local now = msgs
        msgs = {}
        for _, m in ipairs(now) do nodes[m.to]:step(m) end
      end
    end
    for _ = 1, 10 do nodes[1]:tick() end
    deliver({})
    assert.equal("leader", nodes[1]:status().role)
    local leader = nodes[1]
    assert.is_true(leader:read_index("lazy", true))
    assert.same({}, out_of(1))             -- no round of its own
    deliver({})
    assert.same({}, reads)                 -- nothing confirms it yet
    leader:tick()                          -- the regular heartbeats carry it
    local beats = out_of(1)
    assert.equal(2, #beats)
    for _, m in ipairs(beats) do assert.equal("heartbeat", m.type); assert.is_not_nil(m.ctx) end
    deliver(beats)
    assert.same({ "lazy" }, reads)
    assert.is_true(leader:read_index("now"))
    beats = out_of(1)                      -- a round at once, before any tick
    assert.equal(2, #beats)
    deliver(beats)
    assert.same({ "lazy", "now" }, reads)
  end)

  it("ignores and counts malformed or foreign messages without changing state", function()
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed })
    drain(n)
    local before = n:status()
    local bad = {
      "string", 42, true,
      {},
      { type = "append" },
      { to = 2, from = 3, type = "heartbeat", term = 5, commit = 0 },         -- not for us
      { to = 1, from = 1, type = "heartbeat", term = 5, commit = 0 },         -- from ourselves
      { to = 1, from = 3, type = "heartbeat", term = -1, commit = 0 },
      { to = 1, from = 3, type = "heartbeat", term = 1.5, commit = 0 },
      { to = 1, from = 3, type = "heartbeat", term = 0 / 0, commit = 0 },
      { to = 1, from = 3, type = "heartbeat", term = math.huge, commit = 0 },
      { to = 1, from = 3, type = "heartbeat", term = "5", commit = 0 },
      { to = 1, from = {}, type = "heartbeat", term = 5, commit = 0 },
      { to = 1, from = 3, type = "nonsense", term = 5 },
      { to = 1, from = 3, type = "vote", term = 5, last_index = "x", last_term = 1 },
      { to = 1, from = 3, type = "append", term = 5, prev_index = 1, prev_term = 1, commit = 1,
        entries = "no" },
      { to = 1, from = 3, type = "append", term = 5, prev_index = 1, prev_term = 1, commit = 1,
        entries = { { index = 3, term = 5, data = "gap" } } },
      { to = 1, from = 3, type = "append", term = 5, prev_index = 1, prev_term = 1, commit = 1,
        entries = { { index = 2, term = 6, data = "future term" } } },
      { to = 1, from = 3, type = "append", term = 5, prev_index = 1, prev_term = 1, commit = 1,
        entries = { { index = 2, term = 5, data = 7 } } },
      { to = 1, from = 3, type = "append", term = 5, prev_index = 1, prev_term = 1, commit = 1,
        entries = { { index = 2, term = 5, conf = { voters = { {} } } } } },
      { to = 1, from = 3, type = "append", term = 5, prev_index = 1, prev_term = 1, commit = 1,
        entries = { "entry" } },
      { to = 1, from = 3, type = "snapshot", term = 5, snapshot = { index = 9, term = 5 } },
      { to = 1, from = 3, type = "append_resp", term = 1, reject = "yes", index = 1 },
      { to = 1, from = 3, type = "read_index_resp", term = 1, ctx = "r", index = -3 },
    }
    for i, m in ipairs(bad) do
      assert.is_false(n:step(m), "message " .. i .. " was accepted")
    end
    assert.is_false(n:step(nil))
    local after = n:status()
    assert.equal(#bad + 1, after.dropped_bad)
    after.dropped_bad = before.dropped_bad
    assert.same(before, after)
    assert.is_nil(n:ready())
  end)

  it("has its vote durable in storage before ready() returns the vote response", function()
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed })
    drain(n)
    -- node 2 asks for term 2 with a log that is behind ours (no bootstrap entry): refused
    n:step({ to = 1, from = 2, type = "vote", term = 2, last_index = 0, last_term = 0 })
    local msgs = drain(n)
    assert.is_true(msgs[1].reject)
    assert.equal(2, n.storage:load().hard_state.term)
    assert.is_nil(n.storage:load().hard_state.vote)
    -- node 3 asks in the same term with a good log: granted, and only the vote changes
    n:step({ to = 1, from = 3, type = "vote", term = 2, last_index = 1, last_term = 1 })
    local rd = n:ready()
    assert.equal("vote_resp", rd.messages[1].type)
    assert.is_false(rd.messages[1].reject)
    assert.equal(3, n.storage:load().hard_state.vote)
    n:advance(rd)
    -- after a restart from that storage it will not vote for anyone else in term 2
    local n2 = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed, storage = n.storage })
    n2:step({ to = 1, from = 2, type = "vote", term = 2, last_index = 1, last_term = 1 })
    assert.is_true(drain(n2)[1].reject)
  end)

  it("counts only current-term entries toward commitment (Raft figure 8)", function()
    -- node 1 leads term 3 over a log whose index 2 is from term 1; a follower acknowledges
    -- index 2 only: a quorum stores index 2, but it must not be committed by counting
    local st = raft.storage_memory.new()
    st:append(1, { { index = 1, term = 1, conf = { voters = { 1, 2, 3 } } },
                   { index = 2, term = 1, data = "old" } })
    st:set_hard_state({ term = 2, commit = 1 })
    local n = raft.new({ id = 1, peers = { 1, 2, 3 }, random = fixed, storage = st })
    for _ = 1, 10 do n:tick() end
    drain(n)
    n:step({ to = 1, from = 2, type = "prevote_resp", term = 3, reject = false })
    drain(n)
    n:step({ to = 1, from = 2, type = "vote_resp", term = 3, reject = false })
    assert.equal("leader", n:status().role)
    drain(n)
    n:step({ to = 1, from = 2, type = "append_resp", term = 3, reject = false, index = 2 })
    drain(n)
    assert.equal(1, n:status().commit)
    -- once the leader's own empty entry (index 3, term 3) is on a quorum, both commit
    n:step({ to = 1, from = 2, type = "append_resp", term = 3, reject = false, index = 3 })
    drain(n)
    assert.equal(3, n:status().commit)
  end)

  it("takes a snapshot through the snapshot option and compacts its log", function()
    local calls = {}
    local n = raft.new({ id = 1, peers = { 1 }, random = fixed, snapshot_entries = 5,
                         snapshot = function(index)
                           calls[#calls + 1] = index
                           return "s" .. index
                         end })
    for _ = 1, 20 do n:tick(); drain(n) end
    for i = 1, 12 do n:propose("v" .. i); drain(n) end
    assert.is_true(#calls >= 2)
    local s = n:status()
    assert.equal(calls[#calls], s.snapshot_index)
    assert.is_nil(n:entry(s.snapshot_index))
    assert.equal("s" .. s.snapshot_index, n.storage:load().snapshot.data)
  end)
end)
