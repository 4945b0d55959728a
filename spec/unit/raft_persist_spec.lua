-- spec/unit/raft_persist_spec.lua: one luact.cluster.raft node with async_storage driven by
-- hand (raft/persist.lua): what waits for a persist, what leaves at once, one persist out at a
-- time, the leader's own log counted once durable, and a crash before a persist came back.

local raft = require "luact.cluster.raft"

local function fixed(lo) return lo end

local function types(msgs)
  local out = {}
  for _, m in ipairs(msgs) do out[#out + 1] = m.type .. (m.index and (":" .. m.index) or "") end
  return out
end

-- a follower (id 2 of 1, 2, 3) whose bootstrap persist is done
local function follower(storage)
  local n = raft.new({ id = 2, peers = { 1, 2, 3 }, random = fixed, storage = storage,
                       async_storage = true })
  local rd = n:ready()
  assert(rd.persist, "the bootstrap writes a persist")
  storage:sync()
  n:persisted(rd.persist)
  n:advance(rd)
  return n
end

local function append(term, prev, entries, commit)
  local es = {}
  for i, t in ipairs(entries) do es[i] = { index = prev + i, term = t, data = "e" .. (prev + i) } end
  return { from = 1, to = 2, type = "append", term = term, prev_index = prev,
           prev_term = prev == 1 and 1 or term, entries = es, commit = commit }
end

describe("luact.cluster.raft with async_storage", function()
  it("holds an append's acknowledgement until its persist is back, lets heartbeats through meanwhile, and batches what came in while one was out", function()
    local st = raft.storage_memory.new({ lose_unsynced = true })
    local n = follower(st)
    assert.is_true(n:step(append(2, 1, { 2 }, 1)))
    local rd = n:ready()
    assert.is_table(rd.persist)
    assert.same({}, types(rd.messages))                      -- (not before the disk)
    assert.same({ "append_resp:2" }, types(rd.persist.messages))
    n:advance(rd)
    st:sync()
    assert.same({ "append_resp:2" }, types(n:persisted(rd.persist)))

    -- term 2 is durable now: a persist out holds acknowledgements, not heartbeat answers
    n:step(append(2, 2, { 2 }, 2))
    local rd2 = n:ready()
    local p2 = rd2.persist
    assert.same({ "append_resp:3" }, types(p2.messages))
    n:advance(rd2)
    n:step({ from = 1, to = 2, type = "heartbeat", term = 2, commit = 2 })
    n:step(append(2, 3, { 2 }, 2))
    local ents_before = #st.ents
    local rd3 = n:ready()
    assert.is_nil(rd3.persist)                               -- one persist out at a time
    assert.same({ "heartbeat_resp" }, types(rd3.messages))   -- at once
    assert.equal(ents_before, #st.ents)                      -- (the storage is not touched)
    n:advance(rd3)
    assert.is_nil(n:ready())                                 -- the rest waits for p2
    st:sync()
    assert.same({ "append_resp:3" }, types(n:persisted(p2)))
    local rd4 = n:ready()
    assert.same({ "append_resp:4" }, types(rd4.persist.messages))

    -- a crash before that persist came back loses entry 4, which was never acknowledged
    local again = raft.new({ id = 2, random = fixed, storage = st, async_storage = true })
    assert.equal(3, again:last_index())
  end)

  it("sends a vote only once the vote is durable, a pre-vote at once", function()
    local st = raft.storage_memory.new({ lose_unsynced = true })
    local n = follower(st)
    n:step({ from = 3, to = 2, type = "prevote", term = 2, last_index = 1, last_term = 1 })
    local rd = n:ready()
    assert.same({ "prevote_resp" }, types(rd.messages))
    assert.is_false(rd.messages[1].reject)
    n:advance(rd)
    n:step({ from = 3, to = 2, type = "vote", term = 2, last_index = 1, last_term = 1 })
    rd = n:ready()
    assert.same({}, types(rd.messages))
    assert.same({ "vote_resp" }, types(rd.persist.messages))
    n:advance(rd)
    assert.is_nil(st.durable.hs.vote)                        -- (not durable yet: not sent)
    st:sync()
    assert.equal(3, st.durable.hs.vote)
    local out = n:persisted(rd.persist)
    assert.same({ "vote_resp" }, types(out))
    assert.is_false(out[1].reject)
  end)

  it("counts the leader's own log toward a commit only once it is durable", function()
    local st = raft.storage_memory.new({ lose_unsynced = true })
    local n = raft.new({ id = 1, peers = { 1 }, random = fixed, storage = st, async_storage = true,
                         election_ticks = 2 })
    local rd = n:ready()
    st:sync(); n:persisted(rd.persist); n:advance(rd)
    for _ = 1, 4 do n:tick() end
    assert.equal("leader", (n:leadership()))
    rd = n:ready()
    st:sync(); n:persisted(rd.persist); n:advance(rd)
    while true do
      rd = n:ready()
      if not rd then break end
      n:advance(rd)
    end
    local index = n:propose("x")
    rd = n:ready()
    assert.is_table(rd.persist)
    n:advance(rd)
    assert.is_true(n:status().commit < index)                -- written, not durable: no commit
    st:sync()
    n:persisted(rd.persist)
    assert.equal(index, n:status().commit)
    rd = n:ready()
    assert.equal("x", rd.committed[#rd.committed].data)
  end)

  it("refuses a persist that is not the one out", function()
    local n = follower(raft.storage_memory.new())
    assert.has_error(function() n:persisted({}) end, "bad 'persist' argument (not the persist out)")
    assert.has_error(function() raft.new({ id = 1, random = fixed, async_storage = 1 }) end,
      "bad 'async_storage' option (boolean expected)")
  end)
end)
