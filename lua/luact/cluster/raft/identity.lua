-- luact.cluster.raft.identity: who a voter's storage is, and what a voter whose storage lost
-- what it acknowledged may do. Owns the storage identity (`sid`, made when the storage was
-- created), the cluster id (`cid`, made by the first leader), the "recovering" state (no
-- votes, no campaigns, acknowledgements that do not count toward a quorum) and its end, on
-- both sides: the follower's and the leader's view of each peer. Pure, like the rest of
-- raft/: it reads no clock, and its ids come from the storage. See README.md, "Identity".

local M = {}

local function noop() end

-- ticks a recovering node waits after it starts before it may vote again: a candidate that
-- collected its vote before the storage was lost has given up that candidacy by then
-- (a candidacy lasts at most 2 * election_ticks - 1 ticks)
local function hold_ticks(n) return 2 * n.election_ticks end

-- `st`: the identity the storage loaded (nil: a storage without identities; the node then acts
-- as before identities existed and its messages carry none)
function M.init(n, st, log)
  n.log_fn = log or noop
  n.id_dirty = false
  if not st then return end
  n.sid, n.cid, n.recovering = st.sid, st.cid, st.recovering == true
  n.forms = {}
  for i, f in ipairs(st.forms or {}) do n.forms[i] = f end
  if n.recovering then
    n.log_fn("warn", ("raft: %s starts as a recovering member (storage %s): it does not vote, "
      .. "campaign or count toward a quorum until it has caught up with a leader"):format(
      tostring(n.id), n.sid))
  end
end

function M.identity(n)
  local forms = {}
  for i, f in ipairs(n.forms) do forms[i] = f end
  return { sid = n.sid, cid = n.cid, recovering = n.recovering, forms = forms }
end

-- every message names its sender's storage and cluster; a recovering sender says so
function M.stamp(n, m)
  if not n.sid then return end
  m.sid, m.cid = n.sid, n.cid
  if n.recovering then m.rec = true end
end

local function set_recovering(n, why)
  n.recovering, n.id_dirty = true, true
  n.log_fn("warn", ("raft: %s %s: it rejoins as a recovering member and does not vote, campaign "
    .. "or count toward a quorum until it has caught up with a leader"):format(tostring(n.id), why))
end

-- the founding elections this storage voted in (the clusters they would found), newest last:
-- a cluster founded by one of them did not exist before this storage did
local MAX_FORMS = 16
local function add_form(n, form)
  for _, f in ipairs(n.forms) do if f == form then return end end
  if #n.forms >= MAX_FORMS then table.remove(n.forms, 1) end
  n.forms[#n.forms + 1] = form
  n.id_dirty = true
end

local function voted_to_found(n, cid)
  for _, f in ipairs(n.forms) do if f == cid then return true end end
  return false
end

-- a node whose storage is new (no cluster id yet) learns from any message carrying one that a
-- cluster exists. If that cluster was founded by an election it voted in, it is a founding
-- member; otherwise it may have been a member before, with a storage that has since been wiped:
-- it recovers. So does a node that is not a voter in its own configuration (one started with
-- no peers, hearing from a leader that is adding it): nothing tells a new node from a voter
-- whose storage was wiped, so it must not vote before it has caught up either. Returns true if
-- the node has just begun recovering.
function M.on_message(n, m)
  if not n.sid or n.cid ~= nil or m.cid == nil then return end
  n.cid, n.id_dirty = m.cid, true
  if voted_to_found(n, m.cid) then return false end
  if n.is_voter[n.id] then
    set_recovering(n, ("has a new storage (%s) but cluster %s already exists"):format(n.sid, m.cid))
  else
    n.recovering, n.id_dirty = true, true
    n.log_fn("info", ("raft: %s (storage %s) is new to cluster %s: it copies the log as a learner "
      .. "and neither votes nor counts toward a quorum until it has caught up with a leader"):format(
      tostring(n.id), n.sid, m.cid))
  end
  return true
end

-- may this node grant the (pre-)vote request m, as far as identities go?
function M.may_vote(n, m)
  if n.recovering then return false end
  if not n.sid or m.sid == nil then return true end
  if n.cid == nil then
    -- a new storage takes part only in the first election of a new cluster
    return m.cid == nil and type(m.form) == "string"
  end
  -- a member never helps a new storage found another cluster over this one
  return m.cid ~= nil
end

-- a real vote was granted to m
function M.on_grant(n, m)
  if n.sid and n.cid == nil then add_form(n, m.form) end
end

-- a candidate whose storage is new proposes the id of the cluster it would found
function M.form_for(n, term)
  if n.sid and n.cid == nil then return n.sid .. "@" .. term end
  return nil
end

function M.on_become_candidate(n)
  if n.sid and n.cid == nil then add_form(n, M.form_for(n, n.term)) end
end

function M.on_become_leader(n)
  if n.sid and n.cid == nil then
    n.cid, n.id_dirty = M.form_for(n, n.term), true
    n.log_fn("info", ("raft: %s founded cluster %s"):format(tostring(n.id), n.cid))
  end
end

function M.promotable(n) return not n.recovering end

---------------------------------------------------------------------------------------------
-- the leader's view of a peer
---------------------------------------------------------------------------------------------

-- a response m from a peer whose progress is pr: follows the peer's storage identity. Returns
-- false if m comes from a storage the peer no longer has (drop it).
function M.observe(n, m, pr)
  local sid = m.sid
  if sid ~= nil then
    if pr.old_sids and pr.old_sids[sid] then return false end
    if pr.sid ~= nil and pr.sid ~= sid then
      -- a new storage behind the same id: nothing it acknowledged before holds any more
      pr.old_sids = pr.old_sids or {}
      pr.old_sids[pr.sid] = true
      n.log_fn("warn", ("raft: voter %s has a new storage (%s, was %s): its progress is reset and "
        .. "it does not count toward a quorum until it has caught up"):format(
        tostring(m.from), sid, pr.sid))
      pr.match, pr.next = 0, n.log:last_index() + 1
      pr:become_probe()
      pr.next = n.log:last_index() + 1
      pr.rec, pr.rejoin = true, nil
    end
    pr.sid = sid
  end
  if m.rec and not pr.rec then pr.rec, pr.rejoin = true, nil end
  if pr.rec and not pr.rejoin then
    -- it is caught up once it holds an entry of this term appended after now, which this
    -- leader committed without it: append one, so that this happens without client traffic
    pr.rejoin = n.log:last_index() + 1
    n:append_entry({ index = pr.rejoin, term = n.term })
  end
  if pr.rec and not m.rec and pr.match >= pr.rejoin and n.commit >= pr.rejoin then
    pr.rec, pr.rejoin = false, nil
  end
  return true
end

-- does this peer's log count toward quorums (commit, ReadIndex, check quorum)?
function M.counts(pr) return not pr.rec end

-- the storage id to confirm to a recovering peer as caught up, or nil
function M.ok_for(n, pr)
  if pr.rec and pr.rejoin and pr.match >= pr.rejoin and n.commit >= pr.rejoin then
    return pr.sid
  end
  return nil
end

---------------------------------------------------------------------------------------------
-- the follower's side

-- A heartbeat's commit is min(the leader's commit, what it knows this follower's log to match);
-- it carries `to_sid`, the storage that match was learned from. From another storage (this
-- node's was lost and it is new), the match says nothing about this log: the commit is not
-- taken (appends are safe: their entries are checked against the log before commit moves).
function M.heartbeat_is_ours(n, m)
  return not n.sid or m.to_sid == nil or m.to_sid == n.sid
end

-- the recovering node's side
---------------------------------------------------------------------------------------------

-- m: an append or heartbeat from the leader of this term, already handled. The leader says
-- `ok = <our sid>` once our log holds an entry of its term that it committed without us; past
-- the hold, we are a full voter again, with our vote for this term given to that leader.
function M.maybe_caught_up(n, m)
  if not n.recovering or m.ok == nil or m.ok ~= n.sid or m.from ~= n.lead then return end
  if n.ticks < hold_ticks(n) then return end
  n.recovering, n.id_dirty = false, true
  if n.vote == nil then n.vote, n.hs_dirty = m.from, true end
  n.log_fn("info", ("raft: %s has caught up with leader %s (term %d, index %d): it votes and "
    .. "counts toward quorums again"):format(tostring(n.id), tostring(m.from), n.term,
    n.log:last_index()))
end

return M
