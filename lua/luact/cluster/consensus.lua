-- luact.cluster.consensus: the Raft service on thread 1 of each member with a datadir (a
-- voter, or a member that may become one: it runs with no peers until a leader adds it). It
-- drives the pure Raft
-- node (luact.cluster.raft) from the loop's clock, with its log, hard state and snapshots in
-- `datadir/raft` (fsynced before the messages that depend on them leave), carries its messages
-- over the node transport ("R" messages), applies committed entries to the registry replica,
-- and offers proposals and ReadIndex reads to luact.cluster.requests. Ready output is processed
-- once per loop turn, so proposals and messages of one turn share one fsync.
--
-- The disk work never runs on this loop (the loop that also runs SWIM and renews leases): the
-- node runs with async_storage (raft/persist.lua), and each persist it hands out (the writes
-- and fsyncs of appended entries, a vote, a snapshot and its log rewrite) runs as one job on an
-- offload pool thread (luact.offload; raft/storage_io.lua does the system calls there) while
-- this loop goes on. One persist is out at a time: what the node writes meanwhile batches into
-- the next one, so the order of writes is kept; acknowledgements and votes leave once their
-- persist is back, heartbeats, ReadIndex rounds and the leader's appends at once. Why the pool
-- and not a thread of its own: the pool already owns "a VM that may block", grows past stuck
-- threads, and returns results to a waiting tentacle; a job is plain data, so nothing is
-- shared between VMs. A slow disk therefore delays commits, never failure detection or leases.
-- A failed write or fsync stops this node's Raft (logged as an error): nothing that depends on
-- it is ever acknowledged; restart the process. The storage
-- directory gets a random identity (a uuid from the core) when it is created, so that a voter
-- whose datadir was lost rejoins as a recovering member (raft/identity.lua); a damaged log
-- refuses to start (raft/storage_file.lua). `change` adds or removes one voter on the leader
-- (the new one first copies the log as a learner: raft/membership.lua).
local raft = require "luact.cluster.raft"
local loop = require "luact.loop"
local clock = require "luact.clock"
local event = require "luact.event"
local logger = require "luact.logger"
local util = require "luact.util"
local wire = require "luact.cluster.wire"
local replica = require "luact.cluster.replica"
local offload = require "luact.offload"
local tentacle = require "luact.tentacle"

local consensus = {}

local TICK = 0.05               -- seconds per Raft tick: elections after 0.5-1 s of silence
local HEARTBEAT_TICKS = 2       -- the leader's heartbeats go out every 100 ms: 5-9 of them go
                                -- unanswered before a follower campaigns; the leases' reads wait
                                -- for the next one (luact.cluster.lease)
local FOLLOWER_BEAT = 2         -- a process that does not lead runs this many ticks per wake:
                                -- its ticks only count toward an election timeout (10-19 ticks)
local SNAPSHOT_ENTRIES = 2000   -- entries applied between automatic snapshots (at least)
local SNAPSHOT_SMALL = 1024 * 1024  -- a registry whose snapshot is larger than this is snapshot
                                -- again only once the log since holds half its size in bytes

local S = nil                   -- { n, self_addr, on_leader }
local on_leadership = nil       -- fn(this process leads) when the leader changes (failover)
local on_tick = nil             -- fn() at each Raft tick, before its heartbeats leave (lease)
local read_waiters = {}         -- ctx -> one-shot event ("read", index | nil, err)
local next_ctx = 0

local process_scheduled = false
local schedule_process

-- the job of one persist, on a pool thread (no upvalues: it travels as bytecode)
local function run_storage_job(job)
  return require("luact.cluster.raft.storage_io").run(job)
end

-- makes persist p durable off this loop, then sends what waited for it
local function persist(p)
  local s = S
  local job = s.storage:take_job()
  if job then
    local ok, out = pcall(offload, run_storage_job, job)
    if not ok then
      s.storage_failed = tostring(type(out) == "table" and out.message or out)
      logger.error(("cluster: Raft storage failed, this node's Raft stops (restart it): %s"):format(
        s.storage_failed))
      return
    end
    s.storage:finish_job(out)
  end
  if S ~= s then return end      -- (stopped meanwhile)
  for _, msg in ipairs(s.n:persisted(p)) do wire.to_member(msg.to, { "R", msg }) end
  schedule_process()
end

-- Snapshot pacing: a snapshot serializes the whole registry on thread 1, so a large registry is
-- snapshot only after as many bytes of log (half its size) as it costs: the work per applied
-- byte stays bounded whatever the registry's size, and so does the log (about half the
-- snapshot's size past snapshot_entries).
local last_snap_bytes, log_bytes = 0, 0

local function take_snapshot()
  if last_snap_bytes > SNAPSHOT_SMALL and log_bytes < last_snap_bytes / 2 then return nil end
  local data = replica.state():snapshot()
  last_snap_bytes, log_bytes = #data, 0
  return data
end

local start_ticker   -- (below)

local function process()
  process_scheduled = false
  if not S then return end
  local n = S.n
  local any = false
  while true do
    local rd = n:ready()
    if not rd then break end
    any = true
    for _, msg in ipairs(rd.messages) do wire.to_member(msg.to, { "R", msg }) end
    if rd.persist then tentacle(persist, rd.persist) end
    if rd.snapshot then
      replica.restore(rd.snapshot.data, rd.snapshot.index)
      last_snap_bytes, log_bytes = #(rd.snapshot.data or ""), 0
    end
    for _, e in ipairs(rd.committed) do
      replica.apply(e.index, e.data, e.conf and e.conf.voters)
      if e.data then log_bytes = log_bytes + #e.data end
    end
    if rd.reads then
      for _, r in ipairs(rd.reads) do
        local ev = read_waiters[r.ctx]
        if ev then
          read_waiters[r.ctx] = nil
          ev:emit("read", r.index, r.err)
        end
      end
    end
    n:advance(rd)
  end
  if any then replica.applied_batch() end
  local _, _, leader = n:leadership()
  if leader ~= S.leader then
    S.leader = leader
    S.on_leader(leader)
    local me = leader ~= nil and leader == S.self_addr
    if S.ticker and S.beat ~= (me and 1 or FOLLOWER_BEAT) then start_ticker(me and 1 or FOLLOWER_BEAT) end
    if on_leadership then on_leadership(me) end
  end
end

schedule_process = function()
  if process_scheduled then return end
  process_scheduled = true
  clock.at(clock.loop_time(), process)
end

loop.on("R", function(msg)
  if not S then return end
  S.n:step(msg[2])
  schedule_process()
end)

local function log_line(level, line)
  local f = logger[level] or logger.info
  f(line)
end

local function mkdir_p(dir)
  local ok = os.execute(("mkdir -p '%s'"):format(dir:gsub("'", "'\\''")))
  return ok == 0 or ok == true
end

-- Starts the Raft node: opts.self_addr, opts.voters (sorted list of addresses: the seeds, the
-- first configuration of a new cluster; {} on a node that is not a seed), opts.datadir,
-- opts.on_leader(addr | nil), opts.fsync (default true), opts.snapshot_entries (entries applied
-- between automatic snapshots, default 2000; more for a registry over 1 MiB: take_snapshot
-- above), opts.tick (seconds per Raft tick), opts.max_frame
-- (the node transport's largest frame: snapshots go in pieces of at most a quarter of it).
function consensus.start(opts)
  if not mkdir_p(opts.datadir) then
    error(("luact.start: cannot create datadir '%s'"):format(opts.datadir), 0)
  end
  local storage = raft.storage_file(opts.datadir .. "/raft", { fsync = opts.fsync ~= false,
                                                              new_sid = util.uuid, log = log_line })
  local n = raft.new({
    log = log_line,
    id = opts.self_addr,
    peers = opts.voters,
    random = function(lo, hi) return math.random(lo, hi) end,
    storage = storage,
    async_storage = true,         -- (the disk work runs on a pool thread: persist above)
    snapshot_entries = opts.snapshot_entries or SNAPSHOT_ENTRIES,
    heartbeat_ticks = HEARTBEAT_TICKS,
    -- (the registry's state as of exactly that index: not while the feed put it further)
    snapshot = function(index)
      if replica.applied() ~= index then return nil end
      return take_snapshot()
    end,
    snapshot_piece = math.max(1024, math.min(1024 * 1024, math.floor((opts.max_frame or 16 * 1024 * 1024) / 4))),
    -- (appends too: at most a quarter of a frame of entries' data, or one entry)
    max_append_bytes = math.max(1024, math.floor((opts.max_frame or 16 * 1024 * 1024) / 4)),
    -- (the leader's new entries leave before its own fsync: raft/persist.lua)
  })
  S = { n = n, storage = storage, self_addr = opts.self_addr, on_leader = opts.on_leader,
        leader = nil, tick = opts.tick or TICK }
  start_ticker(FOLLOWER_BEAT)
  process()        -- a restarted voter rebuilds the registry from its snapshot and log
  return n
end

-- Ticks the Raft node `beat` ticks at a time, every `beat` ticks (on the clock's grid, with the
-- cluster's other periodic work): 1 while this process leads, FOLLOWER_BEAT otherwise.
start_ticker = function(beat)
  if S.ticker then S.ticker:stop() end
  S.beat = beat
  S.ticker = clock.grid_timer(S.tick * beat, function()
    if not S then return false end
    if on_tick then on_tick() end
    for _ = 1, beat do S.n:tick() end
    process()
  end)
end

-- fn(true) when this process becomes the Raft leader, fn(false) when another or none is; nil
-- clears it. (One watcher: luact.cluster.failover, which is started before consensus and
-- lives on when this process runs no consensus at all.)
function consensus.on_leadership(fn)
  on_leadership = fn
end

function consensus.is_leader()
  if not S then return false end
  local role = S.n:leadership()
  return role == "leader"
end

function consensus.leader()
  return S and S.leader
end

-- Proposes an encoded command; returns its index, or nil and why ("not_leader", ...).
function consensus.propose(data)
  if not S then return nil, "not_voter" end
  local index, err = S.n:propose(data)
  if index then schedule_process() end
  return index, err
end

-- fn() runs at every Raft tick of this process, just before the tick's heartbeats leave (a
-- read started there with `lazy` is confirmed by them); nil clears it. (One watcher: the lease.)
function consensus.on_tick(fn)
  on_tick = fn
end

-- Starts a ReadIndex round now and returns what consensus.read_wait waits on, or nil and why.
-- `lazy`: no heartbeat round of its own; the next regular one (at most a tick away) confirms it.
function consensus.read_begin(lazy)
  if not S then return nil, "not_voter" end
  next_ctx = next_ctx + 1
  local ctx = next_ctx
  local ok, err = S.n:read_index(ctx, lazy)
  if not ok then return nil, err end
  local ev = event.new_oneshot()
  ev.ctx = ctx
  read_waiters[ctx] = ev
  schedule_process()
  return ev
end

-- Waits (until `deadline`) for a read begun by consensus.read_begin: its index, or nil and why.
function consensus.read_wait(ev, deadline)
  local ctx = ev.ctx
  local left = deadline - clock.get()
  if left <= 0 then read_waiters[ctx] = nil; return nil, "timeout" end
  local alarm = clock.alarm(left)
  local tp, _, index, rerr = event.wait(nil, ev, alarm)
  alarm.cancel()
  if tp ~= "read" then read_waiters[ctx] = nil; return nil, "timeout" end
  if not index then return nil, rerr end
  return index
end

-- Linearizable read barrier: the index the registry must have applied before a read that began
-- now may be served; nil and why when this node cannot tell (not the leader, no quorum in time).
function consensus.read_index(deadline, lazy)
  local ev, err = consensus.read_begin(lazy)
  if not ev then return nil, err end
  return consensus.read_wait(ev, deadline)
end

-- Hands leadership to another live voter (graceful leave); waits up to `timeout` seconds.
function consensus.step_down(live, timeout)
  if not consensus.is_leader() then return true end
  local st = S.n:status()
  for _, v in ipairs(st.voters) do
    -- (a voter still recovering a lost storage refuses: try the next one)
    if v ~= S.self_addr and live[v] and S.n:transfer_leader(v) then
      schedule_process()
      local deadline = clock.get() + (timeout or 2)
      while consensus.is_leader() and clock.get() < deadline do clock.sleep(TICK) end
      return not consensus.is_leader()
    end
  end
  return false
end

-- A voter that left: it stops ticking, so it never campaigns again, but still answers the
-- leader (its log keeps counting toward the quorum) until the process stops. A leader keeps
-- ticking (it could not hand over).
function consensus.retire()
  if S and S.ticker and not consensus.is_leader() then
    S.ticker:stop()
    S.ticker = nil
  end
end

-- Is `addr` a voter in this node's Raft configuration (the latest in its log, committed or not)?
function consensus.has_voter(addr)
  if not S then return false end
  return S.n.is_voter[addr] == true
end

-- true while this node's storage is recovering (raft/identity.lua: it does not vote yet), or
-- has not heard of its cluster yet (a seed before the first election, or a wiped seed that
-- nobody has told yet that its cluster exists)
function consensus.recovering()
  return S ~= nil and (S.n.recovering == true or (S.n.sid ~= nil and S.n.cid == nil))
end

function consensus.running() return S ~= nil end

local CHANGE_ERRORS = {
  conf_pending = "another voter change is in progress",
  last_voter = "it would remove the last voter",
}

-- On the leader: adds ({ add = addr }) or removes ({ remove = addr }) one voter and waits until
-- the change is committed or `deadline` passes. An added node first copies the log as a
-- learner. Returns index (committed) | nil, why, refused (true: the change is refused, do not
-- retry: why says why; else retry on the leader, "not_leader" and the like).
function consensus.change(change, deadline)
  if not S then return nil, "not_voter" end
  while true do
    local n = S.n
    local index, err = n:propose_conf(change)
    if index then
      schedule_process()
      local term = n.term
      while clock.get() < deadline do
        if S == nil or S.n ~= n then return nil, "stopped" end
        if n.commit >= index then
          if n:term_at(index) == term then return index end
          return nil, "not_leader"        -- (lost with a leader change: ask the next leader)
        end
        if n:term_at(index) ~= term then return nil, "not_leader" end
        clock.sleep(TICK / 2)
      end
      return nil, "timeout"
    end
    if err == "already_member" or err == "not_member" then
      -- done before (a retry after a leader change): once that configuration is committed
      while n.commit < n.conf_index and clock.get() < deadline do clock.sleep(TICK / 2) end
      if n.commit < n.conf_index then return nil, "timeout" end
      return n.commit
    end
    if CHANGE_ERRORS[err] then return nil, CHANGE_ERRORS[err], true end
    if err ~= "catching_up" and err ~= "not_ready" then return nil, err end
    if clock.get() + TICK >= deadline then
      return nil, err == "catching_up" and "timeout: the new voter did not catch up with the log in time" or "timeout"
    end
    schedule_process()
    clock.sleep(TICK)
    if not S then return nil, "stopped" end
  end
end

-- Read-only access to the log, for the feed to followers.
function consensus.first_index() return S.n:first_index() end
function consensus.entry(i) return S.n:entry(i) end
-- The latest snapshot { index, term, conf, data } (nil before the first).
function consensus.snapshot() return S.n:snapshot() end

function consensus.status()
  return S and S.n:status()
end

function consensus.stop()
  if not S then return end
  if S.ticker then S.ticker:stop() end
  S = nil
  read_waiters = {}
  last_snap_bytes, log_bytes = 0, 0
end

return consensus
