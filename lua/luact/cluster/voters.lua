-- luact.cluster.voters: changing the Raft voters at runtime (luact.cluster.voters, add_voter,
-- remove_voter) and the optional autopilot that replaces dead voters. A change is checked on
-- the calling node's thread 1 against the configuration its replica applied after a
-- linearizable barrier (already a voter, a live member, has a datadir), then made by the
-- leader, one at a time cluster-wide (luact.cluster.consensus.change: the new voter first
-- copies the log as a learner). Autopilot (`replace_dead_voters = seconds`): the leader
-- replaces a voter SWIM has held dead that long by a live member with a datadir, adding the
-- new one before removing the dead one, so the cluster keeps its number of voters.
local view = require "luact.cluster.view"
local members = require "luact.cluster.members"
local replica = require "luact.cluster.replica"
local consensus = require "luact.cluster.consensus"
local requests = require "luact.cluster.requests"
local clock = require "luact.clock"
local tentacle = require "luact.tentacle"
local logger = require "luact.logger"
local exception = require "luact.exception"

local M = {}

if not exception.defined("voter_change_refused") then
  exception.define("voter_change_refused", { recoverable = false,
    message = "the voter change was refused" })
end

local S = nil                   -- thread 1 of a member: { self_addr, seeds, boot(), autopilot }

-- luact.cluster.voters() -> the Raft voters' addresses, sorted: the configuration this node's
-- registry replica has applied (committed); {} outside a cluster.
function M.voters()
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
  if not S then return { refused = "this node is not a cluster member" } end
  local what = arg.add and "luact.cluster.add_voter" or "luact.cluster.remove_voter"
  local addr = arg.add or arg.remove
  -- the voters as a leader committed them by now (a linearizable barrier)
  requests.run("sync", nil, deadline, what)
  local voters = replica.voters() or S.seeds
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
  return (requests.run("conf", { add = arg.add, remove = arg.remove, id = S.boot() .. "/" .. change_seq },
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
function M.add_voter(addr, timeout)
  check_change_args("add_voter", addr, timeout)
  return change("add", addr, timeout)
end

-- luact.cluster.remove_voter(addr [, timeout]): removes the voter `addr` (alive or not). A
-- removed leader leads until the change is committed, then steps down.
function M.remove_voter(addr, timeout)
  check_change_args("remove_voter", addr, timeout)
  return change("remove", addr, timeout)
end

---------------------------------------------------------------------------------------------
-- autopilot (the leader only)

local AUTOPILOT_EVERY = 1.0     -- seconds between two looks

local function candidate(is_voter)
  local best = nil
  for _, m in ipairs(members.list()) do
    local meta = members.meta(m.address)
    if m.state == "alive" and not is_voter[m.address] and meta and meta.raft and
       (best == nil or m.address < best) then
      best = m.address
    end
  end
  return best
end

local function autopilot_look()
  local A = S.autopilot
  if A.busy or not consensus.is_leader() then
    if not consensus.is_leader() then A.dead_since = {} end
    return
  end
  local voters = replica.voters()
  if not voters then return end
  local is_voter = set_of(voters)
  local now = clock.get()
  local seen = {}
  for _, v in ipairs(voters) do
    local st = members.state(v)
    if v ~= S.self_addr and (st == "dead" or st == "left") then
      seen[v] = true
      A.dead_since[v] = A.dead_since[v] or now
    end
  end
  for v in pairs(A.dead_since) do if not seen[v] then A.dead_since[v] = nil; A.told[v] = nil end end
  for _, v in ipairs(voters) do
    local since = A.dead_since[v]
    if since and now - since >= A.after then
      local new = candidate(is_voter)
      if not new and #voters % 2 == 1 then
        if not A.told[v] then
          A.told[v] = true
          logger.warn(("cluster: voter %s has been dead for %.0f s, but no live member with a datadir can replace it"):format(v, now - since))
        end
        return
      end
      -- an odd number of voters (3, 5): add first, then remove; an even one (an add made
      -- before, its removal not): only remove
      local add = #voters % 2 == 1
      A.busy = true
      tentacle(function()
        logger.warn(("cluster: voter %s has been dead for %.0f s: replacing it%s"):format(v, now - since,
          add and (" with " .. new) or ""))
        local ok, err = pcall(function()
          local r = add and requests.local_ops.voters({ add = new }, clock.get() + 30) or {}
          if r.refused then error(r.refused, 0) end
          r = requests.local_ops.voters({ remove = v }, clock.get() + 30)
          if r.refused then error(r.refused, 0) end
        end)
        if ok then
          logger.info(("cluster: replaced dead voter %s with %s"):format(v, new))
          if S then S.autopilot.dead_since[v] = nil end
        else
          logger.warn(("cluster: replacing dead voter %s with %s failed: %s"):format(v, new, tostring(err)))
        end
        if S then S.autopilot.busy = false end
      end)
      return
    end
  end
end

-- Starts on thread 1: opts.self_addr, opts.seeds (list), opts.boot() (this process's boot id),
-- opts.replace_dead_voters (seconds, or nil: no autopilot).
function M.start(opts)
  S = { self_addr = opts.self_addr, seeds = opts.seeds, boot = opts.boot }
  if opts.replace_dead_voters then
    S.autopilot = { after = opts.replace_dead_voters, dead_since = {}, told = {}, busy = false }
    S.autopilot.timer = clock.grid_timer(AUTOPILOT_EVERY, function()
      if not S then return false end
      autopilot_look()
    end)
  end
end

function M.stop()
  if S and S.autopilot then S.autopilot.timer:stop() end
  S = nil
  changing = nil
end

return M
