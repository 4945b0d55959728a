-- spec/unit/raft_conf_spec.lua: changing the voters of a luact.cluster.raft cluster one at a
-- time (raft/membership.lua), on nodes whose messages are carried by hand: learners, the
-- configuration in force from its append, one change at a time, a removed leader, errors.

local raft = require "luact.cluster.raft"

-- node i's election timeout is 10 + 3 * (i - 1) ticks: node 1 campaigns first
local function random_for(id)
  return function(lo, hi) return math.min(hi, lo + 3 * (id - 1)) end
end

local function new_cluster(ids, opts)
  opts = opts or {}
  local c = { nodes = {}, ids = {}, down = {}, committed = {}, lines = {} }
  function c:start(id, peers, storage)
    if not self.nodes[id] then self.ids[#self.ids + 1] = id end
    self.nodes[id] = raft.new({ id = id, peers = peers, random = random_for(id),
      storage = storage or raft.storage_memory.new({ sid = opts.identity and (id .. "#1") or nil }),
      log = function(level, line) self.lines[#self.lines + 1] = { id = id, level = level, line = line } end })
  end
  -- ready/advance everywhere, deliver every message (filter(m) == false drops it), until quiet
  function c:deliver(filter)
    for _ = 1, 200 do
      local msgs = {}
      for _, id in ipairs(self.ids) do
        if not self.down[id] then
          local n = self.nodes[id]
          local rd = n:ready()
          while rd do
            for _, m in ipairs(rd.messages) do msgs[#msgs + 1] = m end
            for _, e in ipairs(rd.committed) do
              local was = self.committed[e.index]
              if was and (was.term ~= e.term or was.data ~= e.data) then
                error(("index %d committed twice differently"):format(e.index), 0)
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
        if self.nodes[m.to] and not self.down[m.to] and (not filter or filter(m) ~= false) then
          self.nodes[m.to]:step(m)
        end
      end
    end
  end
  function c:tick(k, filter)
    for _ = 1, k or 1 do
      for _, id in ipairs(self.ids) do if not self.down[id] then self.nodes[id]:tick() end end
      self:deliver(filter)
    end
  end
  function c:leader()
    for _, id in ipairs(self.ids) do
      if not self.down[id] and self.nodes[id]:status().role == "leader" then return id, self.nodes[id] end
    end
  end
  -- asks the leader for the change every tick until it is proposed; returns its index
  function c:change(ch, ticks)
    for _ = 1, ticks or 100 do
      local _, l = self:leader()
      if l then
        local idx, err = l:propose_conf(ch)
        if idx then self:deliver(); return idx end
        if err ~= "catching_up" and err ~= "not_ready" then return nil, err end
      end
      self:tick()
    end
    return nil, "timeout"
  end
  for _, id in ipairs(ids) do c:start(id, ids) end
  return c
end

local function formed(ids, opts)
  local c = new_cluster(ids or { 1, 2, 3 }, opts)
  c:tick(30)
  local lid, l = c:leader()
  assert.is_not_nil(lid)
  for i = 1, 5 do l:propose("w" .. i) end
  c:deliver()
  return c, lid, l
end

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("luact.cluster.raft membership change", function()
  it("copies the log to an added node as a learner first, counting it toward no quorum", function()
    local c, lid, l = formed()
    c:start(4, {})
    assert.same({ nil, "catching_up" }, { l:propose_conf({ add = 4 }) })
    assert.same({ 4 }, l:status().learners)
    assert.same({ 1, 2, 3 }, l:status().voters)
    c:deliver()
    -- the learner holds the log, and does not vote: with the two other voters down, the
    -- leader and the learner commit nothing
    assert.equal(l:last_index(), c.nodes[4]:last_index())
    c.down[2], c.down[3] = true, true
    local commit = l:status().commit
    l:propose("alone")
    c:deliver()
    assert.equal(commit, l:status().commit)
    assert.equal(l:last_index(), c.nodes[4]:last_index())
    c.down[2], c.down[3] = false, false
    c:tick(2)
    assert.is_true(l:status().commit > commit)
    -- now it has caught up: the change is proposed, and it votes from then on
    local idx = assert(c:change({ add = 4 }))
    assert.same({ 1, 2, 3, 4 }, l:status().voters)
    assert.same({}, l:status().learners)
    assert.is_true(l:status().commit >= idx)
    assert.same({ 1, 2, 3, 4 }, c.nodes[4]:status().voters)
    assert.equal(lid, c:leader())
  end)

  it("puts a configuration in force when it is appended, before it is committed", function()
    local c, _, l = formed()
    c:start(4, {})
    l:propose_conf({ add = 4 })
    c:deliver()
    -- node 2 gets the change, nobody gets anything else from now on
    local idx = assert(l:propose_conf({ add = 4 }))
    assert.same({ 1, 2, 3, 4 }, l:status().voters)          -- the leader: at once
    c:deliver(function(m) return m.from == 1 and m.to == 2 and m.type == "append" end)
    local s2 = c.nodes[2]:status()
    assert.is_true(s2.commit < idx)
    assert.same({ 1, 2, 3, 4 }, s2.voters)
    -- node 2's campaign asks the new voter too
    c.down[1] = true
    local asked = {}
    c:tick(40, function(m)
      if m.from == 2 and (m.type == "prevote" or m.type == "vote") then asked[m.to] = true end
      return false
    end)
    assert.is_true(asked[4] == true)
  end)

  it("allows one change at a time", function()
    local c, _, l = formed()
    c:start(4, {})
    assert(c:change({ add = 4 }))
    -- a change whose entry is not committed yet (two of the four voters are down) blocks the next
    c.down[2], c.down[4] = true, true
    assert(l:propose_conf({ remove = 3 }))
    c:deliver()
    assert.same({ 1, 2, 4 }, l:status().voters)
    assert.same({ nil, "conf_pending" }, { l:propose_conf({ remove = 2 }) })
    c:start(5, {})
    assert.same({ nil, "conf_pending" }, { l:propose_conf({ add = 5 }) })
    c.down[2], c.down[4] = false, false
    c:tick(2)
    assert(c:change({ add = 5 }))
    assert.same({ 1, 2, 4, 5 }, l:status().voters)
  end)

  it("lets a removed leader lead until its removal is committed, then step down for good", function()
    local c, lid, l = formed()
    c.down[2], c.down[3] = true, true
    local idx = assert(l:propose_conf({ remove = lid }))
    c:deliver()
    assert.equal("leader", l:status().role)
    assert.is_false(has(l:status().voters, lid))
    c.down[2], c.down[3] = false, false
    c:tick(2)
    assert.is_true(l:status().commit >= idx)
    assert.equal("follower", l:status().role)
    c:tick(60)
    local nid, nl = c:leader()
    assert.is_not_nil(nid)
    assert.are_not.equal(lid, nid)
    assert.same({ 2, 3 }, nl:status().voters)
    -- it never campaigns again
    local campaigned = false
    c:tick(60, function(m)
      if m.from == lid and (m.type == "prevote" or m.type == "vote") then campaigned = true end
    end)
    assert.is_false(campaigned)
    assert.equal("follower", l:status().role)
  end)

  it("lets a node removed by an uncommitted entry campaign when it holds what others lack", function()
    local c = new_cluster({ 1, 2, 3, 4 })
    c:tick(30)
    local _, l = c:leader()
    assert.equal(1, (c:leader()))
    l:propose("w")
    c:deliver()
    -- the removal of 4 reaches 4 only; then the leader is gone
    local idx = assert(l:propose_conf({ remove = 4 }))
    c:deliver(function(m) return m.to == 4 end)
    c.down[1] = true
    -- 2 and 3 lack the entry and need 4's vote in { 1, 2, 3, 4 }; 4 refuses them (its log is
    -- newer) but may run itself in { 1, 2, 3 }: it leads, commits its removal, steps down
    c:tick(150)
    local nid, nl = c:leader()
    assert.is_truthy(nid == 2 or nid == 3, "no leader among 2 and 3: " .. tostring(nid))
    assert.same({ 1, 2, 3 }, nl:status().voters)
    assert.is_true(nl:status().commit >= idx)
    assert.equal("follower", c.nodes[4]:status().role)
  end)

  it("keeps sending to a removed follower until it holds its removal, then stops", function()
    local c, _, l = formed()
    local idx = assert(c:change({ remove = 3 }))
    c:tick(1)
    local s3 = c.nodes[3]:status()
    assert.same({ 1, 2 }, s3.voters)
    assert.is_true(s3.commit >= idx)
    assert.same({ 3 }, l:status().learners)
    c:tick(12)
    assert.same({}, l:status().learners)
    local sent = false
    c:tick(5, function(m) if m.to == 3 then sent = true end end)
    assert.is_false(sent)
  end)

  it("makes an added node with a new storage recover until caught up before it votes", function()
    local c, _, l = formed({ 1, 2, 3 }, { identity = true })
    c:start(4, {}, raft.storage_memory.new({ sid = "4#1" }))
    assert.same({ nil, "catching_up" }, { l:propose_conf({ add = 4 }) })
    c:deliver()
    assert.is_true(c.nodes[4]:status().recovering)
    assert.same({ nil, "catching_up" }, { l:propose_conf({ add = 4 }) })
    assert.is_true(#c.lines > 0)
    local idx = assert(c:change({ add = 4 }))
    assert.is_false(c.nodes[4]:status().recovering)
    assert.is_true(l:status().commit >= idx)
    assert.same({ 1, 2, 3, 4 }, c.nodes[4]:status().voters)
  end)

  it("never lets an added voter restarted with a new storage vote before it has caught up", function()
    local c, lid, l = formed({ 1, 2, 3 }, { identity = true })
    c:start(4, {}, raft.storage_memory.new({ sid = "4#1" }))
    assert(c:change({ add = 4 }))
    c:tick(3)
    -- its datadir is wiped: it starts again with no peers and a new storage, and gets the log
    c:start(4, {}, raft.storage_memory.new({ sid = "4#2" }))
    c:tick(3)
    local s4 = c.nodes[4]:status()
    assert.same({ 1, 2, 3, 4 }, s4.voters)
    -- a candidate of a later term with an up-to-date log asks it for its vote: refused
    local cand = lid == 2 and 3 or 2
    c.nodes[4]:step({ type = "vote", from = cand, to = 4, term = s4.term + 1,
                      last_index = l:last_index(), last_term = l:term_at(l:last_index()),
                      force = true, sid = cand .. "#1", cid = s4.cid })
    local rd = c.nodes[4]:ready()
    local answer
    for _, m in ipairs(rd.messages) do if m.type == "vote_resp" then answer = m end end
    c.nodes[4]:advance(rd)
    assert.is_true(answer.reject)
    assert.is_true(s4.recovering)
  end)

  it("makes a wiped seed that is no voter any more recover when the members refuse its campaign", function()
    local c, lid = formed({ 1, 2, 3 }, { identity = true })
    local gone = lid == 3 and 2 or 3
    assert(c:change({ remove = gone }))
    c:tick(15)
    -- it restarts as a seed with an empty storage: its own first configuration says it votes
    c:start(gone, { 1, 2, 3 }, raft.storage_memory.new({ sid = gone .. "#2" }))
    c:tick(40)
    local s = c.nodes[gone]:status()
    assert.is_true(s.recovering)
    assert.is_not_nil(s.cid)
    assert.equal(lid, c:leader())
    local line = c.lines[#c.lines].line
    assert.truthy(line:find("has a new storage", 1, true), line)
  end)

  it("answers bad changes with a clear reason", function()
    local c, lid, l = formed()
    assert.same({ nil, "already_member" }, { l:propose_conf({ add = 2 }) })
    assert.same({ nil, "not_member" }, { l:propose_conf({ remove = 9 }) })
    assert.has_error(function() l:propose_conf({}) end,
      "bad 'change' argument ({ add = id } or { remove = id } expected)")
    local f = c.nodes[lid == 1 and 2 or 1]
    assert.same({ nil, "not_leader" }, { f:propose_conf({ remove = 3 }) })
    local one = new_cluster({ 1 })
    one:tick(30)
    local _, ol = one:leader()
    assert.same({ nil, "last_voter" }, { ol:propose_conf({ remove = 1 }) })
  end)

  it("drops a learner nobody asked about for ten election timeouts", function()
    local c, _, l = formed()
    c:start(4, {})
    l:propose_conf({ add = 4 })
    c:tick(50)
    assert.same({ 4 }, l:status().learners)
    c:tick(60)
    assert.same({}, l:status().learners)
  end)
end)
