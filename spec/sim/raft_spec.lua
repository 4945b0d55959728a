-- spec/sim/raft_spec.lua: whole Raft clusters over the seeded simulated network. Every run
-- checks the safety properties after every delivered message and every tick, and the
-- liveness / durability properties at its end. A failure names its seed; replay it with
-- LUACT_SIM_SEED=N, run more seeds with LUACT_SIM_SEEDS=N.

local simnet = require "helpers.simnet"
local raft = require "luact.cluster.raft"

local SEEDS = simnet.seed_count(200)

---------------------------------------------------------------------------------------------
-- the harness: a cluster, its applications and the invariant checks
---------------------------------------------------------------------------------------------

local Cluster = {}
Cluster.__index = Cluster

local function encode_list(list) return table.concat(list, "\n") end
local function decode_list(s)
  local out = {}
  if s == "" then return out end
  for x in (s .. "\n"):gmatch("(.-)\n") do out[#out + 1] = x end
  return out
end

local function conf_key(c)
  if not c then return "" end
  local parts = {}
  for i, v in ipairs(c.voters) do parts[i] = tostring(v) end
  return table.concat(parts, ",")
end

-- opts: n (or ids), drop, delay, duplicate, reorder, snapshot_entries, election_ticks
local function cluster(seed, opts)
  opts = opts or {}
  local c = setmetatable({
    seed = seed, opts = opts, storages = {}, apps = {},
    leader_of_term = {},   -- term -> id
    committed = {},        -- index -> { term =, data = } committed anywhere
    registry = {},         -- index -> term -> { data =, conf =, prev = } seen in any log
    checked = {},          -- id -> index -> entry table already verified
    proposed = {},         -- list of { id =, index =, data = }
    acked = {},            -- data -> true once the proposing node applied it
    acked_list = {},
    reads = {},            -- id -> ctx -> { min_index = }
    read_results = 0,
    max_committed = 0,
    snapshots_delivered = 0,
    seq = 0,
  }, Cluster)
  c.net = simnet.new({
    seed = seed, drop = opts.drop or 0, delay = opts.delay or { 0, 0 },
    duplicate = opts.duplicate or 0, reorder = opts.reorder or false,
    on_ready = function(id, rd) c:on_ready(id, rd) end,
    on_step = function(id, m)
      if m.type == "snapshot" then c.snapshots_delivered = c.snapshots_delivered + 1 end
      c:check_leader(id)
    end,
    on_deliver = opts.garble and function(from, to, msg, net) c:garble(to, msg) end,
  })
  c.garble_rng = simnet.rng(seed, "garble")
  c.garbled, c.garbled_dropped = 0, 0
  local ids = opts.ids
  if not ids then
    ids = {}
    for i = 1, opts.n or 3 do ids[i] = i end
  end
  c.ids = ids
  for _, id in ipairs(ids) do c:start(id, ids) end
  return c
end

function Cluster:fail(msg)
  error(("tick %d: %s"):format(self.net.now, msg), 0)
end

function Cluster:new_node(id, peers)
  local app = self.apps[id]
  return raft.new({
    id = id, peers = peers, random = self.net:random_for(id),
    election_ticks = self.opts.election_ticks or 10, heartbeat_ticks = 1,
    storage = self.storages[id],
    snapshot_entries = self.opts.snapshot_entries,
    snapshot = function(index)
      if app.index ~= index then
        self:fail(("snapshot at %d but app at %d"):format(index, app.index))
      end
      return encode_list(app.list)
    end,
    -- every other seed, a leader's entries leave before its own fsync (as luact's nodes do):
    -- the properties must hold either way
    send_early = self.seed % 2 == 1 and function(msgs)
      for _, m in ipairs(msgs) do self.net:send(id, m) end
    end or nil,
  })
end

-- a fresh node (peers given: an initial member; peers = {}: a node that will be added)
function Cluster:open_storage(id)
  local dir = self.opts.file_dir
  if not dir then return raft.storage_memory.new() end
  -- fsync off: this checks the format and the restart path, not the disk
  return raft.storage_file(dir .. "/" .. tostring(id), { fsync = false })
end

function Cluster:start(id, peers)
  self.storages[id] = self:open_storage(id)
  self.apps[id] = { list = {}, index = 0 }
  local node = self:new_node(id, peers)
  if self.net.nodes[id] then self.net:restart(id, node) else self.net:add(id, node) end
  return node
end

function Cluster:crash(id) self.net:crash(id) end

-- restart from storage: the application state is volatile and rebuilt from the snapshot and
-- the committed entries that ready() hands out again
function Cluster:restart(id)
  self.apps[id] = { list = {}, index = 0 }
  if self.opts.file_dir then
    -- a new process: nothing but the directory survives
    self.storages[id]:close()
    self.storages[id] = self:open_storage(id)
  end
  self.checked[id] = nil
  self.net:restart(id, self:new_node(id, nil))
end

function Cluster:node(id) return self.net.nodes[id] end

function Cluster:leader()
  local best, best_term
  for _, id in ipairs(self.net.ids) do
    if self.net.alive[id] then
      local role, term = self.net.nodes[id]:leadership()
      if role == "leader" and (not best or term > best_term) then best, best_term = id, term end
    end
  end
  return best, best_term
end

-- the leader with the highest term and its status()
function Cluster:leader_status()
  local id = self:leader()
  return id, id and self.net.nodes[id]:status()
end

function Cluster:on_ready(id, rd)
  local app = self.apps[id]
  if rd.snapshot then
    local s = rd.snapshot
    if s.index < app.index then self:fail(("node %s: snapshot %d behind applied %d"):format(
      tostring(id), s.index, app.index)) end
    app.list, app.index = decode_list(s.data or ""), s.index
  end
  for _, e in ipairs(rd.committed) do
    if e.index ~= app.index + 1 then
      self:fail(("node %s applied %d after %d"):format(tostring(id), e.index, app.index))
    end
    local g = self.committed[e.index]
    if g then
      if g.term ~= e.term or g.data ~= e.data then
        self:fail(("index %d committed as (%d,%s) and (%d,%s)"):format(e.index, g.term,
          tostring(g.data), e.term, tostring(e.data)))
      end
    else
      self.committed[e.index] = { term = e.term, data = e.data }
      if e.index > self.max_committed then self.max_committed = e.index end
    end
    app.index = e.index
    if e.data then
      app.list[#app.list + 1] = e.data
      local p = self.pending_ack and self.pending_ack[e.data]
      if p and p.id == id and p.index == e.index then
        self.acked[e.data] = true
        self.acked_list[#self.acked_list + 1] = e.data
        self.pending_ack[e.data] = nil
      end
    end
  end
  if rd.reads then
    for _, r in ipairs(rd.reads) do
      local want = self.reads[id] and self.reads[id][r.ctx]
      if want and r.index then
        if r.index < want.min_index then
          self:fail(("read %s got index %d, but %d was committed before it began"):format(
            tostring(r.ctx), r.index, want.min_index))
        end
        self.read_results = self.read_results + 1
      end
    end
  end
end

-- sometimes deliver, before the real message, a copy with one field (maybe nested) replaced by
-- a value of another type; the node must ignore it (or, where the field is loosely typed such
-- as `from` or `ctx`, handle it like any valid message) and never raise
local JUNK = { "junk", -1, 1.5, 0 / 0, math.huge, {}, true }
local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return tostring(a) < tostring(b) end)
  return ks
end

function Cluster:garble(to, msg)
  local rng = self.garble_rng
  if rng:random(1, 4) ~= 1 then return end
  local m = simnet.deep_copy(msg)
  local t = m
  -- walk down into a nested table (entries, an entry, a snapshot, a conf) now and then
  for _ = 1, 3 do
    local ks = sorted_keys(t)
    local k = ks[rng:random(1, #ks)]
    if type(t[k]) == "table" and next(t[k]) ~= nil and rng:random(1, 2) == 1 then
      t = t[k]
    else
      break
    end
  end
  local ks = sorted_keys(t)
  if #ks == 0 then return end
  local k = ks[rng:random(1, #ks)]
  if k == "to" then return end -- a copy for someone else is simply foreign
  -- a value of another type: a same-typed one ("junk" for data) could be a valid message
  -- with a different payload, which no receiver can tell from the real thing
  local choices = {}
  for _, j in ipairs(JUNK) do
    if type(j) ~= type(t[k]) then choices[#choices + 1] = j end
  end
  t[k] = choices[rng:random(1, #choices)]
  local node = self.net.nodes[to]
  local before = node:status().dropped_bad
  node:step(m)
  self.garbled = self.garbled + 1
  if node:status().dropped_bad > before then self.garbled_dropped = self.garbled_dropped + 1 end
  self:check_leader(to)
end

function Cluster:check_leader(id)
  local role, term = self.net.nodes[id]:leadership()
  if role == "leader" then
    local other = self.leader_of_term[term]
    if other == nil then
      self.leader_of_term[term] = id
    elseif other ~= id then
      self:fail(("two leaders in term %d: %s and %s"):format(term, tostring(other), tostring(id)))
    end
  end
end

-- log matching, checked inductively: an (index, term) pair seen in any log always carries the
-- same payload and follows the same term at index - 1
function Cluster:check_logs()
  for _, id in ipairs(self.net.ids) do
    local node = self.net.nodes[id]
    local checked = self.checked[id]
    if not checked then checked = {}; self.checked[id] = checked end
    for i = node:first_index(), node:last_index() do
      local e = node:entry(i)
      if checked[i] ~= e then
        local by_term = self.registry[i]
        if not by_term then by_term = {}; self.registry[i] = by_term end
        local prev = node:term_at(i - 1)
        local r = by_term[e.term]
        local ck = conf_key(e.conf)
        if r then
          if r.data ~= e.data or r.conf ~= ck or (prev and r.prev and r.prev ~= prev) then
            self:fail(("logs disagree at index %d term %d"):format(i, e.term))
          end
          if not r.prev then r.prev = prev end
        else
          by_term[e.term] = { data = e.data, conf = ck, prev = prev }
        end
        checked[i] = e
      end
    end
  end
end

function Cluster:tick(n)
  for _ = 1, n or 1 do
    self.net:tick()
    for _, id in ipairs(self.net.ids) do
      if self.net.alive[id] then self:check_leader(id) end
    end
    self:check_logs()
  end
end

function Cluster:propose(id)
  self.seq = self.seq + 1
  local data = ("p%d"):format(self.seq)
  local idx, err = self.net.nodes[id]:propose(data)
  if idx then
    self.pending_ack = self.pending_ack or {}
    self.pending_ack[data] = { id = id, index = idx }
  end
  return idx, err
end

function Cluster:read(id, ctx)
  self.reads[id] = self.reads[id] or {}
  self.reads[id][ctx] = { min_index = self.max_acked_index or 0 }
  return self.net.nodes[id]:read_index(ctx)
end

-- heal everything, restart crashed nodes, and run until every member agrees
function Cluster:converge(max_ticks)
  local net = self.net
  net:heal()
  net:set_drop(0)
  net:set_duplicate(0)
  for _, id in ipairs(net.ids) do
    if not net.alive[id] then self:restart(id) end
  end
  local function settled()
    local lid, ls = self:leader_status()
    if not lid then return false end
    for _, id in ipairs(ls.voters) do
      if not net.alive[id] then return false end
      local s = net.nodes[id]:status()
      if s.commit ~= ls.last_index or s.applied ~= s.commit or s.leader ~= lid or
         s.last_index ~= ls.last_index then
        return false
      end
    end
    return true
  end
  for _ = 1, max_ticks or 300 do
    self:tick()
    if settled() then
      -- one more tick so every node hands out what it has
      self:tick()
      return true
    end
  end
  self:fail("cluster did not converge after healing")
end

-- RAFT_DEBUG=1: print every node's view when a run fails at the end
function Cluster:dump()
  for _, v in ipairs(self.net.ids) do
    local s = self.net.nodes[v]:status()
    print(v, self.net.alive[v], s.role, s.term, "commit", s.commit, "applied", s.applied,
          "last", s.last_index, "app", self.apps[v].index, #self.apps[v].list)
  end
end

-- after converge(): every member applied the same sequence, which holds every acked proposal
function Cluster:check_final()
  local lid, ls = self:leader_status()
  local ref = self.apps[lid].list
  local set = {}
  for _, d in ipairs(ref) do
    if set[d] then self:fail("entry applied twice: " .. d) end
    set[d] = true
  end
  for _, id in ipairs(ls.voters) do
    local l = self.apps[id].list
    if #l ~= #ref then
      if os.getenv("RAFT_DEBUG") then self:dump() end
      self:fail(("node %s applied %d entries, leader %d"):format(tostring(id), #l, #ref))
    end
    for i = 1, #ref do
      if l[i] ~= ref[i] then self:fail(("node %s differs at %d"):format(tostring(id), i)) end
    end
  end
  for _, d in ipairs(self.acked_list) do
    if not set[d] then self:fail("acknowledged proposal lost: " .. d) end
  end
end

---------------------------------------------------------------------------------------------
-- scenarios
---------------------------------------------------------------------------------------------

-- random faults over a 3- or 5-node cluster with proposals all along
local function chaos_run(seed, opts)
  local rng = simnet.rng(seed, "scenario")
  local n = opts.n or (rng:random(1, 2) == 1 and 3 or 5)
  local c = cluster(seed, {
    n = n, drop = opts.drop or (rng:random(0, 10) / 100), delay = { 0, rng:random(0, 2) },
    duplicate = 0.02, reorder = rng:random(1, 2) == 1,
    snapshot_entries = opts.snapshot_entries, garble = opts.garble, file_dir = opts.file_dir,
  })
  local crashed = {}
  local ticks = opts.ticks or 300
  for t = 1, ticks do
    local r = rng:random(1, 100)
    if r <= 2 then
      -- a random partition into two groups (any sets)
      local a, b = {}, {}
      for _, id in ipairs(c.ids) do
        if rng:random(1, 2) == 1 then a[#a + 1] = id else b[#b + 1] = id end
      end
      c.net:heal()
      c.net:partition(a, b)
    elseif r <= 3 then
      -- an asymmetric cut
      local x, y = c.ids[rng:random(1, n)], c.ids[rng:random(1, n)]
      if x ~= y then c.net:cut(x, y) end
    elseif r <= 6 then
      c.net:heal()
    elseif opts.crash and r <= 8 then
      -- crash a minority, restart later from storage
      local id = c.ids[rng:random(1, n)]
      local down = 0
      for _, v in pairs(crashed) do if v then down = down + 1 end end
      if crashed[id] then
        c:restart(id)
        crashed[id] = false
      elseif down < (n - 1) / 2 then
        c:crash(id)
        crashed[id] = true
      end
    end
    if rng:random(1, 3) == 1 then
      local lid = c:leader()
      if lid then
        c:propose(lid)
      else
        -- a proposal to a non-leader is refused
        local id = c.ids[rng:random(1, n)]
        if c.net.alive[id] then
          local ok, err = c.net.nodes[id]:propose("x")
          if ok or err ~= "not_leader" then c:fail("non-leader accepted a proposal") end
        end
      end
    end
    c:tick()
  end
  c:converge(400)
  c:check_final()
  return c
end

describe("luact.cluster.raft (simulated cluster)", function()
  -- Thousands of short simulated runs keep LuaJIT 2.1 recording traces it then aborts (the
  -- `next` loops of message copying are not compiled): the interpreter runs these specs about
  -- three times faster. The JIT is switched back on for whatever runs next.
  setup(function() if jit then jit.off() end end)
  teardown(function() if jit then jit.on() end end)

  it("keeps one leader per term, matching logs and identical applied sequences under loss, " ..
     "delay, duplication, reordering and partitions", function()
    local acked = 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = chaos_run(seed, {})
      acked = acked + #c.acked_list
    end)
    -- the runs did real work: proposals were acknowledged
    assert.is_true(acked > SEEDS * 20)
  end)

  it("loses no acknowledged proposal across crash and restart of a minority, with snapshots",
     function()
    local snaps, installs = 0, 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = chaos_run(seed, { crash = true, snapshot_entries = 20 })
      for _, id in ipairs(c.ids) do
        if c.net.nodes[id]:status().snapshot_index > 0 then snaps = snaps + 1 end
      end
      installs = installs + c.snapshots_delivered
    end, 10001)
    -- logs were compacted, and lagging nodes caught up through InstallSnapshot
    assert.is_true(snaps > SEEDS)
    assert.is_true(installs > SEEDS / 2)
  end)

  it("restarts nodes from the file storage without losing acknowledged proposals", function()
    local restarts = 0
    simnet.for_seeds(SEEDS, function(seed)
      local dir = "spec/tmp/raft_sim_" .. seed
      os.execute("rm -rf " .. dir .. " && mkdir -p " .. dir)
      local c = chaos_run(seed, { crash = true, snapshot_entries = 20, file_dir = dir,
                                  ticks = 150 })
      for _, id in ipairs(c.ids) do c.storages[id]:close() end
      for _, id in ipairs(c.ids) do restarts = restarts + (c.net.gen[id] or 1) - 1 end
      os.execute("rm -rf " .. dir)
    end, 80001)
    assert.is_true(restarts > 0)
  end)

  it("ignores and counts malformed messages mixed into the traffic, and stays safe", function()
    local garbled, dropped = 0, 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = chaos_run(seed, { garble = true, ticks = 200, snapshot_entries = 25 })
      garbled, dropped = garbled + c.garbled, dropped + c.garbled_dropped
      local counted = 0
      for _, id in ipairs(c.ids) do counted = counted + c.net.nodes[id]:status().dropped_bad end
      if counted == 0 then error("no malformed message was counted") end
    end, 70001)
    -- most garbled messages are malformed (a few replace a loosely typed field like `ctx`)
    assert.is_true(dropped > garbled * 0.8)
  end)

  it("elects a new leader within 30 ticks of losing one, with 5 % message loss", function()
    -- liveness is probabilistic (split votes, lost messages): at least 99 % of the seeds must
    -- elect within 30 ticks and every seed within 60 (measured: median 11, p99 19, worst 38
    -- over 5000 seeds)
    local slow = 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, { n = 5, drop = 0.05 })
      c:tick(60)
      local old = c:leader()
      if not old then c:fail("no leader after 60 ticks") end
      c:crash(old)
      local took
      for t = 1, 60 do
        c:tick()
        local lid = c:leader()
        if lid and lid ~= old then took = t; break end
      end
      if not took then c:fail("no new leader 60 ticks after the leader crashed") end
      if took > 30 then slow = slow + 1 end
    end, 20001)
    assert.is_true(slow <= SEEDS / 100,
      ("%d of %d seeds took more than 30 ticks"):format(slow, SEEDS))
  end)

  it("does not let a partitioned follower depose a healthy leader when it rejoins", function()
    simnet.for_seeds(SEEDS, function(seed)
      local rng = simnet.rng(seed, "rejoin")
      local c = cluster(seed, { n = 3 })
      c:tick(50)
      local lid, ls = c:leader_status()
      if not lid then c:fail("no leader") end
      local follower = c.ids[1] == lid and c.ids[2] or c.ids[1]
      local function same_leader(what)
        local lid2, ls2 = c:leader_status()
        if lid2 ~= lid or ls2.term ~= ls.term then
          c:fail(("%s: leader changed from %s/%d to %s/%d"):format(what, tostring(lid), ls.term,
            tostring(lid2), ls2 and ls2.term or -1))
        end
      end
      -- fully cut off for a while (any phase of its election timer), then back
      c.net:isolate(follower)
      c:tick(rng:random(30, 130))
      local fs = c:node(follower):status()
      if fs.term ~= ls.term then c:fail("isolated follower raised its term to " .. fs.term) end
      c.net:heal()
      for _ = 1, 40 do c:tick(); same_leader("after rejoining") end
      if c:node(follower):status().leader ~= lid then c:fail("rejoined follower has no leader") end
      -- it stops hearing the leader but still reaches the other follower
      c.net:cut(lid, follower)
      for _ = 1, 100 do c:tick(); same_leader("with the leader's link cut") end
    end, 30001)
  end)

  it("steps a leader down within two election timeouts once it cannot reach a quorum", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, { n = 5, drop = 0.05 })
      c:tick(50)
      local lid = c:leader()
      if not lid then c:fail("no leader") end
      c.net:partition({ lid, lid % 5 + 1 })    -- the leader keeps one follower: a minority
      c:tick(20)
      local role = c:node(lid):leadership()
      if role == "leader" then c:fail("leader of a minority still leads after 20 ticks") end
      c.net:heal()
      c:converge(300)
      c:check_final()
    end, 35001)
  end)

  it("adds and removes voters one at a time, including the leader, without losing entries",
     function()
    simnet.for_seeds(SEEDS, function(seed)
      local rng = simnet.rng(seed, "members")
      local c = cluster(seed, { ids = { "a", "b", "c" }, drop = 0.03, delay = { 0, 1 },
                                snapshot_entries = rng:random(1, 2) == 1 and 15 or nil })
      local function wait_leader()
        for _ = 1, 200 do
          local lid = c:leader()
          if lid then return lid end
          c:tick()
        end
        c:fail("no leader")
      end
      local function change(ch)
        for _ = 1, 200 do
          local lid = wait_leader()
          local idx, err = c.net.nodes[lid]:propose_conf(ch)
          if idx then
            -- wait until the change is committed by that leader (or leadership moved on)
            for _ = 1, 100 do
              c:propose(lid)
              c:tick()
              local s = c.net.nodes[lid]:status()
              if s.commit >= idx then return true end
              if s.role ~= "leader" then break end
            end
          elseif err == "already_member" or err == "not_member" then
            return true
          else
            c:tick()
          end
        end
        c:fail("configuration change never committed")
      end
      c:tick(30)
      -- a new node joins with no configuration; it learns it from the log
      c:start("d", {})
      c.ids[#c.ids + 1] = "d"
      change({ add = "d" })
      -- remove whoever leads now
      local lid = wait_leader()
      change({ remove = lid })
      for _ = 1, 20 do c:propose(wait_leader()); c:tick() end
      c:converge(400)
      local _, ls = c:leader_status()
      if #ls.voters ~= 3 then c:fail("expected 3 voters, got " .. #ls.voters) end
      for _, v in ipairs(ls.voters) do
        if v == lid then c:fail("removed leader is still a voter") end
      end
      if c:node(lid):status().role ~= "follower" then c:fail("removed leader did not step down") end
      c:check_final()
      if #c.acked_list < 20 then c:fail("too few acknowledged proposals") end
    end, 40001)
  end)

  it("overwrites a long divergent follower log in a few round trips (fast back-off)", function()
    simnet.for_seeds(SEEDS, function(seed)
      -- node 1 holds 100 uncommitted entries of term 2; nodes 2 and 3 hold 10 of term 3,
      -- so one of them leads and must replace node 1's whole suffix
      local rejects = 0
      local net = simnet.new({ seed = seed, on_deliver = function(_, to, m)
        if to == 2 or to == 3 then
          if m.type == "append_resp" and m.reject and m.from == 1 then rejects = rejects + 1 end
        end
      end })
      local conf = { index = 1, term = 1, conf = { voters = { 1, 2, 3 } } }
      for id = 1, 3 do
        local st = raft.storage_memory.new()
        local ents = { conf }
        local n, term = id == 1 and 100 or 10, id == 1 and 2 or 3
        for i = 2, n + 1 do ents[i] = { index = i, term = term, data = id .. ":" .. i } end
        st:append(1, ents)
        st:set_hard_state({ term = 3, commit = 1 })
        net:add(id, raft.new({ id = id, peers = { 1, 2, 3 }, random = net:random_for(id),
                               storage = st }))
      end
      local function synced()
        local a, b = net:node(1), net:node(2)
        return a:status().leader ~= nil and a:last_index() == b:last_index() and
               a:term_at(a:last_index()) == b:term_at(b:last_index())
      end
      if not net:run_until(synced, 100) then net:fail("node 1 never caught up") end
      if net:node(1):last_index() ~= 12 then net:fail("node 1 kept stale entries") end
      if rejects > 3 then
        net:fail(("%d rejected appends to back off 90 entries"):format(rejects))
      end
    end, 55001)
  end)

  it("replays a run exactly from its seed, in this process and in another one", function()
    -- a digest of every delivered message of a faulty 5-node run with string ids
    local code = [[
      local simnet = require "helpers.simnet"
      local raft = require "luact.cluster.raft"
      return function(seed)
        local h = 0
        local net = simnet.new({ seed = seed, drop = 0.1, delay = { 0, 2 }, duplicate = 0.05,
          reorder = true, on_deliver = function(from, to, m)
            local s = from .. to .. m.type .. m.term .. (m.commit or "") .. (m.index or "")
            for i = 1, #s do h = (h * 31 + s:byte(i)) % 2147483647 end
          end })
        local ids = { "a", "b", "c", "d", "e" }
        for _, id in ipairs(ids) do
          net:add(id, raft.new({ id = id, peers = ids, random = net:random_for(id) }))
        end
        for t = 1, 150 do
          for _, id in ipairs(ids) do
            if net:node(id):leadership() == "leader" then net:node(id):propose("x" .. t) end
          end
          if t == 50 then net:partition({ "a", "b" }, { "c", "d", "e" }) end
          if t == 90 then net:heal() end
          net:tick()
        end
        return ("%d/%d"):format(h, net.stats.delivered)
      end
    ]]
    local run = assert(loadstring(code))()
    local function child(seed)
      local f = io.open("spec/tmp/raft_replay.lua", "w")
      f:write('package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path\n')
      f:write("io.write((function() " .. code .. " end)()(" .. seed .. "))\n")
      f:close()
      local p = io.popen("luajit spec/tmp/raft_replay.lua")
      local out = p:read("*a")
      p:close()
      return out
    end
    os.execute("mkdir -p spec/tmp")
    for _, seed in ipairs({ 1, 2, 3 }) do
      local here = run(seed)
      assert.equal(here, run(seed))
      assert.equal(here, child(seed))
    end
    assert.are_not.equal(run(1), run(2))
    os.remove("spec/tmp/raft_replay.lua")
  end)

  it("transfers leadership to the chosen voter", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, { n = 5, drop = 0.01 })
      c:tick(50)
      local lid = c:leader()
      if not lid then c:fail("no leader") end
      for _ = 1, 5 do c:propose(lid); c:tick() end
      local target = lid % 5 + 1
      local ok, err = c:node(lid):transfer_leader(target)
      if not ok then c:fail("transfer refused: " .. tostring(err)) end
      local idx, perr = c:node(lid):propose("during")
      if idx or perr ~= "transferring" then c:fail("proposal accepted during transfer") end
      for _ = 1, 20 do
        c:tick()
        if c:leader() == target then break end
      end
      -- with 1 % loss one attempt may be lost: retry once, as a caller would
      if c:leader() ~= target and c:leader() then
        c:node(c:leader()):transfer_leader(target)
        c:tick(20)
      end
      if c:leader() ~= target then c:fail("leadership did not move to " .. target) end
      c:converge(200)
      c:check_final()
    end, 50001)
  end)

  it("serves ReadIndex reads at an index covering every write acknowledged before them",
     function()
    local served = 0
    simnet.for_seeds(SEEDS, function(seed)
      local rng = simnet.rng(seed, "reads")
      local c = cluster(seed, { n = 3, drop = 0.05, delay = { 0, 1 }, reorder = true })
      local k = 0
      for t = 1, 240 do
        local lid = c:leader()
        if lid and rng:random(1, 2) == 1 then c:propose(lid) end
        -- the highest index applied anywhere so far, known before the read starts
        c.max_acked_index = c.max_committed
        if rng:random(1, 3) == 1 then
          k = k + 1
          local id = c.ids[rng:random(1, 3)]
          c:read(id, "r" .. k)
        end
        if t == 100 then c.net:isolate(c:leader() or 1) end
        if t == 160 then c.net:heal() end
        c:tick()
      end
      served = served + c.read_results
    end, 60001)
    assert.is_true(served > SEEDS * 10)
  end)
end)
