-- luact.cluster.raft.membership: changing the voters, one at a time, on the leader. Owns the
-- learners (peers the leader replicates to without counting them: a voter being added while it
-- catches up, and a removed voter until it has its removal), the checks of propose_conf and
-- the list of peers a leader sends to. The configuration itself lives in the log (conf
-- entries) and snapshots; a node uses the latest one in its log, committed or not (init.lua's
-- recompute_conf). Pure, like the rest of raft/. See README.md, "Membership change".

local Progress = require "luact.cluster.raft.progress"
local message = require "luact.cluster.raft.message"
local identity = require "luact.cluster.raft.identity"

local is_id = message.is_id

local M = {}

-- a learner nobody asked about for this many election timeouts is dropped (an add_voter that
-- gave up, a target that died)
local IDLE_TIMEOUTS = 10

local function copy_list(t)
  local out = {}
  for i = 1, #t do out[i] = t[i] end
  return out
end

-- who a leader sends appends and heartbeats to: the voters and the learners, itself excepted,
-- in configuration order then learner order (deterministic)
function M.refresh_targets(n)
  local out, seen = {}, {}
  for _, id in ipairs(n.voters) do
    if id ~= n.id and not seen[id] then out[#out + 1] = id; seen[id] = true end
  end
  for _, id in ipairs(n.learner_ids) do
    if id ~= n.id and not seen[id] then out[#out + 1] = id; seen[id] = true end
  end
  n.targets = out
end

function M.init(n)
  n.learners, n.learner_ids = {}, {}
  n.targets = {}
end

-- learners are a leader's own business: a new leader starts without any
function M.reset(n)
  n.learners, n.learner_ids = {}, {}
end

local function drop_learner(n, id)
  n.learners[id] = nil
  for i, x in ipairs(n.learner_ids) do
    if x == id then table.remove(n.learner_ids, i); break end
  end
  if not n.is_voter[id] then n.prs[id] = nil end
  M.refresh_targets(n)
end

local function add_learner(n, id, leaving)
  local l = n.learners[id]
  if not l then
    l = {}
    n.learners[id] = l
    n.learner_ids[#n.learner_ids + 1] = id
    if not n.prs[id] then n.prs[id] = Progress.new(n.log:last_index() + 1) end
    M.refresh_targets(n)
  end
  l.leaving, l.left, l.asked = leaving, nil, n.ticks
  return l
end

-- the leader's progress table after a configuration change: learners keep theirs; a learner
-- that became a voter is no longer a learner
function M.on_voters(n, prs)
  if prs then
    for _, id in ipairs(n.learner_ids) do
      if not prs[id] then prs[id] = n.prs[id] end
    end
  end
  local keep = {}
  for _, id in ipairs(n.learner_ids) do
    if n.is_voter[id] then n.learners[id] = nil else keep[#keep + 1] = id end
  end
  n.learner_ids = keep
end

-- a learner is ready to vote when its log holds all but at most one append's worth of what is
-- committed, and (identities) it is not recovering a lost storage any more
local function caught_up(n, id)
  local pr = n.prs[id]
  return pr ~= nil and pr.match > 0 and pr.match + n.max_append >= n.commit and
         identity.counts(pr)
end

-- leader, every tick: a removed voter stays a learner for an election timeout after its removal
-- is committed (its appends and heartbeats carry the commit), then is dropped; so is a learner
-- being added that nobody asked about for a while
function M.tick(n)
  local i = 1
  while i <= #n.learner_ids do
    local id = n.learner_ids[i]
    local l = n.learners[id]
    local drop = false
    if l.leaving then
      if n.commit >= l.leaving then
        l.left = (l.left or n.election_ticks) - 1
        drop = l.left <= 0
      end
    elseif n.ticks - l.asked > IDLE_TIMEOUTS * n.election_ticks then
      drop = true
    end
    if drop then drop_learner(n, id) else i = i + 1 end
  end
end

-- change = { add = id } or { remove = id }: one voter at a time. See init.lua's propose_conf.
function M.propose_conf(n, change)
  if type(change) ~= "table" or (not is_id(change.add) and not is_id(change.remove)) then
    error("bad 'change' argument ({ add = id } or { remove = id } expected)", 3)
  end
  if n.role ~= "leader" then return nil, "not_leader" end
  if n.lead_transferee ~= nil then return nil, "transferring" end
  if n.pending_conf_index > n.commit then return nil, "conf_pending" end
  if n.log:term(n.commit) ~= n.term then return nil, "not_ready" end
  local voters = copy_list(n.voters)
  local idx = n.log:last_index() + 1
  if change.add ~= nil then
    local id = change.add
    if n.is_voter[id] then return nil, "already_member" end
    local l = n.learners[id]
    if not l or l.leaving then
      -- first it copies the log as a learner: it counts toward no quorum meanwhile
      add_learner(n, id, nil)
      n:send_append(id, true)
      return nil, "catching_up"
    end
    l.asked = n.ticks
    if not caught_up(n, id) then return nil, "catching_up" end
    voters[#voters + 1] = id
  else
    local id = change.remove
    if not n.is_voter[id] then return nil, "not_member" end
    if #voters == 1 then return nil, "last_voter" end
    for i = 1, #voters do
      if voters[i] == id then table.remove(voters, i); break end
    end
    -- it keeps getting the log until it holds its own removal, so that it knows it was removed
    if id ~= n.id then add_learner(n, id, idx) end
  end
  n.pending_conf_index = idx
  n:append_entry({ index = idx, term = n.term, conf = { voters = voters } })
  return idx
end

-- May this node campaign, as far as the configuration goes? A voter may. So may a node that
-- an uncommitted entry of its log removes (it was a voter in the configuration before it): it
-- may hold entries nobody else does, and be needed to elect anyone until that entry commits
-- (Raft thesis 4.2.2); as leader it counts itself toward nothing and steps down once its
-- removal commits. (Found by the simulation: the leader appends a removal, loses its storage,
-- and the removed node, the only one holding the latest entries, refuses every candidate.)
function M.may_campaign(n)
  if n.is_voter[n.id] then return true end
  if n.conf_index <= n.commit or n.conf_index <= n.log.offset then return false end
  local prev = n:conf_at(n.conf_index - 1)
  for _, id in ipairs(prev.voters) do if id == n.id then return true end end
  return false
end

function M.learner_list(n)
  return copy_list(n.learner_ids)
end

return M
