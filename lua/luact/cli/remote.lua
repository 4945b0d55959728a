-- luact.cli.remote: the questions the `luact` command asks one node, from inside a luact runtime
-- that is a node client (luact.start with `secret` and no `address`: it dials the node and
-- never listens, joins neither gossip nor Raft, and the node answers over the connection it
-- opened). What it asks: luact.inspect's questions (threads, cluster, actors, where) and the
-- registry's requests (luact.db get/set/keys as the "CQ" message a member's own threads send
-- to thread 1, which forwards them to the Raft leader). Every question waits at most the
-- session's timeout and fails with the exception the node or the transport gave.
local inspect = require "luact.inspect"
local call = require "luact.actor.call"
local host = require "luact.actor.host"
local clock = require "luact.clock"
local exception = require "luact.exception"
local wire = require "luact.cluster.wire"

local remote = {}

remote.timeout = 5

function remote.threads(addr)
  return inspect.threads({ node = addr, timeout = remote.timeout })
end

function remote.cluster(addr)
  return inspect.cluster({ node = addr, timeout = remote.timeout })
end

function remote.actors(addr, tid, after, limit)
  return inspect.actors({ node = addr, thread = tid, after = after, limit = limit, timeout = remote.timeout })
end

function remote.where(addr, name)
  return inspect.where(name, { node = addr, timeout = remote.timeout })
end

-- A registry request served by the node's thread 1 (forwarded to the leader): its result.
local function request(addr, op, arg, what)
  local m = wire.machine(addr)
  local corr = call.new_corr()
  local t = remote.timeout
  if not wire.send(m, 1, { "CQ", corr, 1, host.MACHINE, op, arg, t }) then
    exception.raise("actor_unreachable", ("cannot send to %s"):format(addr))
  end
  -- (the node gives up at its deadline and says why: cluster_unavailable; ours is a bit later)
  return (call.await(corr, m, clock.get() + t + 1, what, 1, 0, 0))
end

function remote.db_get(addr, key)
  return request(addr, "get", key, "db get")
end

function remote.db_set(addr, key, value)
  return request(addr, "w", { op = "set", k = key, v = value }, "db set")
end

function remote.db_keys(addr, prefix)
  return request(addr, "keys", prefix or "", "db keys")
end

return remote
