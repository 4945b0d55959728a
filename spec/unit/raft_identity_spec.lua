-- spec/unit/raft_identity_spec.lua: storage identities and recovering voters
-- (luact.cluster.raft.identity), on a three-node cluster whose messages are carried by hand

local raft = require "luact.cluster.raft"

local IDS = { 1, 2, 3 }

-- node i's election timeout is 10 + 3 * (i - 1) ticks: node 1 campaigns first
local function random_for(id)
  return function(lo, hi) return math.min(hi, lo + 3 * (id - 1)) end
end

local function new_cluster(with_identity)
  local c = { nodes = {}, storages = {}, lines = {}, down = {}, gen = {}, committed = {} }
  function c:start(id, storage)
    self.storages[id] = storage
    self.nodes[id] = raft.new({ id = id, peers = IDS, random = random_for(id), storage = storage,
      log = function(level, line) self.lines[#self.lines + 1] = { id = id, level = level, line = line } end })
  end
  function c:wipe(id)
    self.gen[id] = (self.gen[id] or 1) + 1
    self:start(id, raft.storage_memory.new({ sid = ("%d#%d"):format(id, self.gen[id]) }))
  end
  -- run ready/advance everywhere and deliver every message (filter(m) == false drops it)
  function c:deliver(filter)
    for _ = 1, 100 do
      local msgs = {}
      for _, id in ipairs(IDS) do
        if not self.down[id] then
          local n = self.nodes[id]
          local rd = n:ready()
          while rd do
            for _, m in ipairs(rd.messages) do msgs[#msgs + 1] = m end
            -- the checker: an index committed anywhere is committed with the same entry everywhere
            for _, e in ipairs(rd.committed) do
              local was = self.committed[e.index]
              if was and (was.term ~= e.term or was.data ~= e.data) then
                error(("index %d committed as (%d, %s) and, on node %d, (%d, %s)"):format(e.index,
                  was.term, tostring(was.data), id, e.term, tostring(e.data)), 0)
              end
              self.committed[e.index] = { term = e.term, data = e.data }
            end
            n:advance(rd)
            rd = n:ready()
          end
        end
      end
      if #msgs == 0 then return end
      for _, m in ipairs(msgs) do
        if not self.down[m.to] and (not filter or filter(m) ~= false) then self.nodes[m.to]:step(m) end
      end
    end
  end
  function c:tick(k, filter)
    for _ = 1, k or 1 do
      for _, id in ipairs(IDS) do if not self.down[id] then self.nodes[id]:tick() end end
      self:deliver(filter)
    end
  end
  function c:leader()
    for _, id in ipairs(IDS) do
      if not self.down[id] and self.nodes[id]:status().role == "leader" then return id, self.nodes[id] end
    end
  end
  function c:lines_with(text)
    local out = {}
    for _, l in ipairs(self.lines) do if l.line:find(text, 1, true) then out[#out + 1] = l end end
    return out
  end
  for _, id in ipairs(IDS) do
    c:start(id, raft.storage_memory.new({ sid = with_identity ~= false and (id .. "#1") or nil }))
  end
  return c
end

-- a formed cluster with `k` committed proposals; returns it and its leader's id
local function formed(k)
  local c = new_cluster()
  c:tick(30)
  local lid, l = c:leader()
  assert(lid, "no leader")
  for i = 1, k or 0 do l:propose("p" .. i) end
  c:tick(3)
  return c, lid
end

describe("luact.cluster.raft.identity", function()
  it("founds a new cluster: its first leader makes the cluster id and every voter keeps it",
     function()
    local c, lid = formed(2)
    local cid = c.nodes[lid]:status().cid
    assert.equal(("%d#1@%d"):format(lid, c.nodes[lid]:status().term), cid)
    for _, id in ipairs(IDS) do
      local s = c.nodes[id]:status()
      assert.equal(cid, s.cid)
      assert.is_false(s.recovering)
      assert.equal(("%d#1"):format(id), s.sid)
      assert.same({ sid = s.sid, cid = cid, recovering = false },
        { sid = c.storages[id].identity.sid, cid = c.storages[id].identity.cid,
          recovering = c.storages[id].identity.recovering })
    end
    assert.equal(1, #c:lines_with("founded cluster " .. cid))
  end)

  it("makes a voter restarted with an empty storage recover: no votes, no quorum, then a " ..
     "full voter again once a leader committed without it an entry it holds", function()
    local c, lid = formed(5)
    local l = c.nodes[lid]
    local w = lid % 3 + 1
    local other
    for _, id in ipairs(IDS) do if id ~= lid and id ~= w then other = id end end
    c:wipe(w)
    c:deliver()
    c:tick(1)
    local s = c.nodes[w]:status()
    assert.is_true(s.recovering)
    assert.equal(l:status().cid, s.cid)
    local began = c:lines_with("rejoins as a recovering member")
    assert.equal(1, #began)
    assert.equal(w, began[1].id)
    assert.equal("warn", began[1].level)
    -- the leader saw the new storage: the peer does not count, and it will not take over
    assert.equal(1, #c:lines_with(("raft: voter %d has a new storage (%d#2, was %d#1)"):format(w, w, w)))
    assert.same({ nil, "recovering" }, { l:transfer_leader(w) })
    -- it refuses a vote, whoever asks, even at a higher term
    local st = c.nodes[w]:status()
    c.nodes[w]:step({ to = w, from = other, type = "vote", term = st.term + 5, last_index = 100,
                      last_term = st.term + 4, sid = other .. "#1", cid = st.cid, force = true })
    local rd = c.nodes[w]:ready()
    local answered
    for _, m in ipairs(rd.messages) do
      if m.type == "vote_resp" then answered = m end
    end
    c.nodes[w]:advance(rd)
    assert.is_true(answered.reject)
    assert.is_true(answered.rec)
    -- the stray higher term deposes the leader; a new one is elected by the two intact voters
    c:tick(60)
    lid, l = c:leader()
    assert.truthy(lid)
    assert.are_not.equal(w, lid)
    -- past the hold (2 election timeouts from its start), it is a full voter again
    assert.is_false(c.nodes[w]:status().recovering)
    local ended = c:lines_with("counts toward quorums again")
    assert.equal(1, #ended)
    assert.equal(w, ended[1].id)
    assert.equal(lid, c.nodes[w]:status().vote)
    assert.is_false(c.storages[w].identity.recovering)
    -- it holds the whole log, the five proposals among it
    assert.equal(l:status().last_index, c.nodes[w]:status().last_index)
    local data = {}
    for i = 1, l:status().last_index do
      assert.equal(l:entry(i).data, c.nodes[w]:entry(i).data)
      data[#data + 1] = c.nodes[w]:entry(i).data
    end
    assert.same({ "p1", "p2", "p3", "p4", "p5" }, data)
  end)

  it("does not let a wiped voter and a voter that missed writes elect a leader", function()
    local c, lid = formed(0)
    local rest = {}
    for _, id in ipairs(IDS) do if id ~= lid then rest[#rest + 1] = id end end
    local behind, wiped = rest[1], rest[2]
    c.down[behind] = true
    local l = c.nodes[lid]
    for i = 1, 5 do l:propose("w" .. i) end
    c:tick(3)
    local committed = l:status().commit
    c:wipe(wiped)
    c.down[lid] = true
    c.down[behind] = false
    c:tick(100)
    assert.is_nil(c:leader())
    assert.is_true(c.nodes[wiped]:status().recovering)
    -- the leader comes back: it (or `behind`, which then copies its log) leads, nothing lost
    c.down[lid] = false
    c:tick(80)
    local nlid, nl = c:leader()
    assert.truthy(nlid)
    assert.is_true(nl:status().commit >= committed)
    for i = 1, committed do
      assert.same(l:entry(i).data, nl:entry(i).data)
    end
    assert.is_false(c.nodes[wiped]:status().recovering)
  end)

  it("does not let a leader of an older term commit through a wiped voter", function()
    local c, L = formed(2)
    local Z = L % 3 + 1
    local R = Z % 3 + 1
    -- Z takes over by a transfer whose end L never learns: Z's and R's messages to L are lost
    local function to_L_lost(m) if m.to == L then return false end end
    assert.is_true(c.nodes[L]:transfer_leader(Z))
    c:deliver(to_L_lost)
    assert.equal("leader", c.nodes[Z]:status().role)
    assert.equal("leader", c.nodes[L]:status().role) -- stale: term T, it heard nothing since
    for i = 1, 3 do c.nodes[Z]:propose("z" .. i) end
    c:deliver(to_L_lost)
    local zc = c.nodes[Z]:status().commit
    assert.equal("z3", c.nodes[Z]:entry(zc).data) -- committed by Z and R
    -- R loses its storage, Z goes down; L and the new R hear each other. R's acknowledgements
    -- must not let L commit anything in its old term over what Z committed
    c:wipe(R)
    c.down[Z] = true
    for i = 1, 3 do c.nodes[L]:propose("l" .. i) end
    c:tick(30)
    assert.is_true(c.nodes[R]:status().recovering)
    c.down[Z] = false
    c:tick(120)
    local lid, l = c:leader()
    assert.truthy(lid)
    for i = 1, zc do assert.same(c.committed[i].data, l:entry(i).data) end
    assert.equal("z3", l:entry(zc).data)
    assert.is_false(c.nodes[R]:status().recovering)
  end)

  it("drops answers from a peer's old storage once it has seen the new one", function()
    local c, lid = formed(3)
    local l = c.nodes[lid]
    local w = lid % 3 + 1
    local last = l:status().last_index
    local old = { to = lid, from = w, type = "append_resp", term = l:status().term, reject = false,
                  index = last, sid = w .. "#1", cid = l:status().cid }
    assert.equal(last, l.prs[w].match)
    c:wipe(w)
    -- (no appends reach the new storage: it stays empty)
    c:tick(1, function(m) return not (m.to == w and m.type == "append") end)
    assert.is_true(l.prs[w].rec)
    assert.equal(0, l.prs[w].match)
    l:step(old)
    assert.equal(0, l.prs[w].match)
  end)

  it("refuses a member's vote to a candidate whose storage is new, telling it the cluster id",
     function()
    local c, lid = formed(0)
    local v = lid % 3 + 1
    local n = c.nodes[v]
    local st = n:status()
    c.down[lid] = true -- so that v has no recent leader (the lease check would ignore the vote)
    c:tick(40, function() return false end)
    st = n:status()
    n:step({ to = v, from = lid, type = "vote", term = st.term + 1, last_index = 100,
             last_term = st.term, sid = "fresh", form = "fresh@" .. (st.term + 1) })
    local rd = n:ready()
    local resp
    for _, m in ipairs(rd.messages) do if m.type == "vote_resp" then resp = m end end
    n:advance(rd)
    assert.is_true(resp.reject)
    assert.equal(st.cid, resp.cid)
  end)

  it("leaves messages without identity fields when the storage has no identity", function()
    local c = new_cluster(false)
    local seen = 0
    c:tick(30, function(m)
      seen = seen + 1
      assert.is_nil(m.sid)
      assert.is_nil(m.cid)
      assert.is_nil(m.rec)
    end)
    assert.truthy(c:leader())
    assert.is_true(seen > 0)
    assert.is_nil(c.nodes[1]:status().sid)
  end)
end)
