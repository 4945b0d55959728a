-- spec/helpers/raft_cluster.lua: the harness of the Raft simulations (spec/sim/raft_*_spec.lua):
-- a cluster of luact.cluster.raft nodes on the seeded simulated network (helpers.simnet), their
-- applications, and the invariant checks run after every delivered message and every tick
-- (one leader per term, log matching, every committed index applied identically everywhere,
-- no acknowledged proposal lost). `chaos_run` is the random fault schedule over such a cluster.

local simnet = require "helpers.simnet"
local raft = require "luact.cluster.raft"

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
    before_collect = function() c:complete_persists() end,
    on_step = function(id, m)
      if m.type == "snapshot" and m.done then c.snapshots_delivered = c.snapshots_delivered + 1 end
      c:check_leader(id)
    end,
    on_deliver = opts.garble and function(from, to, msg, net) c:garble(to, msg) end,
  })
  c.garble_rng = simnet.rng(seed, "garble")
  -- every other pair of seeds, storage durability comes back later (raft's async_storage, as in
  -- luact's nodes): each persist completes 0-2 ticks after ready() returned it, and a crash
  -- meanwhile loses what it wrote (storage_memory's lose_unsynced)
  if opts.async == nil then c.async = math.floor(seed / 2) % 2 == 1 else c.async = opts.async end
  c.persists, c.disk_rng = {}, simnet.rng(seed, "disk")
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
    async_storage = self.async or nil,
    snapshot_entries = self.opts.snapshot_entries,
    -- snapshots travel in small pieces (a few per snapshot), so that losing, duplicating and
    -- reordering them, crashes and leader changes mid-transfer are part of every run
    snapshot_piece = self.opts.snapshot_piece or 40, snapshot_window = self.opts.snapshot_window or 2,
    log = self.opts.log and function(level, line) self.opts.log(id, level, line) end,
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
function Cluster:new_sid(id)
  if not self.opts.identity then return nil end
  self.sid_seq = (self.sid_seq or 0) + 1
  return ("%s#%d"):format(tostring(id), self.sid_seq)
end

function Cluster:open_storage(id)
  local dir = self.opts.file_dir
  if not dir then
    return raft.storage_memory.new({ sid = self:new_sid(id), lose_unsynced = self.async })
  end
  if self.opts.identity then
    return raft.storage_file(dir .. "/" .. tostring(id), { fsync = false,
      new_sid = function() return self:new_sid(id) end })
  end
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

-- the storage of `id` is lost (a deleted datadir): the node restarts empty, as luact's nodes
-- do: a seed with the initial voter list, a node added later (`spares`) with none
function Cluster:wipe(id)
  if self.net.alive[id] then self.net:crash(id) end
  if self.opts.file_dir then
    self.storages[id]:close()
    os.execute(("rm -rf '%s/%s'"):format(self.opts.file_dir, tostring(id)))
  end
  self.checked[id] = nil
  self.wiped = (self.wiped or 0) + 1
  self:start(id, (self.spares and self.spares[id]) and {} or self.seeds or self.ids)
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

-- (async) the persists whose time has come: made durable, then their messages leave
function Cluster:complete_persists()
  local list, now = self.persists, self.net.now
  if #list == 0 then return end
  local keep = {}
  for _, w in ipairs(list) do
    if self.net.nodes[w.id] ~= w.node then
      -- (the node crashed meanwhile and was started again: the write is lost with it)
    elseif w.due > now or not self.net.alive[w.id] then
      keep[#keep + 1] = w     -- (not yet, or the node is paused or down: it waits)
    else
      self.storages[w.id]:sync()
      for _, m in ipairs(w.node:persisted(w.p)) do self.net:send(w.id, m) end
    end
  end
  self.persists = keep
end

function Cluster:on_ready(id, rd)
  if rd.persist then
    local list = self.persists
    list[#list + 1] = { id = id, node = self.net.nodes[id], p = rd.persist,
                        due = self.net.now + self.disk_rng:random(0, 2) }
  end
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
         s.last_index ~= ls.last_index or s.recovering then
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
    identity = opts.identity,
  })
  local crashed = {}
  local ticks = opts.ticks or 300
  -- membership: two more nodes started with no peers; voters are added and removed at random,
  -- one change at a time, between n and n + 1 voters (an add is asked again every tick while
  -- the new node catches up as a learner)
  local change, spare_ids = nil, {}
  if opts.membership then
    c.seeds, c.spares = c.ids, {}
    local all = {}
    for i, id in ipairs(c.ids) do all[i] = id end
    for k = 1, 2 do
      local id = n + k
      c.spares[id] = true
      spare_ids[#spare_ids + 1] = id
      all[#all + 1] = id
      c:start(id, {})
    end
    c.ids = all
  end
  local function membership_step()
    local lid = c:leader()
    if not lid then return end
    local l = c.net.nodes[lid]
    if change and change.asked + 100 < c.net.now then change = nil end   -- (given up)
    if not change and rng:random(1, 100) <= 3 then
      local voters = l:status().voters
      local is = {}
      for _, v in ipairs(voters) do is[v] = true end
      if #voters <= n then
        local out = {}
        for _, id in ipairs(c.ids) do if not is[id] and c.net.alive[id] then out[#out + 1] = id end end
        if #out > 0 then change = { add = out[rng:random(1, #out)], asked = c.net.now } end
      else
        change = { remove = voters[rng:random(1, #voters)], asked = c.net.now }
      end
    end
    if change then
      local idx, err = l:propose_conf({ add = change.add, remove = change.remove })
      if idx then
        c.changes = (c.changes or 0) + 1
        change = nil
      elseif err ~= "catching_up" and err ~= "not_ready" and err ~= "conf_pending" and
             err ~= "transferring" then
        change = nil
      end
    end
  end
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
    if opts.pause and rng:random(1, 100) <= opts.pause then
      -- pause a node (SIGSTOP: it keeps its volatile state) or resume a paused one
      local id = c.ids[rng:random(1, n)]
      local down = 0
      for _, v in pairs(crashed) do if v then down = down + 1 end end
      if crashed[id] == "paused" then
        c.net:restart(id)
        crashed[id] = false
      elseif not crashed[id] and down < (n - 1) / 2 then
        c.net:crash(id)
        crashed[id] = "paused"
      end
    end
    if opts.membership then membership_step() end
    if opts.wipe and rng:random(1, 1000) <= opts.wipe then
      -- lose one live voter's storage, unless one is still recovering from an earlier loss
      local id = c.ids[rng:random(1, #c.ids)]
      -- (one storage lost at a time: losing a majority of them needs an operator)
      local busy = not c.net.alive[id] or not c.net.nodes[id]:status().cid
      for _, v in ipairs(c.ids) do
        -- a wiped node is "lost" until it is a member again (a crashed one keeps its state)
        local s = c.net.nodes[v]:status()
        -- (a new storage may yet recover; a spare never added has no cluster id: not busy)
        if (s.recovering or not s.cid) and not (c.spares and c.spares[v] and not s.cid and
           not (c.lost and c.lost[v])) then busy = true end
        if c.lost and c.lost[v] then
          if s.cid and not s.recovering then c.lost[v] = nil else busy = true end
        end
        -- (async storage: a recovery that ended counts once its identity is durable; a crash
        -- before that brings the node back recovering)
        local nd = c.net.nodes[v]
        if nd.id_dirty or (nd.persisting and nd.persisting.identity) then busy = true end
      end
      if not busy then
        c.lost = c.lost or {}
        c.lost[id] = true
        c:wipe(id)
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

return { cluster = cluster, chaos_run = chaos_run, Cluster = Cluster }
