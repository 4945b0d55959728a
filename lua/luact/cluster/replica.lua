-- luact.cluster.replica: this node's copy of the registry (luact.cluster.registry), on thread 1.
-- A voter applies it from its own committed Raft log (luact.cluster.consensus calls `apply`);
-- every other member follows a voter's *feed*: it subscribes with the index it has applied
-- ("FS", repeated every FEED_RENEW seconds as a heartbeat), and the voter answers with the
-- committed entries after that index ("FE"), or with its latest Raft snapshot first ("FN", in
-- pieces of at most a quarter of `max_frame`, acknowledged by "FS": luact.cluster.raft.pieces)
-- when its log no longer holds them, then pushes each new batch as it applies it. Whichever
-- source an entry comes from, only the entry right after the applied one is applied (a gap
-- waits for the next subscription; a second copy is skipped), so every node applies the same
-- sequence, and a node can take entries from its Raft log and the feed at once.
-- Which one it relies on follows the voters (the configuration in the registry): a node is
-- *in the log* while its own address is a voter there and in its Raft node's configuration,
-- it is not recovering and it hears from a leader (opts.in_log); otherwise it follows the
-- feed. It switches when that changes (a voter added or removed at runtime), and the feed's
-- voter list follows the configuration. Tentacles wait here for a request's result or for an
-- index to be applied.
local registry = require "luact.cluster.registry"
local loop = require "luact.loop"
local clock = require "luact.clock"
local event = require "luact.event"
local logger = require "luact.logger"
local wire = require "luact.cluster.wire"
local pieces = require "luact.cluster.raft.pieces"
local valid_piece = require("luact.cluster.raft.message").valid_piece

local replica = {}

local FEED_RENEW = 0.5          -- a follower re-subscribes this often (its heartbeat)
local FEED_EXPIRY = 3           -- a voter stops feeding a follower silent for this long
local FEED_BATCH = 256          -- entries per feed message (and at most `piece` bytes of them)
local SNAP_WINDOW = 4           -- snapshot pieces unacknowledged at once
local MAX_PIECE = 1024 * 1024   -- bytes of snapshot per piece (less with a smaller max_frame)
local KEEP_BYTES = 8 * 1024 * 1024  -- a node in the log keeps the entries it applied last (as
                                -- many as it applies between two snapshots, at most these
                                -- bytes of them) for the feed, past its Raft log's compaction:
                                -- a follower a little behind when the log is compacted gets
                                -- them, not a whole snapshot

local R = registry.new()        -- the applied state
local result_waiters = {}       -- request id -> one-shot event ("result", value)
local index_waiters = {}        -- list of { index, ev }
local S = nil                   -- the options of replica.start, and `piece`
local following = false         -- subscribed to a voter's feed (not in the log)
local conf_changed = false      -- a configuration entry or a snapshot was applied since the last batch

-- restores: snapshots this replica installed (from its storage at start, from the leader over
-- Raft, or from a voter over the feed)
replica.stats = { restores = 0 }

function replica.state() return R end
function replica.applied() return R.applied end

local function wake_index_waiters()
  local keep = {}
  for _, w in ipairs(index_waiters) do
    if R.applied >= w.index then w.ev:emit("applied", R.applied) else keep[#keep + 1] = w end
  end
  index_waiters = keep
end

local recent = { lo = 1, hi = 0, bytes = 0 }   -- index -> { data, voters } (applied lately)

local function keep_recent(index, data, voters)
  if index ~= recent.hi + 1 then
    -- (a snapshot was installed, or the first entry after start): start again from here
    for i = recent.lo, recent.hi do recent[i] = nil end
    recent.lo, recent.bytes = index, 0
  end
  recent[index], recent.hi = { data, voters }, index
  recent.bytes = recent.bytes + (data and #data or 0)
  while recent.hi - recent.lo >= S.keep or (recent.bytes > KEEP_BYTES and recent.lo < recent.hi) do
    local d = recent[recent.lo][1]
    recent.bytes = recent.bytes - (d and #d or 0)
    recent[recent.lo], recent.lo = nil, recent.lo + 1
  end
end

-- Applies the entry at `index` (data: an encoded command, or nil for Raft's own entries;
-- voters: the list of a configuration entry). Only the entry right after the applied one is
-- applied; returns true if it was.
function replica.apply(index, data, voters)
  if index ~= R.applied + 1 then return false end
  if S and not following then keep_recent(index, data, voters) end
  if voters then
    R:apply_conf(index, voters)
    conf_changed = true
    return true
  end
  if data == nil then
    R.applied = index
    return true
  end
  local ok, c = pcall(require("string.buffer").decode, data)
  local result, err
  if ok then result, err = R:apply(index, c) else R.applied = index; err = "undecodable command" end
  if err then logger.warn(("cluster registry: entry %d refused: %s"):format(index, err)) end
  local req = ok and type(c) == "table" and c.req
  if req then
    local ev = result_waiters[req]
    if ev then
      result_waiters[req] = nil
      ev:emit("result", R.done[req])
    end
  end
  return true
end

-- Replaces the state with a snapshot taken at `index`, unless it applied that far already.
function replica.restore(data, index)
  if index <= R.applied then return false end
  R:restore(data, index)
  replica.stats.restores = replica.stats.restores + 1
  conf_changed = true
  -- results of requests that arrived inside the snapshot
  for req, ev in pairs(result_waiters) do
    if R.done[req] ~= nil then result_waiters[req] = nil; ev:emit("result", R.done[req]) end
  end
  return true
end

-- The voters as of what this replica applied (a copy), or nil before the first configuration.
function replica.voters()
  local v = R.voters
  if not v then return nil end
  local out = {}
  for i, a in ipairs(v) do out[i] = a end
  return out
end

-- true while this node follows a voter's feed, false while it applies its own Raft log.
function replica.following() return following end

local update_mode

-- After a batch was applied: wake waiters, feed followers, tell the node (S.on_applied).
function replica.applied_batch()
  wake_index_waiters()
  -- (the batch goes out before a switch: a voter's followers get its own removal)
  if S and not following then replica.feed_all() end
  if S and conf_changed then
    conf_changed = false
    if S.on_conf then S.on_conf(replica.voters()) end
    update_mode()
  end
  if S and S.on_applied then S.on_applied(R) end
end

-- Waits until the command with request id `req` was applied or `deadline` passed; returns
-- true, result or false.
function replica.await_result(req, deadline)
  if R.done[req] ~= nil then return true, R.done[req] end
  local ev = result_waiters[req]
  if not ev then ev = event.new_oneshot(); result_waiters[req] = ev end
  local left = deadline - clock.get()
  if left <= 0 then return false end
  local alarm = clock.alarm(left)
  local tp, _, v = event.wait(nil, ev, alarm)
  alarm.cancel()
  if tp == "result" then return true, v end
  if result_waiters[req] == ev then result_waiters[req] = nil end
  return false
end

-- Waits until `index` is applied or `deadline` passed; true when applied.
function replica.await_index(index, deadline)
  if R.applied >= index then return true end
  local left = deadline - clock.get()
  if left <= 0 then return false end
  local ev = event.new_oneshot()
  index_waiters[#index_waiters + 1] = { index = index, ev = ev }
  local alarm = clock.alarm(left)
  local tp = event.wait(nil, ev, alarm)
  alarm.cancel()
  return tp == "applied"
end

---------------------------------------------------------------------------------------------
-- the feed: a voter's side

local subscribers = {}          -- address -> { sent = last index sent, expires = time,
                                --   out = a snapshot on its way (pieces sender), out_index }

local function send_pieces(addr, sub)
  local out = sub.out
  for _, p in ipairs(out:take()) do
    if not wire.to_member(addr, { "FN", S.source.leader(), S.self_addr, sub.out_index, out.size, p[1], p[2], p[3] }) then
      break     -- (unreachable: sent again from what it acknowledged, after its next FS)
    end
  end
end

-- Entry i (true, data, voters), from the entries kept past the log's compaction or the Raft
-- log; false when neither holds it.
local function entry_at(i)
  local r = recent[i]
  if r then return true, r[1], r[2] end
  local e = S.source.entry(i)
  if e then return true, e.data, e.conf and e.conf.voters end
  return false
end

local function feed_one(addr, sub)
  if sub.out then return send_pieces(addr, sub) end   -- nothing else until it has the snapshot
  local src = S.source
  if sub.sent < R.applied and not entry_at(sub.sent + 1) then
    -- the entries it needs were compacted: our latest Raft snapshot (the registry as of its
    -- index; the log holds every entry after it), in pieces
    local snap = src.snapshot()
    if not snap then return end
    sub.out, sub.out_index = pieces.sender(snap.data or "", S.piece, SNAP_WINDOW), snap.index
    sub.sent = snap.index
    return send_pieces(addr, sub)
  end
  while sub.sent < R.applied do
    local from, to = sub.sent + 1, math.min(R.applied, sub.sent + FEED_BATCH)
    local entries, bytes = {}, 0
    for i = from, to do
      local ok, data, voters = entry_at(i)
      if not ok or (bytes > 0 and bytes + #(data or "") > S.piece) then break end
      entries[#entries + 1] = { i, data, voters }
      bytes = bytes + #(data or "")
    end
    if #entries == 0 then break end
    if not wire.to_member(addr, { "FE", src.leader(), entries }) then break end
    sub.sent = entries[#entries][1]
  end
end

function replica.feed_all()
  local now = clock.get()
  for addr, sub in pairs(subscribers) do
    if sub.expires < now then subscribers[addr] = nil else feed_one(addr, sub) end
  end
end

-- FS addr applied [snapshot index, bytes held, renew]: a follower's subscription (renew: its
-- periodic one) and its acknowledgement of snapshot pieces.
loop.on("FS", function(msg)
  if not S or following then return end
  local addr, applied, sindex, held, renew = msg[2], msg[3], msg[4], msg[5], msg[6]
  if type(addr) ~= "string" or type(applied) ~= "number" then return end
  local sub = subscribers[addr]
  if not sub then sub = { sent = math.min(applied, R.applied), seen = applied }; subscribers[addr] = sub end
  sub.expires = clock.get() + FEED_EXPIRY
  if sub.out then
    if applied >= sub.out_index then
      sub.out = nil                                       -- it installed the snapshot
    elseif sindex == sub.out_index and type(held) == "number" then
      sub.out:ack(held)
    end
    -- pieces lost (nothing acknowledged between two renewals): again from what it holds
    if sub.out and renew then sub.out:stalled() end
  end
  if not sub.out then
    -- entries sent are not sent again while it makes progress; a renewal that shows none
    -- means some were lost (a lost connection): again from what it applied
    if renew and applied <= sub.seen and applied < sub.sent then sub.sent = applied end
    if applied > sub.sent then sub.sent = math.min(applied, R.applied) end
    if renew then sub.seen = applied end
  end
  feed_one(addr, sub)
  if R.applied == applied and not sub.out then wire.to_member(addr, { "FE", S.source.leader(), {} }) end
end)

---------------------------------------------------------------------------------------------
-- the feed: a follower's side

local leader_seen = nil         -- the leader named by the last feed message
local last_feed = 0             -- when the last feed message came

local function follower_got(leader)
  leader_seen = leader
  last_feed = clock.get()
  if S and S.on_leader then S.on_leader(leader) end
end

-- (a node in the log takes these too, from a subscription it made before it switched: the
-- rule of replica.apply makes that harmless)
loop.on("FE", function(msg)
  if not S then return end
  if following then follower_got(msg[2]) end
  local applied_any = false
  for _, e in ipairs(msg[3]) do
    local voters = e[3]
    if type(voters) ~= "table" then voters = nil end
    if replica.apply(e[1], e[2], voters) then applied_any = true end
  end
  if applied_any then replica.applied_batch() end
end)

local feed_voter = nil           -- the voter this follower subscribes to
local snap_in = nil             -- a snapshot coming in pieces: { from, index, size, rx }

-- FN leader from index size offset bytes done: a piece of `from`'s Raft snapshot at `index`.
-- Taken only from the voter this follower subscribes to, in order; acknowledged with an FS.
loop.on("FN", function(msg)
  if not S or not following then return end
  local from, index, size, offset, bytes, done = msg[3], msg[4], msg[5], msg[6], msg[7], msg[8]
  if type(from) ~= "string" or type(index) ~= "number" or not valid_piece(offset, size, bytes, done) then
    return
  end
  follower_got(msg[2])
  if from ~= feed_voter then return end
  if index <= R.applied then
    snap_in = nil
    wire.to_member(from, { "FS", S.self_addr, R.applied })
    return
  end
  local t = snap_in
  if t and (t.from ~= from or t.index ~= index or t.size ~= size) then t = nil end
  if not t then
    if offset ~= 0 then
      wire.to_member(from, { "FS", S.self_addr, R.applied, index, 0 })
      return
    end
    t = { from = from, index = index, size = size, rx = pieces.receiver(size) }
    snap_in = t
  end
  local held = t.rx:put(offset, bytes)
  if t.rx:complete() then
    snap_in = nil
    if replica.restore(t.rx:take(), index) then replica.applied_batch() end
  end
  wire.to_member(from, { "FS", S.self_addr, R.applied, index, held })
end)

-- A follower's known leader (from the feed).
function replica.leader_seen() return leader_seen end

local voter_cursor = 0
local function subscribe()
  if not S or not following then return false end
  -- the leader if known and live, else the next live voter (of the configuration this node
  -- applied; the seeds until it applied one), never itself
  local voters = {}
  for _, v in ipairs(R.voters or S.voters) do
    if v ~= S.self_addr then voters[#voters + 1] = v end
  end
  local n = #voters
  if n == 0 then return false end
  local live = S.live()
  -- the leader it heard of, unless that one has been silent for a while (it may have stopped
  -- feeding: removed from the voters, or cut off): then the voters in turn
  local target = clock.get() - last_feed < 3 * FEED_RENEW and leader_seen ~= S.self_addr and
                 leader_seen and live[leader_seen] and leader_seen
  if not target then
    for _ = 1, n do
      voter_cursor = voter_cursor % n + 1
      local v = voters[voter_cursor]
      if live[v] then target = v; break end
    end
    target = target or voters[voter_cursor % n + 1]
  end
  if target ~= feed_voter then snap_in = nil end        -- (another voter starts over)
  feed_voter = target
  local t = snap_in
  wire.to_member(target, { "FS", S.self_addr, R.applied, t and t.index, t and t.rx.held, true })
end

-- Follows the feed or the log, as opts.in_log() says now; logs a switch.
update_mode = function()
  if not S then return end
  local in_log = S.in_log and S.in_log() or false
  if in_log == not following then return end
  following = not in_log
  if S.started then
    logger.info(in_log and "cluster: this node is a voter now: its registry follows its own Raft log"
      or "cluster: this node's registry follows a voter's feed now (it is not a voter, or hears from no leader)")
  end
  if following then subscribe() else leader_seen, snap_in = nil, nil end
  if S.on_mode then S.on_mode(in_log) end
end

-- Starts the replica: opts.self_addr, opts.source (the consensus service: first_index(),
-- entry(i), leader(), snapshot()), opts.voters (the seeds: the voters until a configuration
-- is applied), opts.in_log() (true while this node may rely on its own Raft log), opts.live()
-- (set of live addresses), opts.on_leader(addr) (the leader a feed message named),
-- opts.on_conf(voters) after a batch that changed the configuration, opts.on_mode(in_log)
-- after a switch, opts.on_applied(registry) after each applied batch, opts.max_frame (bytes:
-- the feed's messages stay under a quarter of it), opts.snapshot_entries (entries kept for the
-- feed past the log's compaction).
function replica.start(opts)
  S = opts
  S.piece = math.max(1024, math.min(MAX_PIECE, math.floor((opts.max_frame or 16 * 1024 * 1024) / 4)))
  S.keep = opts.snapshot_entries or 2000
  following = false
  S.timer = clock.grid_timer(FEED_RENEW, function()
    if not S then return false end
    update_mode()
    subscribe()
  end)
end

-- Once the services started (a voter has replayed its log): feed or log from now on.
function replica.ready()
  if not S then return end
  update_mode()
  S.started = true
  if following then subscribe() end
end

function replica.stop()
  if S and S.timer then S.timer:stop() end
  S = nil
end

function replica.reset()
  replica.stop()
  R = registry.new()
  result_waiters, index_waiters, subscribers, leader_seen = {}, {}, {}, nil
  feed_voter, snap_in = nil, nil
  following, conf_changed, last_feed = false, false, 0
  recent = { lo = 1, hi = 0, bytes = 0 }
end

return replica
