-- luact.observe: what luact.metrics() and luact.inspect() show of a running system. It reads,
-- never changes: this thread's actors (luact.actor.host), every thread's counters (luact.metrics),
-- and on thread 1 the cluster's state from the cluster modules (members, Raft, lease, registry),
-- which it copies into the cluster's metrics block once a second (luact.metrics.on_refresh).
-- (Counters of cluster events are bumped where they happen: luact.cluster.view, .moves.)
local lffi = require "luact.ffi"
local C = lffi.C
local metrics = require "luact.metrics"
local thread = require "luact.thread"
local view = require "luact.cluster.view"
local consensus = require "luact.cluster.consensus"
local replica = require "luact.cluster.replica"
local storage_file = require "luact.cluster.raft.storage_file"

local observe = {}

local STATES = { alive = "alive", suspect = "suspect", dead = "dead", left = "left" }

-- Activations per node of the registry (thread 1, once a second: one pass over the names
-- placed on a process, not over the idle ones), and how many names it holds.
local function activations_by_node(R)
  local by = {}
  for vid in pairs(R:hosted_names()) do
    for _, act in pairs(R.vids[vid].acts) do
      if act.node then by[act.node] = (by[act.node] or 0) + 1 end
    end
  end
  return by, R:name_count()
end

-- The cluster's gauges into block 0 (c: double*, K: slot numbers).
local function refresh_cluster(c, K)
  local members = view.members or {}
  local counts = { alive = 0, suspect = 0, dead = 0, left = 0 }
  for _, m in ipairs(members) do
    local s = STATES[m.state]
    if s then counts[s] = counts[s] + 1 end
  end
  c[K.member] = view.active and 1 or 0
  for s, n in pairs(counts) do c[K[s]] = n end
  local st = consensus.status()
  if st then
    c[K.raft_term], c[K.raft_commit_index] = st.term or 0, st.commit or 0
    c[K.raft_leader] = st.role == "leader" and 1 or 0
  end
  local R = view.active and replica.state() or nil
  if R then
    c[K.raft_applied_index] = R.applied or 0
    local by, names = activations_by_node(R)
    local self_addr = (thread.opts or {}).address
    c[K.activations] = self_addr and by[self_addr] or 0
    c[K.registered_names] = names
    local lines = {}
    for addr, n in pairs(by) do lines[#lines + 1] = addr .. "\t" .. n end
    local text = table.concat(lines, "\n")
    C.luact_metrics_set_activations(text, #text)
  end
end
metrics.on_refresh(refresh_cluster)

-- The Raft storage's fsyncs, timed on the pool thread that did them and reported here, on
-- thread 1, when their job comes back (metrics.cluster_observe keeps to thread 1, the cluster
-- block's only writer)
storage_file.on_fsync = function(seconds) metrics.cluster_observe("raft_fsync", seconds) end

-- luact.metrics([format]): see luact.metrics.read.
function observe.metrics(format)
  return metrics.read(thread.n_core or 1, format)
end

return observe
