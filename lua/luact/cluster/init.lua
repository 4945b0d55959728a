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
local exception = require "luact.exception"

local cluster = {}

local GUARD_SWEEP = 1.0        -- the leader looks for guards of dead nodes this often

local S = nil                  -- thread 1 of a member: { self_addr, boot, ... }

if not exception.defined("voter_change_refused") then
  exception.define("voter_change_refused", { recoverable = false,
    message = "the voter change was refused" })
end

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

-- luact.cluster.voters() -> the Raft voters' addresses, sorted: the configuration this node's
-- registry replica has applied (committed); {} outside a cluster.
function cluster.voters()
  local out = {}
  for i, a in ipairs(view.voters) do out[i] = a end
  return out
end

local function set_of(list)
  local set = {}
  for _, a in ipairs(list) do set[a] = true end
  return set
end

-- thread 1 of the node where add_voter/remove_voter was called: the checks that need this
-- node's view, then the change itself on the leader. Returns { index = } or { refused = why }.
local change_seq = 0
requests.local_ops.voters = function(arg, deadline)
  local what = arg.add and "luact.cluster.add_voter" or "luact.cluster.remove_voter"
  local addr = arg.add or arg.remove
  -- the voters as a leader committed them by now (a linearizable barrier)
  requests.run("sync", nil, deadline, what)
  local voters = replica.voters() or S.voters
  local is = set_of(voters)
  if arg.add then
    if is[addr] then return { refused = addr .. " is already a voter" } end
    local st = members.state(addr)
    if st ~= "alive" then
      return { refused = ("%s is not a live member of the cluster (%s)"):format(addr, st or "unknown") }
    end
    local meta = members.meta(addr)
    if not (meta and meta.raft) then
      return { refused = addr .. " has no datadir: only a member started with a datadir can vote" }
    end
  else
    if not is[addr] then return { refused = addr .. " is not a voter" } end
    if #voters == 1 then return { refused = "removing " .. addr .. " would remove the last voter" } end
  end
  change_seq = change_seq + 1
  return (requests.run("conf", { add = arg.add, remove = arg.remove, id = S.boot .. "/" .. change_seq },
                       deadline, what))
end

-- the leader: one change at a time
local changing = nil            -- { id =, what = } of the change the leader is making
requests.leader_ops.conf = function(arg, deadline)
  if not consensus.is_leader() then return false, "not_leader" end
  local what = arg.add and ("adding " .. tostring(arg.add)) or ("removing " .. tostring(arg.remove))
  if changing and changing.id ~= arg.id then
    return true, { refused = ("another voter change is in progress (%s)"):format(changing.what) }
  end
  changing = { id = arg.id, what = what }
  local ok, index, why, refused = pcall(consensus.change, { add = arg.add, remove = arg.remove }, deadline)
  if changing and changing.id == arg.id then changing = nil end
  if not ok then error(index, 0) end
  if index then
    logger.info(("cluster: voter change committed: %s (index %d)"):format(what, index))
    return true, { index = index }, index
  end
  if refused then return true, { refused = why } end
  return false, why
end

local function check_change_args(fname, addr, timeout)
  if type(addr) ~= "string" or not addr:match("^%d+%.%d+%.%d+%.%d+:%d+$") then
    error(("bad 'addr' argument to luact.cluster.%s (\"ip:port\" expected, got %s)"):format(
      fname, type(addr) == "string" and ("%q"):format(addr) or type(addr)), 3)
  end
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout > 0 and timeout < math.huge)) then
    error(("bad 'timeout' argument to luact.cluster.%s (positive number expected)"):format(fname), 3)
  end
  if not view.active then
    error(("luact.cluster.%s: this node is not a cluster member (no 'seeds')"):format(fname), 3)
  end
end

local CHANGE_TIMEOUT = 30

local function change(kind, addr, timeout)
  local fname = kind == "add" and "add_voter" or "remove_voter"
  timeout = timeout or CHANGE_TIMEOUT
  local r = requests.call("voters", { [kind] = addr }, timeout, "luact.cluster." .. fname)
  if r.refused then
    error(exception.new("voter_change_refused", ("luact.cluster.%s(%q): %s"):format(fname, addr, r.refused)), 0)
  end
  return true
end

-- luact.cluster.add_voter(addr [, timeout]): makes the live member `addr` (started with a
-- datadir) a Raft voter: it first copies the registry's log as a learner, then the change is
-- committed. Returns true once committed (and applied on this node); raises
-- voter_change_refused (already a voter, not a live member, no datadir, another change in
-- progress) or cluster_unavailable (no leader, or it did not catch up, before the deadline).
function cluster.add_voter(addr, timeout)
  check_change_args("add_voter", addr, timeout)
  return change("add", addr, timeout)
end

-- luact.cluster.remove_voter(addr [, timeout]): removes the voter `addr` (alive or not). A
-- removed leader leads until the change is committed, then steps down.
function cluster.remove_voter(addr, timeout)
  check_change_args("remove_voter", addr, timeout)
  return change("remove", addr, timeout)
end
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
  local function in_log()
    if not consensus.running() or consensus.recovering() or not consensus.has_voter(self_addr) then
      return false
    end
    local v = replica.voters()
    return v == nil or set_of(v)[self_addr] == true
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
                  live = members.live, on_leader = publish_leader,
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
                      snapshot_entries = opts.snapshot_entries })
  end
  replica.ready()
  members.listen(function(tp)
    if tp == "dead" or tp == "leave" or tp == "join" then sweep_guards() end
  end)
  S.sweeper = clock.timer(GUARD_SWEEP, function()
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
  changing = nil
  view.reset()
end

return cluster
