-- luact.cluster.lease: the lease that lets a node serve its virtual actor activations, on
-- thread 1. Every RENEW seconds a member asks the Raft leader ("LR", with its boot id and a
-- sequence number, noting when it sent it); the leader answers ("LA") only after a ReadIndex
-- round (its next round of Raft heartbeats, every 100 ms: one for every renewal since the last) has
-- confirmed, with a quorum, that it still leads, and only for a process that is not condemned
-- in the registry and that its membership view holds alive. The member then holds
-- its lease until send time + LEASE, on its own monotonic clock (src/lease.rs keeps it, with a
-- generation, for every thread to check per call).
--
-- Why this gives at most one activation: the leader re-places the activations of a process
-- only after condemning it (a registry entry: no leader acks it again) and then waiting
-- LEASE_WAIT past the time it last acked it (luact.cluster.failover); a new leader waits
-- LEASE_WAIT from its election. The member's lease started before its request was sent, the
-- leader's wait after the last answer it sent, and LEASE_WAIT exceeds LEASE by 20 % plus
-- MARGIN: so the old activations stop serving before the new one can exist, as long as the two
-- clocks' rates differ by less than 20 % (no clock synchronization is assumed). An isolated
-- old leader cannot answer: its ReadIndex round needs a quorum. Nothing else is proof that a
-- process stopped serving: a refused connection is not (a firewall answers with resets too).
--
-- A lease that runs out is not the end of the activations: they refuse calls
-- (actor_temporary_fail: calls by name wait and retry) until a renewal arrives, and a renewal
-- proves they were not re-placed meanwhile (nothing is re-placed before its process is
-- condemned, and a condemned process is never renewed). Only a condemned, leaving or stopping
-- process ends its lease for good (lease.lapse()).
local lffi = require "luact.ffi"
local C = lffi.C
local loop = require "luact.loop"
local clock = require "luact.clock"
local wire = require "luact.cluster.wire"
local consensus = require "luact.cluster.consensus"

local logger = require "luact.logger"

local lease = {}

lease.LEASE = 0.5               -- seconds a confirmed renewal lets a node serve
lease.RENEW = 0.2               -- a member asks this often: its lease runs on while the leader
                                -- answers within LEASE - RENEW = 0.3 s (0.1 s of which its
                                -- answer may wait for the next heartbeat round)
lease.MARGIN = 0.2              -- covers a call that began just before the lease ran out
lease.LEASE_WAIT = lease.LEASE * 1.2 + lease.MARGIN   -- the leader's wait before re-placing

local S = nil                   -- { self_addr, boot = function, leader = function, may_grant = function(addr, boot) }
local sent = {}                 -- seq -> monotonic time it was sent
local seq = 0
local pending = {}              -- leader: list of { addr, seq, boot }
local last_grant = {}           -- leader: boot -> when this leader last answered that process
local last_grant_any = nil      -- leader: when it last answered any process
local lapsed_at = nil           -- member: when its lease was seen run out (logged once)

-- member side ------------------------------------------------------------------------------

local function renew()
  if not S then return false end
  local now = clock.get()
  local held_until = C.luact_lease_until()
  if held_until > 0 and held_until <= now and not lapsed_at then
    lapsed_at = held_until
    logger.warn(("cluster: this node's lease ran out (no renewal confirmed by the leader %s for %.2f s): " ..
      "its virtual actors refuse calls until it is renewed"):format(tostring(S.leader()), now - held_until + lease.LEASE))
  end
  local leader = S.leader()
  if not leader then return end
  seq = seq + 1
  sent[seq] = clock.get()
  sent[seq - 40] = nil
  wire.to_member(leader, { "LR", S.self_addr, S.boot(), seq })
end

loop.on("LA", function(msg)
  local at = sent[msg[2]]
  if not at or not S or msg[3] ~= S.boot() then return end
  local now = clock.get()
  if at + lease.LEASE <= now then return end        -- an answer too late to extend anything
  if lapsed_at then
    logger.info(("cluster: this node holds its lease again (it had none for %.2f s): its virtual actors serve again")
      :format(now - lapsed_at))
    lapsed_at = nil
  end
  C.luact_lease_extend(at + lease.LEASE)
end)

-- The generation an activation created now belongs to.
function lease.current()
  return C.luact_lease_current()
end

-- true while activations of generation gen may serve.
function lease.valid(gen)
  return C.luact_lease_valid(gen, C.luact_clock_monotonic()) == 1
end

function lease.held()
  return C.luact_lease_until() > C.luact_clock_monotonic()
end

-- Ends the lease now: every activation created under it stops serving for good.
function lease.lapse()
  return C.luact_lease_lapse()
end

-- leader side ------------------------------------------------------------------------------

-- At each Raft tick: the renewals that arrived since the last one are confirmed together by
-- the next round of heartbeats, which goes out anyway (a lazy ReadIndex: no round of their own).
local function grant()
  if #pending == 0 then return end
  if not S or not consensus.is_leader() then pending = {}; return end
  local batch = pending
  pending = {}
  local ev = consensus.read_begin(true)
  if not ev then return end
  require("luact.tentacle")(function()
    local index = consensus.read_wait(ev, clock.get() + 1)
    if not index then return end                    -- not (or no longer) confirmed as leader
    for _, r in ipairs(batch) do
      if S and S.may_grant(r[1], r[3]) then
        last_grant[r[3]] = clock.get()
        last_grant_any = last_grant[r[3]]
        wire.to_member(r[1], { "LA", r[2], r[3] })
      end
    end
  end)
end

loop.on("LR", function(msg)
  if not S or not consensus.is_leader() then return end
  local addr, boot, n = msg[2], msg[3], msg[4]
  if type(addr) ~= "string" or type(n) ~= "number" or not S.may_grant(addr, boot) then return end
  pending[#pending + 1] = { addr, n, boot }
end)

-- Leader: when it last extended the lease of process `boot` (nil: never, as this leader).
function lease.last_grant(boot)
  return last_grant[boot]
end

-- Leader: when it last extended any process's lease (nil: never, as this leader).
function lease.last_grant_any()
  return last_grant_any
end

-- opts: self_addr, boot() -> this process's boot id, leader() -> leader address or nil,
-- may_grant(addr, boot) -> true when the leader may extend that process's lease.
function lease.start(opts)
  S = opts
  S.timer = clock.grid_timer(lease.RENEW, renew)
  consensus.on_tick(grant)
end

function lease.stop()
  if S and S.timer then S.timer:stop() end
  if S then consensus.on_tick(nil) end
  S = nil
  pending, sent, last_grant = {}, {}, {}
  lapsed_at, last_grant_any = nil, nil
  C.luact_lease_lapse()
end

return lease
