-- luact.cluster.members: the membership service on thread 1 of each node. It drives the pure
-- SWIM state machine (luact.cluster.gossip) from the loop's clock, carries its messages over the
-- node transport ("G" messages: only authenticated nodes can send them), and turns its verdicts
-- into what the runtime does: a member declared dead is dropped on every thread (calls waiting
-- on it fail with actor_unreachable, monitors fire), even while its TCP connections stay open
-- (SIGSTOP, a partition). A dial refused by a member's address (no process listens there any
-- more, or a firewall answers with resets) declares it dead at once: a killed process is
-- detected in about a quarantine period (0.2 s), not a suspicion timeout. A member that was
-- only cut off refutes it later; nothing is re-placed on that verdict alone (luact.cluster.failover
-- waits for the lease).
local gossip = require "luact.cluster.gossip"
local loop = require "luact.loop"
local clock = require "luact.clock"
local node = require "luact.node"
local logger = require "luact.logger"
local wire = require "luact.cluster.wire"
local view = require "luact.cluster.view"

local members = {}

local TICK = 0.1                 -- seconds per gossip tick (the gossip README's convention)
local REFUSAL_PROBES = { 0.25, 0.65, 1.45 }   -- after a lost connection: dial again at these
                                 -- delays (past each quarantine) to learn whether it is refused

local S = nil                    -- the running service: { g, self_addr, voters, ... }

local function random(lo, hi) return math.random(lo, hi) end

-- The member list as luact.cluster.members() shows it, sorted by address.
local function snapshot()
  local list = {}
  for _, r in ipairs(S.g:member_list()) do
    local meta = S.g:meta(r.id) or {}
    list[#list + 1] = { address = r.id, state = r.state, incarnation = r.inc,
                        voter = S.voters[r.id] == true, boot = meta.boot }
  end
  table.sort(list, function(a, b) return a.address < b.address end)
  return list
end

local function publish()
  view.publish_state(snapshot(), S.leader, S.voter_list)
end

local function member_of(id)
  local meta = S.g:meta(id) or {}
  return { address = id, state = S.g:members()[id], voter = S.voters[id] == true, boot = meta.boot }
end

local flush_scheduled = false

-- Sends what the state machine produced and acts on its events.
local function flush()
  flush_scheduled = false
  if not S then return end
  local rd = S.g:ready()
  if not rd then return end
  for _, msg in ipairs(rd.messages) do wire.to_member(msg.to, { "G", msg }) end
  local changed = false
  for _, e in ipairs(rd.events) do
    changed = true
    local m = member_of(e.id)
    if e.type ~= "update" then
      logger.info(("cluster: %s is %s"):format(e.id, e.type))
      view.publish_event(e.type, m)
    end
    if e.type == "dead" then view.publish_death(e.id) end
    for _, fn in ipairs(S.listeners) do
      local ok, err = pcall(fn, e.type, e.id)
      if not ok then logger.error("cluster membership listener failed: " .. tostring(err)) end
    end
  end
  S.g:advance(rd)
  if changed then publish() end
end

-- Flushes at the start of the loop's next I/O half: everything stepped in this turn goes out
-- together.
local function schedule_flush()
  if flush_scheduled then return end
  flush_scheduled = true
  clock.at(clock.loop_time(), flush)
end

loop.on("G", function(msg)
  if not S then return end
  S.g:step(msg[2])
  schedule_flush()
end)
loop.on("Gp", function() end)    -- a probe dial's message: nothing to do

local function on_node(what, m)
  if not S then return end
  local addr = node.name(m)
  local state = S.g:members()[addr]
  if state ~= "alive" and state ~= "suspect" then return end
  if what == "refused" then
    if S.g:declare_dead(addr) then
      logger.info(("cluster: %s refused a connection: declared dead"):format(addr))
      schedule_flush()
    end
  else
    -- the connection was lost: dial again past the quarantine and see if it is refused
    for _, d in ipairs(REFUSAL_PROBES) do
      clock.at(clock.get() + d, function()
        local st = S and S.g:members()[addr]
        if st == "alive" or st == "suspect" then wire.to_member(addr, { "Gp" }) end
      end)
    end
  end
end

-- Starts the service: opts.address (this member), opts.seeds, meta (a flat table), voters (list
-- of addresses: the seeds until a configuration is known, set_voters). Returns the gossip node.
function members.start(opts)
  math.randomseed(os.time() + os.clock() * 1e6 + (require("luact.util").getpid()))
  local g = gossip.new({ id = opts.address, seeds = opts.seeds, random = random, meta = opts.meta })
  S = { g = g, self_addr = opts.address, listeners = {}, leader = nil }
  members.set_voters(opts.voters, true)
  node.watch(on_node)
  S.ticker = clock.grid_timer(opts.tick or TICK, function()
    if not S then return false end
    S.g:tick()
    flush()
  end)
  publish()
  schedule_flush()
  return g
end

-- fn(type, address) for every membership event (the consensus service watches deaths).
function members.listen(fn)
  S.listeners[#S.listeners + 1] = fn
end

-- The Raft leader as the consensus service knows it; published to every thread.
function members.set_leader(addr)
  if not S or S.leader == addr then return end
  S.leader = addr
  view.publish_event("leader", addr and { address = addr } or nil)
  publish()
end

-- The Raft voters as this node knows them (the committed configuration it applied): marks
-- members' `voter` flags and is published to every thread (luact.cluster.voters).
function members.set_voters(list, quiet)
  if not S then return end
  local set, sorted = {}, {}
  for i, a in ipairs(list) do set[a] = true; sorted[i] = a end
  table.sort(sorted)
  S.voters, S.voter_list = set, sorted
  if not quiet then publish() end
end

-- The member list (as luact.cluster.members() shows it, with boot ids).
function members.list()
  return S and snapshot() or {}
end

-- Replaces this member's metadata (disseminated with a higher incarnation).
function members.set_meta(meta)
  if not S then return end
  S.g:set_meta(meta)
  flush()
  publish()
end

function members.state(addr)
  return S and S.g:members()[addr]
end

function members.meta(addr)
  return S and S.g:meta(addr)
end

function members.live()
  local out = {}
  if not S then return out end
  for id, st in pairs(S.g:members()) do
    if st == "alive" or st == "suspect" then out[id] = true end
  end
  return out
end

-- Graceful leave: disseminates "left" and waits (bounded) until it went out.
function members.leave(timeout)
  if not S then return end
  S.g:leave()
  publish()     -- (this node is "left" now; the state machine has no event for its own leave)
  flush()
  local deadline = clock.get() + (timeout or 2)
  while not S.g:left() and clock.get() < deadline do clock.sleep(TICK) end
end

function members.stats()
  return S and S.g:stats()
end

function members.stop()
  if not S then return end
  node.unwatch(on_node)
  if S.ticker then S.ticker:stop() end
  S = nil
end

return members
