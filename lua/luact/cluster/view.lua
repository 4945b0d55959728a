-- luact.cluster.view: what every thread of a node knows of the cluster. Thread 1 runs the
-- services (membership, consensus) and publishes to each thread: the member list and the Raft
-- leader ("CS"), membership events ("CE"), and deaths ("CD": the thread drops its connections
-- to the dead node, so calls waiting on it fail at once and its monitors fire, as when a
-- connection is lost). luact.cluster reads this view, so members() and leader() answer on any
-- thread without a message.
local loop = require "luact.loop"
local thread = require "luact.thread"
local event = require "luact.event"
local node = require "luact.node"
local call = require "luact.actor.call"
local wire = require "luact.cluster.wire"
local metrics = require "luact.metrics"

local view = {
  members = {},       -- { { address =, state =, voter =, incarnation = }, ... } sorted by address
  leader = nil,       -- "ip:port" of the Raft leader, or nil
  voters = {},        -- the Raft voters' addresses (the configuration thread 1 applied), sorted
  active = false,     -- true while this node is a cluster member
  dead_machines = {}, -- machine id -> true while the member there is dead or left (calls by
                      -- name wait for its activations to move instead of sending to it)
  turbulent_until = 0,-- loop time until which calls by name take the careful path (retrying
                      -- what did not run): TURBULENCE seconds after any membership change
}
local TURBULENCE = 10
local clock = require "luact.clock"
local function turbulence()
  view.turbulent_until = clock.get() + TURBULENCE
end

local events_ev = nil -- this thread's stream of membership events (made on first use)
local EVENTS_PENDING = 1024

-- luact.cluster.events(): a stream event emitting (type, member) on this thread.
function view.events()
  if not events_ev then events_ev = event.new({ max_pending = EVENTS_PENDING }) end
  return events_ev
end

local function apply_state(members, leader, voters)
  -- a node that just joined knows nothing of recent changes: calls by name start careful
  if not view.active then turbulence() end
  view.members, view.leader, view.active = members, leader, true
  view.voters = voters or view.voters
end

local function apply_event(tp, member)
  turbulence()   -- also a new leader: leases may have run out meanwhile
  local m = member and member.address and wire.machine(member.address)
  if m then
    if tp == "join" or tp == "alive" then view.dead_machines[m] = nil
    elseif tp == "leave" then view.dead_machines[m] = true end
  end
  if events_ev then events_ev:emit(tp, member) end
end

local function apply_death(addr)
  turbulence()
  local m = wire.machine(addr)
  if not m then return end
  view.dead_machines[m] = true
  node.drop(m)
  call.machine_lost(m, false, "the cluster declared it dead")  -- also with no connection open
end

-- "CT": another node is about to move actors (a graceful leave): calls by name take the
-- careful path for a while; thread 1 passes it on to the other threads.
loop.on("CT", function()
  turbulence()
  if thread.id == 1 then wire.to_other_threads({ "CT" }, thread.n_core, 1) end
end)

-- For thread 1 of a node about to move its actors: every thread of every live member (and of
-- this node) takes the careful path.
function view.announce_moves(addresses)
  for addr in pairs(addresses) do wire.to_member(addr, { "CT" }) end
end

loop.on("CS", function(msg) apply_state(msg[2], msg[3], msg[4]) end)
loop.on("CE", function(msg) apply_event(msg[2], msg[3]) end)
loop.on("CD", function(msg) apply_death(msg[2]) end)

-- For thread 1: publish to this thread and every other one.
function view.publish_state(members, leader, voters)
  apply_state(members, leader, voters)
  wire.to_other_threads({ "CS", members, leader, voters }, thread.n_core, thread.id)
end

local last_leader = nil   -- (thread 1) the last leader known, for luact_raft_leader_changes_total

function view.publish_event(tp, member)
  -- counted where it happens (thread 1 publishes each event once): a suspicion, a new leader
  if tp == "suspect" then metrics.cluster_count("swim_suspicions") end
  if tp == "leader" and member and member.address ~= last_leader then
    last_leader = member.address
    metrics.cluster_count("raft_leader_changes")
  end
  apply_event(tp, member)
  wire.to_other_threads({ "CE", tp, member }, thread.n_core, thread.id)
end

function view.publish_death(addr)
  apply_death(addr)
  wire.to_other_threads({ "CD", addr }, thread.n_core, thread.id)
end

-- Forgets everything (between two runs of luact.start in one VM).
function view.reset()
  view.members, view.leader, view.active, view.voters = {}, nil, false, {}
  last_leader = nil
  view.dead_machines = {}
  view.turbulent_until = 0
  events_ev = nil
end

return view
