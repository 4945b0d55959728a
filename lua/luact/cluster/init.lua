-- luact.cluster: the public face of the cluster (`luact.cluster`), and its start on thread 1.
-- `luact.start({ address =, secret =, seeds = { "ip:port", ... }, datadir = })` makes a node a
-- member: the seeds are the Raft voters (a node whose address is among them votes and keeps
-- the registry's log in datadir); every node joins SWIM membership through them and holds a
-- replica of the registry. members(), leader() and events() answer on every thread of every
-- node (thread 1 runs the services and publishes to the others: luact.cluster.view).
local view = require "luact.cluster.view"
local members = require "luact.cluster.members"
local replica = require "luact.cluster.replica"
local consensus = require "luact.cluster.consensus"
local requests = require "luact.cluster.requests"
local lease = require "luact.cluster.lease"
local failover = require "luact.cluster.failover"
local activations = require "luact.cluster.activations"
local clock = require "luact.clock"
local tentacle = require "luact.tentacle"
local logger = require "luact.logger"
local thread = require "luact.thread"
local util = require "luact.util"

local cluster = {}

local GUARD_SWEEP = 1.0        -- the leader looks for guards of dead nodes this often

local S = nil                  -- thread 1 of a member: { self_addr, voter, boot, ... }

local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return c
end

-- luact.cluster.members() -> { { address =, state = "alive"|"suspect"|"dead"|"left",
-- voter =, incarnation = }, ... } sorted by address, this node included; {} outside a cluster.
function cluster.members()
  local out = copy(view.members)
  for _, m in ipairs(out) do m.boot = nil end
  return out
end

-- luact.cluster.leader() -> the Raft leader's address, or nil while there is none (or no cluster).
function cluster.leader()
  return view.leader
end

-- luact.cluster.events() -> a stream event emitting (type, member) with type one of join,
-- alive, suspect, dead, leave (member = { address =, state =, voter = }) and leader (member =
-- { address = } of the new leader, or nil while there is none).
function cluster.events()
  return view.events()
end

-- luact.cluster.self() -> this node's address when it is a cluster member, else nil.
function cluster.self()
  return view.active and (thread.opts or {}).address or nil
end

local function leave_here(timeout)
  if not S then return false end
  timeout = timeout or 5
  local deadline = clock.get() + timeout
  -- hand this node's virtual actors over first: calls by name wait for the new activations
  view.announce_moves(members.live())
  clock.sleep(0.05)
  local moved, why = failover.move_out(S.self_addr, S.boot, activations.handoff, deadline)
  if not moved and why then logger.warn("cluster: leaving without moving its actors: " .. tostring(why)) end
  if S.voter then
    consensus.step_down(members.live(), math.max(deadline - clock.get(), 0.1))
    consensus.retire()
  end
  members.leave(math.max(deadline - clock.get(), 0.1))
  lease.lapse()
  return true
end

-- luact.cluster.leave([timeout]): leaves gracefully: a leader first hands leadership to another
-- voter, then the node announces it is leaving (others see `leave`, never `dead`, and drop its
-- guards). Returns true once announced. The process keeps running; stop it with luact.stop.
function cluster.leave(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout <= 0) then
    error("bad 'timeout' argument to luact.cluster.leave (positive number expected)", 2)
  end
  if not view.active and thread.id ~= 1 then return false end
  if thread.id == 1 then return leave_here(timeout) end
  return requests.call("leave", timeout or 5, (timeout or 5) + 1, "luact.cluster.leave")
end
requests.local_ops.leave = function(timeout) return leave_here(timeout) end
requests.local_ops.local_get = function(k) return replica.state():get(k) end

-- The leader drops the guards of nodes that are dead, left, or alive under a new boot id
-- (restarted: the guards belonged to the previous process).
local sweeping = {}
local function sweep_guards()
  if not S or not consensus.is_leader() then return end
  for owner, addr in pairs(replica.state():guard_owners()) do
    local st = members.state(addr)
    local meta = members.meta(addr)
    local gone = st == "dead" or st == "left" or
                 ((st == "alive" or st == "suspect") and meta and meta.boot and not failover.same_or_newer(owner, meta.boot))
    if gone and not sweeping[owner] then
      sweeping[owner] = true
      tentacle(function()
        local ok, err = pcall(requests.run, "w", { op = "drop_owner", owner = owner }, clock.get() + 5, "guard sweep")
        sweeping[owner] = nil
        if ok then
          logger.info(("cluster: dropped the guards of %s (%s)"):format(addr, st or "unknown"))
        else
          logger.warn("cluster: dropping guards failed: " .. tostring(err))
        end
      end)
    end
  end
end

-- Starts the cluster services on thread 1 (called by luact.start; opts already checked).
function cluster.start(opts)
  local voters = {}
  local voter_set = {}
  for _, v in ipairs(opts.seeds) do
    if not voter_set[v] then voter_set[v] = true; voters[#voters + 1] = v end
  end
  table.sort(voters)
  local self_addr = opts.address
  local voter = voter_set[self_addr] == true
  local process = util.uuid()      -- unique across machines and restarts
  local boot = process .. ".0"
  S = { self_addr = self_addr, voter = voter, boot = boot, process = process, voters = voters }
  local function leader()
    if voter then return consensus.leader() end
    return replica.leader_seen()
  end
  requests.start({ self_addr = self_addr, voter = voter, boot = boot, leader = leader })
  members.start({ address = self_addr, seeds = voters, voters = voter_set,
                  meta = { boot = boot, voter = voter }, tick = opts.gossip_tick })
  local function my_boot() return S.boot end
  activations.start({ self_addr = self_addr, boot = my_boot, state = replica.state, members = members,
                      on_condemned = function()
                        S.rebirths = (S.rebirths or 0) + 1
                        S.boot = S.process .. "." .. S.rebirths
                        logger.warn(("cluster: this node was given up for dead; it hosts again as %s"):format(S.boot))
                        members.set_meta({ boot = S.boot, voter = voter })
                      end })
  replica.start({ self_addr = self_addr, voter = voter, source = consensus, voters = voters,
                  live = members.live, on_leader = members.set_leader, max_frame = opts.max_frame,
                  snapshot_entries = opts.snapshot_entries,
                  on_applied = function(R) activations.sync(R:take_touched()) end })
  lease.start({ self_addr = self_addr, boot = my_boot, leader = leader,
                may_grant = function(addr, b)
                  return type(b) == "string" and not replica.state().condemned[b] and failover.still_there(addr, b)
                end })
  failover.start({ members = members, state = replica.state })
  if voter then
    consensus.start({ self_addr = self_addr, voters = voters, datadir = opts.datadir,
                      on_leader = members.set_leader, fsync = opts.fsync, tick = opts.raft_tick,
                      snapshot_entries = opts.snapshot_entries, max_frame = opts.max_frame })
  end
  members.listen(function(tp)
    if tp == "dead" or tp == "leave" or tp == "join" then sweep_guards() end
  end)
  S.sweeper = clock.timer(GUARD_SWEEP, function()
    if not S then return false end
    sweep_guards()
  end)
  logger.info(("cluster: %s started as a %s (voters: %s)"):format(self_addr, voter and "voter" or "follower",
    table.concat(voters, ", ")))
end

-- This node's boot id (unique per start of a node; guards carry it), on any thread.
function cluster.boot_of_node()
  return (activations.identity())
end

-- Stops the services (luact.stop) and forgets the view (every thread).
function cluster.reset()
  if S then
    if S.sweeper then S.sweeper:stop() end
    failover.stop()
    lease.stop()
    activations.stop()
    consensus.stop()
    replica.reset()
    members.stop()
    requests.stop()
    S = nil
  end
  sweeping = {}
  view.reset()
end

return cluster
