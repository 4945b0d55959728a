-- luact.cluster.raft: the Raft consensus state machine (one node). Owns roles and terms,
-- elections with pre-vote, replication and commitment, membership change (one voter at a
-- time), leader transfer, ReadIndex reads and snapshot bookkeeping. It never reads a clock, a
-- socket or math.random: time passes through tick(), randomness through opts.random, and the
-- caller moves messages. Structure follows etcd raft: each role swaps its step/tick functions.
-- See README.md in this directory for the API and the guarantees.

local Log = require "luact.cluster.raft.log"
local Progress = require "luact.cluster.raft.progress"
local message = require "luact.cluster.raft.message"
local storage_memory = require "luact.cluster.raft.storage_memory"
local identity = require "luact.cluster.raft.identity"
local pieces = require "luact.cluster.raft.pieces"
local membership = require "luact.cluster.raft.membership"
local persist = require "luact.cluster.raft.persist"

local min, max, floor = math.min, math.max, math.floor
local valid_msg, is_id, valid_conf = message.valid, message.is_id, message.valid_conf

local raft = {}

local Node = {}
Node.__index = Node

local step_follower, step_candidate, step_leader
local tick_election, tick_heartbeat

---------------------------------------------------------------------------------------------
-- configuration
---------------------------------------------------------------------------------------------

local function copy_list(t)
  local out = {}
  for i = 1, #t do out[i] = t[i] end
  return out
end

-- configuration in force at the end of the log (the latest conf entry, appended or not)
function Node:recompute_conf()
  local log = self.log
  local voters, at = nil, 0
  for i = log:last_index(), log.offset + 1, -1 do
    local e = log:entry(i)
    if e.conf then voters, at = e.conf.voters, i; break end
  end
  if not voters then
    voters = self.snap and self.snap.conf.voters or {}
    at = self.snap and self.snap.index or 0
  end
  self:set_voters(voters)
  self.conf_index = at
end

-- configuration as of index i (i >= snapshot index)
function Node:conf_at(i)
  local log = self.log
  for j = min(i, log:last_index()), log.offset + 1, -1 do
    local e = log:entry(j)
    if e.conf then return e.conf end
  end
  return self.snap and self.snap.conf or { voters = {} }
end

function Node:set_voters(voters)
  local set = {}
  for i = 1, #voters do set[voters[i]] = true end
  self.voters, self.is_voter = copy_list(voters), set
  local prs = nil
  if self.role == "leader" then
    prs = {}
    for i = 1, #voters do
      local id = voters[i]
      prs[id] = self.prs[id] or Progress.new(self.log:last_index() + 1)
    end
  end
  membership.on_voters(self, prs)    -- (learners keep their progress)
  if prs then self.prs = prs end
  membership.refresh_targets(self)
end

function Node:quorum() return floor(#self.voters / 2) + 1 end

---------------------------------------------------------------------------------------------
-- construction
---------------------------------------------------------------------------------------------

-- Raises (at raft.new's caller) unless the options are usable; returns the election and
-- heartbeat ticks and the snapshot piece and window, with their defaults.
local function check_options(opts)
  if type(opts) ~= "table" then error("bad 'opts' argument (table expected)", 3) end
  if not is_id(opts.id) then error("bad 'id' option (number or string expected)", 3) end
  if type(opts.random) ~= "function" then error("bad 'random' option (function expected)", 3) end
  local peers = opts.peers or {}
  if type(peers) ~= "table" then error("bad 'peers' option (list expected)", 3) end
  for i = 1, #peers do
    if not is_id(peers[i]) then error("bad 'peers' option (ids expected)", 3) end
  end
  local election_ticks = opts.election_ticks or 10
  local heartbeat_ticks = opts.heartbeat_ticks or 1
  if election_ticks <= heartbeat_ticks then
    error("bad 'election_ticks' option (must exceed heartbeat_ticks)", 3)
  end
  if opts.snapshot_entries ~= nil and type(opts.snapshot) ~= "function" then
    error("bad 'snapshot' option (function expected with snapshot_entries)", 3)
  end
  if opts.send_early ~= nil and type(opts.send_early) ~= "function" then
    error("bad 'send_early' option (function expected)", 3)
  end
  if opts.async_storage ~= nil and type(opts.async_storage) ~= "boolean" then
    error("bad 'async_storage' option (boolean expected)", 3)
  end
  if opts.log ~= nil and type(opts.log) ~= "function" then
    error("bad 'log' option (function expected)", 3)
  end
  if opts.max_append_bytes ~= nil and not (message.is_int(opts.max_append_bytes) and opts.max_append_bytes > 0) then
    error("bad 'max_append_bytes' option (a positive integer expected)", 3)
  end
  local piece, window = opts.snapshot_piece or 1024 * 1024, opts.snapshot_window or 4
  if not (message.is_int(piece) and piece > 0) then
    error("bad 'snapshot_piece' option (a positive integer expected)", 3)
  end
  if not (message.is_int(window) and window > 0) then
    error("bad 'snapshot_window' option (a positive integer expected)", 3)
  end
  return election_ticks, heartbeat_ticks, piece, window
end

function raft.new(opts)
  local election_ticks, heartbeat_ticks, piece, window = check_options(opts)
  local peers = opts.peers or {}

  local storage = opts.storage or storage_memory.new()
  local n = setmetatable({
    id = opts.id,
    random = opts.random,
    storage = storage,
    election_ticks = election_ticks,
    heartbeat_ticks = heartbeat_ticks,
    max_append = opts.max_append_entries or 64,
    max_append_bytes = opts.max_append_bytes,
    snapshot_entries = opts.snapshot_entries,
    snapshot_fn = opts.snapshot,
    snapshot_piece = piece, snapshot_window = window,
    snap_in = nil,                -- a snapshot being received in pieces (pieces.receiver + whose)
    send_early = opts.send_early,
    term = 0, vote = nil, lead = nil, role = "follower",
    commit = 0, applied = 0, handed = 0, stable = 0,
    msgs = {}, reads = {},
    prs = {}, votes = {},
    election_elapsed = 0, heartbeat_elapsed = 0, randomized_timeout = election_ticks,
    pending_conf_index = 0, conf_index = 0,
    lead_transferee = nil, transfer_elapsed = 0,
    read_seq = 0, pending_reads = {},
    unstable_from = nil, hs_dirty = false, snap_dirty = false, pending_bcast = false,
    restore_snapshot = nil,
    dropped_bad = 0,
    ticks = 0, prevote_grant = nil,
    async = opts.async_storage == true,   -- durability comes back through persisted() (persist.lua)
    persisting = nil,             -- (async) the persist out: { last, last_term, term, messages }
  }, Node)
  membership.init(n)

  local st = storage:load()
  local hs, snap, ents = st.hard_state, st.snapshot, st.entries
  n.snap = snap
  n.log = Log.new(snap and snap.index or 0, snap and snap.term or 0)
  for i = 1, #ents do n.log:append(ents[i]) end
  n.term, n.vote = hs.term or 0, hs.vote
  n.stable = n.log:last_index()
  -- (async) the term and vote on disk, and the term of which messages may leave before a persist
  n.written_term, n.written_vote, n.durable_term = n.term, n.vote, n.term

  if n.term == 0 and not snap and #ents == 0 and #peers > 0 then
    -- bootstrap: every initial member writes the same first entry (index 1, term 1)
    n.log:append({ index = 1, term = 1, conf = { voters = copy_list(peers) } })
    n.term, n.unstable_from, n.hs_dirty = 1, 1, true
    hs = { term = 1, commit = 1 }
  end
  n.commit = min(max(hs.commit or 0, n.log.offset), n.log:last_index())
  local applied = opts.applied
  if applied then
    if not (message.is_int(applied) and applied <= n.commit) then
      error("bad 'applied' option (an index at most the stored commit)", 2)
    end
    n.applied = max(applied, n.log.offset)
  else
    n.applied = n.log.offset
    if snap then n.restore_snapshot = snap end
  end
  n.handed = n.applied
  n:recompute_conf()
  identity.init(n, st.identity, opts.log)
  n:become_follower(n.term, nil)
  return n
end

---------------------------------------------------------------------------------------------
-- role changes
---------------------------------------------------------------------------------------------

function Node:reset_randomized_timeout()
  local e = self.election_ticks
  self.randomized_timeout = self.random(e, 2 * e - 1)
end

function Node:reset(term)
  if term ~= self.term then
    self.term, self.vote, self.hs_dirty = term, nil, true
    self.snap_in = nil          -- pieces of an older term's leader: a new leader starts over
  end
  self.lead = nil
  self.election_elapsed, self.heartbeat_elapsed = 0, 0
  self:reset_randomized_timeout()
  self.lead_transferee = nil
  self.votes = {}
  self.pending_reads = {}
end

function Node:become_follower(term, lead)
  self.step_fn, self.tick_fn = step_follower, tick_election
  self:reset(term)
  self.lead = lead
  self.role = "follower"
end

function Node:become_pre_candidate()
  self.step_fn, self.tick_fn = step_candidate, tick_election
  self.votes = {}
  self.lead = nil
  self.role = "pre_candidate"
end

function Node:become_candidate()
  self.step_fn, self.tick_fn = step_candidate, tick_election
  self:reset(self.term + 1)
  self.vote, self.hs_dirty = self.id, true
  self.role = "candidate"
  identity.on_become_candidate(self)
end

function Node:become_leader()
  self.step_fn, self.tick_fn = step_leader, tick_heartbeat
  self:reset(self.term)
  self.lead = self.id
  self.role = "leader"
  identity.on_become_leader(self)
  membership.reset(self)
  self.prs = {}
  self:set_voters(self.voters)
  local last = self.log:last_index()
  for _, id in ipairs(self.voters) do
    local pr = self.prs[id]
    pr.next, pr.match = last + 1, 0
    pr.recent_active = true
  end
  -- no configuration change until everything up to here is committed
  self.pending_conf_index = last
  self:append_entry({ index = last + 1, term = self.term })
end

function Node:promotable()
  return membership.may_campaign(self) and identity.promotable(self)
end

-- kind: "pre" (pre-vote), "elect" (real election), "transfer" (forced by TimeoutNow)
function Node:campaign(kind)
  local pre = kind == "pre"
  local vote_term
  if pre then
    self:become_pre_candidate()
    vote_term = self.term + 1
    self.prevote_grant = { term = vote_term, id = self.id, tick = self.ticks }
  else
    self:become_candidate()
    vote_term = self.term
  end
  if self:poll(self.id, true) == "won" then
    if pre then return self:campaign("elect") end
    self:become_leader()
    return
  end
  self.campaign_force = (kind == "transfer") or nil
  self:request_votes()
end

-- (re)send the (pre-)vote request to every voter that has not answered yet. Candidates resend
-- every heartbeat interval (Raft §5.1: RPCs are retried), so one lost request or answer does
-- not cost a whole election timeout; a voter answers a repeated request the same way.
function Node:request_votes()
  local pre = self.role == "pre_candidate"
  local vote_term = pre and self.term + 1 or self.term
  local li, lt = self.log:last_index(), self.log:last_term()
  for _, id in ipairs(self.voters) do
    if id ~= self.id and self.votes[id] == nil then
      self:send({ to = id, type = pre and "prevote" or "vote", term = vote_term,
                  last_index = li, last_term = lt, force = self.campaign_force,
                  form = identity.form_for(self, vote_term) })
    end
  end
end

function Node:poll(id, granted)
  if self.votes[id] == nil then self.votes[id] = granted end
  local yes, no = 0, 0
  for _, v in ipairs(self.voters) do
    local g = self.votes[v]
    if g == true then yes = yes + 1 elseif g == false then no = no + 1 end
  end
  local q = self:quorum()
  if yes >= q then return "won" end
  if no > #self.voters - q then return "lost" end
  return "pending"
end

---------------------------------------------------------------------------------------------
-- log helpers
---------------------------------------------------------------------------------------------

function Node:send(m)
  m.from = self.id
  if m.term == nil then m.term = self.term end
  identity.stamp(self, m)
  self.msgs[#self.msgs + 1] = m
end

function Node:mark_unstable(i)
  if self.unstable_from == nil or i < self.unstable_from then self.unstable_from = i end
  if self.stable >= i then self.stable = i - 1 end
end

function Node:append_entry(e)
  self.log:append(e)
  self:mark_unstable(e.index)
  if e.conf then self:recompute_conf() end
  self.pending_bcast = true
end

function Node:commit_to(c)
  if c > self.commit then
    if c > self.log:last_index() then
      error(("raft: commit %d beyond last index %d"):format(c, self.log:last_index()))
    end
    self.commit, self.hs_dirty = c, true
  end
end

---------------------------------------------------------------------------------------------
-- replication (leader side)
---------------------------------------------------------------------------------------------

-- InstallSnapshot in pieces: the leader's latest snapshot, pinned for this peer until it has
-- it (a newer snapshot taken meanwhile is sent next time, if the log no longer holds what the
-- peer then needs). At most snapshot_window pieces of snapshot_piece bytes are unacknowledged.
function Node:send_snapshot(id, pr)
  local snap = self.snap
  if not snap then return end
  pr:become_snapshot(snap.index)
  pr.out = pieces.sender(snap.data or "", self.snapshot_piece, self.snapshot_window)
  pr.out_meta = { index = snap.index, term = snap.term, conf = snap.conf }
  self:send_pieces(id, pr)
end

function Node:send_pieces(id, pr)
  local out, meta = pr.out, pr.out_meta
  for _, p in ipairs(out:take()) do
    self:send({ to = id, type = "snapshot", snapshot = meta, offset = p[1], size = out.size,
                data = p[2], done = p[3] })
  end
end

function Node:send_append(id, allow_empty)
  local pr = self.prs[id]
  if not pr or pr.state == "snapshot" or (pr.state == "probe" and pr.paused) then return end
  local log = self.log
  local prev = pr.next - 1
  local prev_term = log:term(prev)
  if prev_term == nil then return self:send_snapshot(id, pr) end
  local last = log:last_index()
  local hi = min(last, pr.next + self.max_append - 1)
  local entries = log:slice(pr.next, hi)
  local cap = self.max_append_bytes
  if cap then
    -- at most `cap` bytes of data per append (at least one entry)
    local bytes = 0
    for k = 1, #entries do
      bytes = bytes + #(entries[k].data or "")
      if bytes > cap and k > 1 then
        for j = #entries, k, -1 do entries[j] = nil end
        hi = pr.next + k - 2
        break
      end
    end
  end
  if #entries == 0 and not allow_empty then return end
  self:send({ to = id, type = "append", prev_index = prev, prev_term = prev_term,
              entries = entries, commit = self.commit, ok = identity.ok_for(self, pr) })
  if pr.state == "replicate" then
    if #entries > 0 then pr.next = hi + 1 end
  else
    pr.paused = true
  end
end

-- (to the voters and the learners: membership.lua)
function Node:bcast_append(allow_empty)
  local targets = self.targets
  for i = 1, #targets do self:send_append(targets[i], allow_empty) end
end

function Node:bcast_heartbeat()
  local ctx = #self.pending_reads > 0 and self.read_seq or nil
  local targets = self.targets
  for i = 1, #targets do
    local id = targets[i]
    local pr = self.prs[id]
    self:send({ to = id, type = "heartbeat", commit = min(pr.match, self.commit), ctx = ctx,
                ok = identity.ok_for(self, pr), to_sid = pr.sid })
  end
end

local function descending(a, b) return a > b end

-- advance commit to the highest current-term index stored on a quorum of voters
function Node:maybe_commit()
  local matches = {}
  for _, id in ipairs(self.voters) do
    if id == self.id then matches[#matches + 1] = self.stable
    else
      -- a recovering peer's log does not count (raft/identity.lua)
      local pr = self.prs[id]
      matches[#matches + 1] = identity.counts(pr) and pr.match or 0
    end
  end
  if #matches == 0 then return false end
  table.sort(matches, descending)
  local idx = matches[self:quorum()]
  if idx > self.commit and self.log:term(idx) == self.term then
    self:commit_to(idx)
    -- a leader that removed itself steps down once its removal is committed
    if not self.is_voter[self.id] and self.commit >= self.conf_index then
      self:become_follower(self.term, nil)
    end
    return true
  end
  return false
end

---------------------------------------------------------------------------------------------
-- step
---------------------------------------------------------------------------------------------

function Node:step(m)
  if not valid_msg(m, self.id) then
    self.dropped_bad = self.dropped_bad + 1
    return false
  end
  if identity.on_message(self, m) and self.role ~= "follower" then
    -- it has just learned that its storage is new to an existing cluster: stop campaigning
    self:become_follower(self.term, nil)
  end
  local t = m.type
  if m.term > self.term then
    if t == "vote" or t == "prevote" then
      -- the leader lease: a node that heard from a leader within the election timeout
      -- ignores (pre)votes, so a rejoining node cannot depose a healthy leader
      if not m.force and self.lead ~= nil and self.election_elapsed < self.election_ticks then
        return true
      end
    end
    if t == "prevote" or (t == "prevote_resp" and not m.reject) then
      -- no term change: a pre-vote never disturbs anyone
    elseif t == "append" or t == "heartbeat" or t == "snapshot" then
      self:become_follower(m.term, m.from)
    else
      self:become_follower(m.term, nil)
    end
  elseif m.term < self.term then
    if t == "append" or t == "heartbeat" then
      -- tell a stale leader about the newer term
      self:send({ to = m.from, type = "append_resp", reject = false, index = 0 })
    elseif t == "prevote" then
      self:send({ to = m.from, type = "prevote_resp", reject = true })
    end
    return true
  end

  if t == "vote" or t == "prevote" then
    local can_vote = self.vote == m.from or (self.vote == nil and self.lead == nil) or
                     (t == "prevote" and m.term > self.term and self:prevote_free(m))
    local resp = t == "vote" and "vote_resp" or "prevote_resp"
    if can_vote and identity.may_vote(self, m) and
       self.log:is_up_to_date(m.last_index, m.last_term) then
      self:send({ to = m.from, type = resp, term = m.term, reject = false })
      if t == "prevote" then
        self.prevote_grant = { term = m.term, id = m.from, tick = self.ticks }
      end
      if t == "vote" then
        self.election_elapsed = 0
        self.vote, self.hs_dirty = m.from, true
        identity.on_grant(self, m)
      end
    else
      self:send({ to = m.from, type = resp, reject = true })
    end
    return true
  end
  self.step_fn(self, m)
  return true
end

-- follower side of append
function Node:handle_append(m)
  local log = self.log
  if m.prev_index < self.commit then
    self:send({ to = m.from, type = "append_resp", reject = false, index = self.commit })
    return
  end
  local lt = log:term(m.prev_index)
  if lt ~= nil and lt == m.prev_term then
    local ents = m.entries
    local last_new = m.prev_index + #ents
    for k = 1, #ents do
      local e = ents[k]
      local et = log:term(e.index)
      if et ~= e.term then
        local conf_touched = false
        if et ~= nil then
          if e.index <= self.commit then
            error(("raft: entry %d conflicts with committed log"):format(e.index))
          end
          for i = e.index, log:last_index() do
            if log:entry(i).conf then conf_touched = true; break end
          end
          log:truncate_after(e.index - 1)
        end
        for j = k, #ents do
          local x = ents[j]
          log:append(x)
          if x.conf then conf_touched = true end
        end
        self:mark_unstable(e.index)
        if conf_touched then self:recompute_conf() end
        break
      end
    end
    self:commit_to(min(m.commit, last_new))
    self:send({ to = m.from, type = "append_resp", reject = false, index = last_new })
  else
    local hint = log:find_conflict_by_term(min(m.prev_index, log:last_index()), m.prev_term)
    self:send({ to = m.from, type = "append_resp", reject = true, index = m.prev_index,
                hint_index = hint, hint_term = log:term(hint) })
  end
end

-- a piece of a snapshot: kept in order until the snapshot is whole, then installed. Pieces of
-- another transfer (another leader or term, another snapshot) replace the one in progress
-- only from their first byte; otherwise the sender hears how much is held (0) and starts over.
function Node:handle_snapshot(m)
  local s = m.snapshot
  if s.index <= self.commit then
    self.snap_in = nil
    self:send({ to = m.from, type = "append_resp", reject = false, index = self.commit })
    return
  end
  if self.log:term(s.index) == s.term then
    -- we already have it: just learn that it is committed
    self.snap_in = nil
    self:commit_to(s.index)
    self:send({ to = m.from, type = "append_resp", reject = false, index = s.index })
    return
  end
  local rx = self.snap_in
  if rx and (rx.from ~= m.from or rx.term ~= m.term or rx.index ~= s.index or rx.sterm ~= s.term or
             rx.size ~= m.size) then
    rx = nil
  end
  if not rx then
    if m.offset ~= 0 then
      self:send({ to = m.from, type = "snapshot_resp", index = s.index, next = 0 })
      return
    end
    rx = pieces.receiver(m.size)
    rx.from, rx.term, rx.index, rx.sterm = m.from, m.term, s.index, s.term
    self.snap_in = rx
  end
  local held = rx:put(m.offset, m.data)
  if not rx:complete() then
    self:send({ to = m.from, type = "snapshot_resp", index = s.index, next = held })
    return
  end
  self.snap_in = nil
  s = { index = s.index, term = s.term, conf = s.conf, data = rx:take() }
  self.log:restore(s.index, s.term)
  self.snap, self.snap_dirty, self.snap_reset = s, true, true
  self.commit, self.hs_dirty = s.index, true
  self.stable = min(self.stable, s.index)
  self.unstable_from = nil
  self.restore_snapshot = s
  self.handed = s.index
  self:recompute_conf()
  self:send({ to = m.from, type = "append_resp", reject = false, index = s.index })
end

step_follower = function(self, m)
  local t = m.type
  if t == "append" then
    self.election_elapsed, self.lead = 0, m.from
    self:handle_append(m)
    identity.maybe_caught_up(self, m)
  elseif t == "heartbeat" then
    self.election_elapsed, self.lead = 0, m.from
    -- the commit in a heartbeat is what the leader knows this log to match; not if the leader
    -- knows another storage under this id (a wiped node: that match was the old storage's)
    if identity.heartbeat_is_ours(self, m) then
      self:commit_to(min(m.commit, self.log:last_index()))
    end
    identity.maybe_caught_up(self, m)
    self:send({ to = m.from, type = "heartbeat_resp", ctx = m.ctx })
  elseif t == "snapshot" then
    self.election_elapsed, self.lead = 0, m.from
    self:handle_snapshot(m)
  elseif t == "timeout_now" then
    if m.from == self.lead and self:promotable() then self:campaign("transfer") end
  elseif t == "read_index_resp" then
    self.reads[#self.reads + 1] = { ctx = m.ctx, index = m.index, err = m.err }
  elseif t == "read_index" then
    if self.lead ~= nil then
      -- forwarded to us by mistake: tell the asker who leads
      self:send({ to = m.from, type = "read_index_resp", ctx = m.ctx, err = "not_leader" })
    end
  end
end

step_candidate = function(self, m)
  local t = m.type
  if t == "append" or t == "heartbeat" or t == "snapshot" then
    self:become_follower(self.term, m.from)
    return step_follower(self, m)
  end
  local want = self.role == "pre_candidate" and "prevote_resp" or "vote_resp"
  if t == want then
    local r = self:poll(m.from, not m.reject)
    if r == "won" then
      if self.role == "pre_candidate" then
        self:campaign("elect")
      else
        self:become_leader()
        self:bcast_append(true)
      end
    elseif r == "lost" then
      self:become_follower(self.term, nil)
    end
  elseif t == "read_index" then
    self:send({ to = m.from, type = "read_index_resp", ctx = m.ctx, err = "no_leader" })
  end
end

function Node:handle_append_resp(m, pr)
  local log = self.log
  if m.reject then
    if pr.state == "replicate" then
      if m.index <= pr.match then return end
    elseif pr.state == "probe" then
      if m.index ~= pr.next - 1 then return end
    else
      return
    end
    local probe = m.hint_index
    if m.hint_term then probe = log:find_conflict_by_term(probe, m.hint_term) end
    pr.next = max(min(m.index, probe + 1), pr.match + 1)
    pr.state, pr.paused, pr.pending_snapshot = "probe", false, 0
    self:send_append(m.from, true)
    return
  end
  if m.index > log:last_index() then return end -- not from this leader's log
  if pr:maybe_update(m.index) or (pr.match == m.index and pr.state == "probe") then
    if pr.state == "probe" then
      pr:become_replicate()
    elseif pr.state == "snapshot" and pr.match >= pr.pending_snapshot then
      pr:become_probe()
      pr:become_replicate()
    end
    if self:maybe_commit() then
      if self.role ~= "leader" then return end
      self:bcast_append(true)
    else
      self:send_append(m.from, false)
    end
    if self.lead_transferee == m.from and pr.match == log:last_index() then
      self:send({ to = m.from, type = "timeout_now" })
    end
  end
end

function Node:handle_read_ack(from, seq)
  local reads = self.pending_reads
  for i = 1, #reads do
    local r = reads[i]
    if r.seq <= seq and not r.acks[from] and self.is_voter[from] and
       identity.counts(self.prs[from]) then
      r.acks[from] = true
      r.n = r.n + 1
    end
  end
  local q = self:quorum()
  while #reads > 0 and reads[1].n >= q do
    local r = table.remove(reads, 1)
    self:release_read(r)
  end
end

function Node:release_read(r)
  if r.from == self.id then
    self.reads[#self.reads + 1] = { ctx = r.ctx, index = r.index }
  else
    self:send({ to = r.from, type = "read_index_resp", ctx = r.ctx, index = r.index })
  end
end

-- a read request (ours or forwarded): returns nil or an error string. `lazy`: confirmed by the
-- next regular heartbeat round (it leaves after the request, so its acks prove leadership as
-- of now just the same) instead of a round sent at once.
function Node:leader_read(from, ctx, lazy)
  if self.log:term(self.commit) ~= self.term then return "not_ready" end
  local r = { ctx = ctx, index = self.commit, from = from, acks = {}, n = 0 }
  if self.is_voter[self.id] then r.acks[self.id], r.n = true, 1 end
  if r.n >= self:quorum() then
    self:release_read(r)
    return nil
  end
  self.read_seq = self.read_seq + 1
  r.seq = self.read_seq
  self.pending_reads[#self.pending_reads + 1] = r
  if not lazy then self:bcast_heartbeat() end
  return nil
end

step_leader = function(self, m)
  local t = m.type
  if t == "read_index" then
    local err = self:leader_read(m.from, m.ctx)
    if err then self:send({ to = m.from, type = "read_index_resp", ctx = m.ctx, err = err }) end
    return
  end
  local pr = self.prs[m.from]
  if not pr then return end
  if (t == "append_resp" or t == "heartbeat_resp") and not identity.observe(self, m, pr) then
    return -- from a storage this peer no longer has
  end
  if t == "append_resp" then
    pr.recent_active = true
    self:handle_append_resp(m, pr)
  elseif t == "heartbeat_resp" then
    pr.recent_active = true
    pr.paused = false
    if pr.state == "snapshot" and pr.out then
      -- a snapshot on its way: send again from what the peer acknowledged if that did not move
      -- since the last heartbeat (pieces lost)
      if pr.out:stalled() then self:send_pieces(m.from, pr) end
    else
      if pr.state == "snapshot" then pr:become_probe() end
      if pr.match < self.log:last_index() then self:send_append(m.from, true) end
    end
    if m.ctx then self:handle_read_ack(m.from, m.ctx) end
  elseif t == "snapshot_resp" then
    -- how much of the snapshot in flight the peer holds: more pieces, or again from there
    if pr.state == "snapshot" and pr.out and m.index == pr.pending_snapshot then
      pr.out:ack(m.next)
      self:send_pieces(m.from, pr)
    end
  end
end

---------------------------------------------------------------------------------------------
-- tick
---------------------------------------------------------------------------------------------

tick_election = function(self)
  self.election_elapsed = self.election_elapsed + 1
  if self:promotable() and self.election_elapsed >= self.randomized_timeout then
    self.election_elapsed = 0
    -- a new timeout for each try: a pre-vote changes no term, so nothing else redraws it, and
    -- two pre-candidates that drew the same timeout would campaign in step forever, each
    -- refusing the other (found with 4 voters, one of them recovering: all 3 others needed)
    self:reset_randomized_timeout()
    self:campaign("pre")
  elseif self.role ~= "follower" and self.election_elapsed % self.heartbeat_ticks == 0 then
    self:request_votes()
  end
end

tick_heartbeat = function(self)
  self.heartbeat_elapsed = self.heartbeat_elapsed + 1
  self.election_elapsed = self.election_elapsed + 1
  if self.election_elapsed >= self.election_ticks then
    self.election_elapsed = 0
    -- check quorum: step down if a quorum has not been heard from for an election timeout
    local active = 0
    for _, id in ipairs(self.voters) do
      local pr = self.prs[id]
      if id == self.id or (pr.recent_active and identity.counts(pr)) then active = active + 1 end
      if id ~= self.id then self.prs[id].recent_active = false end
    end
    if self.is_voter[self.id] and active < self:quorum() then
      self:become_follower(self.term, nil)
      return
    end
    self.lead_transferee = nil
  end
  membership.tick(self)
  if self.heartbeat_elapsed >= self.heartbeat_ticks then
    self.heartbeat_elapsed = 0
    self:bcast_heartbeat()
  end
end

function Node:tick()
  self.ticks = self.ticks + 1
  self.tick_fn(self)
end

-- Pre-votes record nothing durable, so two nodes whose timers fire in the same tick both pass
-- pre-vote and then split the real vote. To break such ties, a node grants pre-votes for one
-- term to one candidate at a time for PREVOTE_HOLD ticks (a pre-candidate counts as having
-- granted its own). This is advisory only: it cannot affect safety, and it expires long
-- before any other node's election timer could fire.
local PREVOTE_HOLD = 2
function Node:prevote_free(m)
  local g = self.prevote_grant
  if g and g.term == m.term and g.id ~= m.from and self.ticks - g.tick < PREVOTE_HOLD then
    return false
  end
  return true
end

---------------------------------------------------------------------------------------------
-- the caller's side
---------------------------------------------------------------------------------------------

-- append data (a string) to the replicated log. Returns its index, or nil and "not_leader" /
-- "transferring".
function Node:propose(data)
  if type(data) ~= "string" then error("bad 'data' argument (string expected)", 2) end
  if self.role ~= "leader" then return nil, "not_leader" end
  if self.lead_transferee ~= nil then return nil, "transferring" end
  local idx = self.log:last_index() + 1
  self:append_entry({ index = idx, term = self.term, data = data })
  return idx
end

-- change = { add = id } or { remove = id }: one voter at a time (membership.lua). Returns the
-- entry's index, or nil and "not_leader" / "transferring" / "conf_pending" / "not_ready" /
-- "already_member" / "not_member" / "last_voter" / "catching_up" (an added node first copies the
-- log as a learner: ask again, every tick or so, until the change is proposed).
function Node:propose_conf(change)
  return membership.propose_conf(self, change)
end

-- hand leadership to voter `to`: it is brought up to date, then told to campaign at once.
-- Proposals are refused meanwhile; the attempt is abandoned after an election timeout. Returns
-- true, or nil and "not_leader" / "not_member" / "recovering" (`to` may not campaign yet).
function Node:transfer_leader(to)
  if self.role ~= "leader" then return nil, "not_leader" end
  if to == self.id then return true end
  if not self.is_voter[to] then return nil, "not_member" end
  if not identity.counts(self.prs[to]) then return nil, "recovering" end
  self.lead_transferee = to
  self.election_elapsed = 0
  local pr = self.prs[to]
  if pr.match == self.log:last_index() then
    self:send({ to = to, type = "timeout_now" })
  else
    self:send_append(to, true)
  end
  return true
end

-- a linearizable read (ReadIndex). ctx is any plain value identifying the request; later a
-- ready() carries reads = { { ctx =, index = } }: serve the read once applied >= index.
-- Returns true, or nil and "no_leader" / "not_ready". `lazy` (on the leader): no heartbeat round
-- is sent for it; the next one, at most heartbeat_ticks away, confirms it (many reads, one round).
function Node:read_index(ctx, lazy)
  if ctx == nil then error("bad 'ctx' argument (plain value expected)", 2) end
  if self.role == "leader" then
    local err = self:leader_read(self.id, ctx, lazy)
    if err then return nil, err end
    return true
  end
  if self.lead == nil then return nil, "no_leader" end
  self:send({ to = self.lead, type = "read_index", ctx = ctx })
  return true
end

-- take a snapshot at applied index `index` (default: applied) with the application's data;
-- log entries up to it are discarded.
function Node:compact(data, index)
  index = index or self.applied
  if type(data) ~= "string" then error("bad 'data' argument (string expected)", 2) end
  if index > self.applied or index > self.stable then
    error("bad 'index' argument (must be applied and stable)", 2)
  end
  if index <= self.log.offset then return false end
  local snap = { index = index, term = self.log:term(index), conf = self:conf_at(index),
                 data = data }
  if self.async then
    persist.compact(self, snap)
    return true
  end
  self.storage:save_snapshot(snap)
  self.storage:sync()
  self.snap = snap
  self.log:compact(index)
  return true
end

function Node:has_ready()
  if self.async then return persist.has_ready(self) end
  return #self.msgs > 0 or #self.reads > 0 or self.unstable_from ~= nil or self.hs_dirty or
         self.id_dirty or
         self.snap_dirty or self.pending_bcast or self.handed < self.commit or
         self.restore_snapshot ~= nil
end

-- persist what must be durable (fsync) and return what the caller must do, or nil:
-- { messages =, committed =, snapshot = nil|{index,term,conf,data}, reads =, status = }
-- With async_storage, nothing is fsynced here: rd.persist (when set) is what the caller makes
-- durable before calling persisted(rd.persist) (persist.lua).
local function ready_sync(self)
  if not self:has_ready() then return nil end
  local storage, log = self.storage, self.log
  local wrote = false
  if self.snap_dirty then
    storage:save_snapshot(self.snap, self.snap_reset)
    self.snap_dirty, self.snap_reset, wrote = false, false, true
  end
  local from = self.unstable_from
  if from then
    storage:append(from, log:slice(from, log:last_index()))
    self.unstable_from, wrote = nil, true
  end
  if self.hs_dirty then
    storage:set_hard_state({ term = self.term, vote = self.vote, commit = self.commit })
    self.hs_dirty, wrote = false, true
  end
  if self.id_dirty then
    -- a founding vote, a cluster id learned, recovering begun or ended: durable before any
    -- message that depends on it leaves
    storage:set_identity(identity.identity(self))
    self.id_dirty, wrote = false, true
  end
  if wrote and self.send_early and self.role == "leader" then
    -- a leader's messages do not depend on its own disk (it counts its own log toward a quorum
    -- only once durable, below): with send_early, its new entries leave before its fsync, so
    -- followers write them meanwhile (Raft thesis 10.2.1)
    if self.pending_bcast then
      self:bcast_append(false)
      self.pending_bcast = false
    end
    if #self.msgs > 0 then
      local early = self.msgs
      self.msgs = {}
      self.send_early(early)
    end
  end
  if wrote then storage:sync() end
  local grew = log:last_index() > self.stable
  self.stable = log:last_index()

  if self.role == "leader" then
    -- the leader's own log counts once durable: that may complete a quorum
    local committed = grew and self:maybe_commit()
    if self.role == "leader" and (committed or self.pending_bcast) then
      self:bcast_append(committed)
    end
    if self.role == "leader" and self.lead_transferee then
      local pr = self.prs[self.lead_transferee]
      if pr and pr.match == log:last_index() and committed then
        self:send({ to = self.lead_transferee, type = "timeout_now" })
      end
    end
  end
  self.pending_bcast = false
  if self.hs_dirty then
    -- commit moved while we were sending: persist it now (nothing sent depends on it)
    storage:set_hard_state({ term = self.term, vote = self.vote, commit = self.commit })
    self.hs_dirty = false
  end

  local rd = { messages = self.msgs }
  self.msgs = {}
  return persist.hand_out(self, rd)
end

function Node:ready()
  if self.async then return persist.ready(self) end
  return ready_sync(self)
end

-- (async_storage) the caller made rd.persist durable: returns the messages that waited for it,
-- to send now (what this changes, a commit for example, comes with the next ready())
function Node:persisted(p)
  return persist.persisted(self, p)
end

-- the caller has applied rd.snapshot and rd.committed
function Node:advance(rd)
  if rd.snapshot and rd.snapshot.index > self.applied then self.applied = rd.snapshot.index end
  local c = rd.committed
  if c and #c > 0 and c[#c].index > self.applied then self.applied = c[#c].index end
  local every = self.snapshot_entries
  if every and self.applied - self.log.offset >= every and self.applied <= self.stable then
    local data = self.snapshot_fn(self.applied)
    if type(data) == "string" then self:compact(data, self.applied) end
  end
end

function Node:status()
  local role = self.role
  return { id = self.id, term = self.term, role = role == "pre_candidate" and "candidate" or role,
           pre_vote = role == "pre_candidate", leader = self.lead, commit = self.commit,
           applied = self.applied, last_index = self.log:last_index(),
           snapshot_index = self.log.offset, voters = copy_list(self.voters),
           vote = self.vote, dropped_bad = self.dropped_bad,
           transferring = self.lead_transferee,
           sid = self.sid, cid = self.cid, recovering = self.recovering == true,
           learners = membership.learner_list(self) }
end

-- the cheap part of status(), without allocating: role, term, leader
function Node:leadership()
  local r = self.role
  return r == "pre_candidate" and "candidate" or r, self.term, self.lead
end

-- read access for tests and tools: entry i (nil if compacted or absent) and the bounds
function Node:entry(i) return self.log:entry(i) end
function Node:first_index() return self.log:first_index() end
function Node:last_index() return self.log:last_index() end
function Node:term_at(i) return self.log:term(i) end
function Node:snapshot() return self.snap end    -- the latest { index, term, conf, data }, or nil

raft.storage_memory = storage_memory
function raft.storage_file(dir, opts)
  return require("luact.cluster.raft.storage_file").open(dir, opts)
end

return raft
