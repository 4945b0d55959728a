-- luact.cluster.wire: how the cluster's services reach each other. A cluster message is a luact
-- table message (luact.actor.codec) sent to a thread of a node over the authenticated node
-- transport (or into a thread of this process), so nothing from an unauthenticated peer can
-- reach the state machines. Members are named by their address "ip:port" (the node's machine
-- id is derived from it); the services live on thread 1 of each node.
local codec = require "luact.actor.codec"
local loop = require "luact.loop"
local host = require "luact.actor.host"
local node = require "luact.node"

local wire = {}

wire.stats = { sent = 0, unsent = 0 }

local machine_cache = {}

-- The machine id of a member address (cached: addresses are few and fixed).
function wire.machine(addr)
  local m = machine_cache[addr]
  if not m then
    m = node.machine_of(addr)
    machine_cache[addr] = m
  end
  return m
end

-- Sends `msg` (a table whose first element is its kind) to thread `tid` of machine `m`; true
-- when it was queued. Failures (the node is unreachable or in quarantine, a full queue) are
-- counted, not raised: the protocols on top (SWIM, Raft, the feed) retransmit.
function wire.send(m, tid, msg)
  local ok, p, len = pcall(codec.encode, msg, "cluster message", 2)
  if not ok then
    wire.stats.unsent = wire.stats.unsent + 1
    return false
  end
  local rc
  if m == host.MACHINE then rc = loop.send_bytes(tid, p, len) else rc = node.send_bytes(m, tid, p, len) end
  if rc ~= 0 then
    wire.stats.unsent = wire.stats.unsent + 1
    return false
  end
  wire.stats.sent = wire.stats.sent + 1
  return true
end

-- Sends `msg` to the cluster service (thread 1) of the member at `addr`.
function wire.to_member(addr, msg)
  return wire.send(wire.machine(addr), 1, msg)
end

-- Sends `msg` to every thread of this process but the calling one.
function wire.to_other_threads(msg, n_core, me)
  for tid = 1, n_core do
    if tid ~= me then wire.send(host.MACHINE, tid, msg) end
  end
end

return wire
