-- luact.cluster: the public face of the cluster (`luact.cluster`), and its start on thread 1.
-- `luact.start({ address =, secret =, seeds = { "ip:port", ... }, datadir = })` makes a node a
-- member: the seeds are the first Raft voters; voters are added and removed at runtime
-- (add_voter, remove_voter: any member with a datadir can vote). Every node joins SWIM
-- membership through the seeds and holds a replica of the registry. members(), voters(),
-- leader() and events() answer on every thread of every node (thread 1 runs the services and
-- publishes to the others: luact.cluster.view).
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
local voters = require "luact.cluster.voters"

local cluster = {}

local GUARD_SWEEP = 1.0        -- the leader looks for guards of dead nodes this often
local LEADERLESS = 3.0         -- a voter that heard from no leader this long follows the feed

local S = nil                  -- thread 1 of a member: { self_addr, boot, ... }


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
  if consensus.has_voter(S.self_addr) then
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

-- luact.cluster.voters(), add_voter(addr [, timeout]), remove_voter(addr [, timeout]): see
-- luact.cluster.voters (the module).
cluster.voters = voters.voters
cluster.add_voter = voters.add_voter
cluster.remove_voter = voters.remove_voter

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
  local seeds = {}
  local seed_set = {}
  for _, v in ipairs(opts.seeds) do
    if not seed_set[v] then seed_set[v] = true; seeds[#seeds + 1] = v end
  end
  table.sort(seeds)
  local self_addr = opts.address
  local has_raft = opts.datadir ~= nil        -- runs Raft: a voter, or may become one
  local process = util.uuid()      -- unique across machines and restarts
  local boot = process .. ".0"
  S = { self_addr = self_addr, boot = boot, process = process, voters = seeds }
  -- this node applies its own Raft log while it is a voter (in the configuration its registry
  -- applied and in its Raft node's), its storage not recovering; else it follows the feed
  -- (and hears from a leader: a voter removed while it was down hears from none, and would
  -- otherwise keep its stale registry; an election's pause is shorter than LEADERLESS)
  local last_led = clock.get()
  local function in_log()
    if not consensus.running() or consensus.recovering() or not consensus.has_voter(self_addr) then
      return false
    end
    local now = clock.get()
    if consensus.leader() ~= nil then last_led = now
    elseif now - last_led > LEADERLESS then return false end
    local v = replica.voters()
    if v == nil then return true end
    for _, a in ipairs(v) do if a == self_addr then return true end end
    return false
  end
  local function leader()
    if consensus.is_leader() then return self_addr end
    if replica.following() then return replica.leader_seen() or consensus.leader() end
    return consensus.leader()
  end
  local function publish_leader() members.set_leader(leader()) end
  requests.start({ self_addr = self_addr, boot = boot, leader = leader })
  members.start({ address = self_addr, seeds = seeds, voters = seeds,
                  meta = { boot = boot, raft = has_raft or nil }, tick = opts.gossip_tick })
  local function my_boot() return S.boot end
  activations.start({ self_addr = self_addr, boot = my_boot, state = replica.state, members = members,
                      on_condemned = function()
                        S.rebirths = (S.rebirths or 0) + 1
                        S.boot = S.process .. "." .. S.rebirths
                        logger.warn(("cluster: this node was given up for dead; it hosts again as %s"):format(S.boot))
                        members.set_meta({ boot = S.boot, raft = has_raft or nil })
                      end })
  replica.start({ self_addr = self_addr, source = consensus, voters = seeds, in_log = in_log,
                  live = members.live, on_leader = publish_leader, max_frame = opts.max_frame,
                  snapshot_entries = opts.snapshot_entries,
                  on_conf = function(v) members.set_voters(v) end,
                  on_mode = publish_leader,
                  on_applied = function(R) activations.sync(R:take_touched()) end })
  lease.start({ self_addr = self_addr, boot = my_boot, leader = leader,
                may_grant = function(addr, b)
                  return type(b) == "string" and not replica.state().condemned[b] and failover.still_there(addr, b)
                end })
  failover.start({ members = members, state = replica.state })
  if has_raft then
    -- the seeds found a new cluster together; any other node waits to be added
    consensus.start({ self_addr = self_addr, voters = seed_set[self_addr] and seeds or {},
                      datadir = opts.datadir,
                      on_leader = publish_leader, fsync = opts.fsync, tick = opts.raft_tick,
                      snapshot_entries = opts.snapshot_entries, max_frame = opts.max_frame })
  end
  replica.ready()
  voters.start({ self_addr = self_addr, seeds = seeds, boot = my_boot,
                 replace_dead_voters = opts.replace_dead_voters })
  members.listen(function(tp)
    if tp == "dead" or tp == "leave" or tp == "join" then sweep_guards() end
  end)
  S.sweeper = clock.grid_timer(GUARD_SWEEP, function()
    if not S then return false end
    sweep_guards()
  end)
  logger.info(("cluster: %s started as a %s (seeds: %s)"):format(self_addr,
    seed_set[self_addr] and "seed" or has_raft and "member with a datadir (it votes once added)" or "member",
    table.concat(seeds, ", ")))
end

-- This node's boot id (unique per start of a node; guards carry it), on any thread.
function cluster.boot_of_node()
  return (activations.identity())
end

-- Stops the services (luact.stop) and forgets the view (every thread).
function cluster.reset()
  if S then
    if S.sweeper then S.sweeper:stop() end
    voters.stop()
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
