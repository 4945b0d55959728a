-- luact.cluster.raft.persist: ready() when the storage's durability comes back later (the
-- `async_storage` option of raft.new): the caller makes the writes durable wherever it likes (an
-- offload pool thread, in luact) and says so with node:persisted(p). Owns the rules of what may
-- leave before that and what waits for it. Part of the pure node (no clock, socket or thread).
--
-- The contract (the same as the synchronous ready()'s, with the fsync moved out):
--   * ready() writes what changed to the storage (in order: snapshot, log, hard state,
--     identity) only when no persist is out, and then returns it as rd.persist. Until the
--     caller calls node:persisted(rd.persist) the node does not call its storage again: what
--     changes meanwhile is written by the first ready() after it (several turns' writes batch
--     into one persist).
--   * A message that acknowledges something or carries state that must survive a crash leaves
--     only once that is durable: it rides in rd.persist.messages (the caller sends them after the
--     persist), or waits in the node for the next persist. These are append_resp (entries or an
--     installed snapshot acknowledged), vote and vote_resp, and every message of a term not yet
--     durable, or while the storage's identity is being written.
--   * Messages that acknowledge nothing durable leave at once, persist out or not: a leader's
--     append, heartbeat and snapshot pieces (a leader's term is durable: it voted for itself),
--     heartbeat_resp, snapshot_resp (pieces held in memory), read_index(_resp), timeout_now,
--     prevote and prevote_resp (a pre-vote records nothing). So heartbeats, ReadIndex rounds
--     (which renew luact's leases) and the leader's replication go on while a disk is slow.
--   * The leader counts its own log toward a quorum only up to what is durable (node.stable,
--     raised by persisted()); committed entries are handed out up to min(commit, stable).
local identity = require "luact.cluster.raft.identity"
local min = math.min

local M = {}

-- may leave before anything pending is durable
local FREE = { heartbeat = true, heartbeat_resp = true, append = true, snapshot = true,
               snapshot_resp = true, read_index = true, read_index_resp = true,
               timeout_now = true }
local ALWAYS = { prevote = true, prevote_resp = true }

local function is_free(n, m)
  local t = m.type
  if n.id_dirty or (n.persisting and n.persisting.identity) then return false end
  if ALWAYS[t] then return true end
  return FREE[t] == true and m.term <= n.durable_term
end

-- the storage writes of one persist; true when there is something to make durable
local function write(n)
  local storage, log = n.storage, n.log
  local wrote, id_written = false, false
  if n.snap_dirty then
    storage:save_snapshot(n.snap, n.snap_reset)
    n.snap_dirty, n.snap_reset, wrote = false, false, true
  end
  local from = n.unstable_from
  if from then
    storage:append(from, log:slice(from, log:last_index()))
    n.unstable_from, wrote = nil, true
  end
  if n.hs_dirty then
    storage:set_hard_state({ term = n.term, vote = n.vote, commit = n.commit })
    n.hs_dirty = false
    -- (a commit index alone needs no fsync: a stale one is safe, the leader tells it again)
    if n.term ~= n.written_term or n.vote ~= n.written_vote then
      n.written_term, n.written_vote, wrote = n.term, n.vote, true
    end
  end
  if n.id_dirty then
    storage:set_identity(identity.identity(n))
    n.id_dirty, wrote, id_written = false, true, true
  end
  return wrote, id_written
end

function M.has_ready(n)
  if #n.reads > 0 or n.restore_snapshot ~= nil or n.handed < min(n.commit, n.stable) then
    return true
  end
  if n.role == "leader" and n.pending_bcast then return true end
  if n.persisting then
    for i = 1, #n.msgs do
      if is_free(n, n.msgs[i]) then return true end
    end
    return false
  end
  return #n.msgs > 0 or n.unstable_from ~= nil or n.hs_dirty or n.id_dirty or n.snap_dirty
end

-- What a ready (either mode) hands out besides its messages: a snapshot to restore, the entries
-- committed and durable here (up to min(commit, stable)) and the reads that finished; returns rd.
function M.hand_out(n, rd)
  if n.restore_snapshot then
    rd.snapshot = n.restore_snapshot
    n.restore_snapshot = nil
  end
  local hi = min(n.commit, n.stable)
  if hi > n.handed then
    rd.committed = n.log:slice(n.handed + 1, hi)
    n.handed = hi
  else
    rd.committed = {}
  end
  if #n.reads > 0 then
    rd.reads = n.reads
    n.reads = {}
  end
  return rd
end

function M.ready(n)
  if not M.has_ready(n) then return nil end
  local log = n.log
  if n.role == "leader" and n.pending_bcast then
    -- the leader's new entries leave at once: followers write them while it does (Raft thesis
    -- 10.2.1); it counts its own copy once durable
    n:bcast_append(false)
  end
  n.pending_bcast = false
  local rd = { messages = {} }
  local p = nil
  if not n.persisting then
    local wrote, id_written = write(n)
    if wrote then
      p = { last = log:last_index(), last_term = log:last_term(), term = n.term,
            identity = id_written, messages = {} }
      n.persisting = p
      rd.persist = p
    end
  end
  local out, keep = rd.messages, {}
  local msgs = n.msgs
  for i = 1, #msgs do
    local m = msgs[i]
    if is_free(n, m) then out[#out + 1] = m
    elseif p then p.messages[#p.messages + 1] = m      -- leaves once p is durable
    elseif n.persisting then keep[#keep + 1] = m         -- waits for the next persist
    else out[#out + 1] = m end                           -- nothing unwritten: durable already
  end
  n.msgs = keep
  return M.hand_out(n, rd)
end

-- The caller made persist p durable: returns the messages that waited for it (send them now).
-- What the node did meanwhile (new entries, a truncation, a snapshot installed) is not durable
-- yet: the log counts as stable up to what p wrote and nothing changed since.
function M.persisted(n, p)
  if n.persisting ~= p then error("bad 'persist' argument (not the persist out)", 3) end
  n.persisting = nil
  n.durable_term = p.term
  local log = n.log
  local l = p.last
  if n.unstable_from and n.unstable_from <= l then l = n.unstable_from - 1 end
  if n.snap_dirty and n.snap_reset then l = min(l, n.stable) end   -- (a snapshot installed)
  l = min(l, log:last_index())
  -- (an entry with the term written at the last index written: the same entries up to it)
  if l > n.stable and (l < p.last or log:term(l) == p.last_term) then n.stable = l end
  if n.role == "leader" then
    local committed = n:maybe_commit()
    if n.role == "leader" and committed then n:bcast_append(true) end
    if n.role == "leader" and n.lead_transferee and committed then
      local pr = n.prs[n.lead_transferee]
      if pr and pr.match == log:last_index() then
        n:send({ to = n.lead_transferee, type = "timeout_now" })
      end
    end
  end
  return p.messages
end

-- compact() with async storage: the snapshot is written by the next persist (the log on disk
-- still holds the entries meanwhile, so a crash before it loses nothing)
function M.compact(n, snap)
  n.snap = snap
  n.snap_dirty, n.snap_reset = true, false
  n.log:compact(snap.index)
end

return M
