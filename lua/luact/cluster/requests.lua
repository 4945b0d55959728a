-- luact.cluster.requests: registry reads and writes, served on thread 1 of every node. A write
-- is proposed to Raft on the leader and answered once applied; a linearizable read takes a
-- ReadIndex barrier on the leader and is answered from the leader's registry once it applied
-- that index. Any other node (or thread) forwards the request to where it can be served as a
-- "CQ" message { "CQ", corr, reply_thread, reply_machine, op, arg, seconds_left }, answered with
-- a reply message (the same "r" message actor calls use, so the caller waits with call.await
-- and fails at once with actor_unreachable if the connection to the leader is lost). A request
-- that fails for want of a leader is retried until its deadline, with the same request id: the
-- registry applies a command at most once however often it is retried, and answers a retry
-- with the first result. Past the deadline the caller gets `cluster_unavailable`.
local loop = require "luact.loop"
local thread = require "luact.thread"
local clock = require "luact.clock"
local exception = require "luact.exception"
local host = require "luact.actor.host"
local call = require "luact.actor.call"
local tentacle = require "luact.tentacle"
local registry = require "luact.cluster.registry"
local wire = require "luact.cluster.wire"
local replica = require "luact.cluster.replica"
local consensus = require "luact.cluster.consensus"

local requests = {}

local RETRY_PAUSE = 0.05        -- between two tries while no leader is known or reachable
local PROPOSAL_WAIT = 1.0       -- a proposal not applied in this long is proposed again

if not exception.defined("cluster_unavailable") then
  exception.define("cluster_unavailable", { recoverable = true,
    message = "no registry leader could be reached before the deadline" })
end

local S = nil                   -- { self_addr, boot, leader = function() -> addr }

-- Operations served on this node's thread 1 itself, never forwarded (set by luact.cluster).
requests.local_ops = {}
-- Operations served by the leader itself (set by luact.cluster): f(arg, deadline) -> true,
-- result, index | false, why (not the leader: try the next one).
requests.leader_ops = {}
local next_req = 0

local function new_req()
  next_req = next_req + 1
  return S.boot .. ":" .. next_req
end

local function unavailable(what, why)
  error(exception.new("cluster_unavailable", ("%s: %s"):format(what, why or "no leader")), 0)
end

-- What a read returns, computed from the local registry.
local readers = {
  get = function(R, k) return R:get(k) end,
  keys = function(R, prefix) return R:keys(prefix) end,
  sync = function() return true end,      -- only the index: the caller's replica catches up to it
}

-- Serves op here, on the leader: true, result, index (the registry index the result reflects:
-- a node answering a request waits until its own replica applied it, so that what a caller
-- wrote, it then reads, and names it registered resolve on its node); or false, why (not the
-- leader, no quorum).
local function serve_here(op, arg, deadline)
  local lop = requests.leader_ops[op]
  if lop then return lop(arg, deadline) end
  if op == "w" then
    local data = registry.encode(arg)
    while true do
      local index, err = consensus.propose(data)
      if not index then return false, err end
      local got, result = replica.await_result(arg.req, math.min(deadline, clock.get() + PROPOSAL_WAIT))
      if got then return true, result, replica.applied() end
      if clock.get() >= deadline then return false, "timeout" end
      -- not applied yet: leadership may have moved; propose again (the request id dedups)
    end
  end
  local read = readers[op]
  if not read then return false, "bad request" end
  local index, err = consensus.read_index(deadline)
  if not index then return false, err end
  if not replica.await_index(index, deadline) then return false, "timeout" end
  return true, read(replica.state(), arg), index
end

-- Sends a request to the leader and waits for its answer: true, result, index; or false, why.
local function forward(leader, op, arg, deadline)
  local m = wire.machine(leader)
  local corr = call.new_corr()
  local left = deadline - clock.get()
  if not wire.send(m, 1, { "CQ", corr, 1, host.MACHINE, op, arg, left }) then
    return false, "unreachable"
  end
  local ok, r, index = pcall(call.await, corr, m, deadline, "cluster request", 1, 0, 0)
  if ok then return true, r, index end
  if exception.is_exception(r) then
    if r:is("actor_timeout") then return false, "timeout" end
    if r:is("cluster_unavailable") then return false, r.message end
    if r:is("actor_unreachable") then return false, "unreachable" end
  end
  error(r, 0)
end

-- Runs a request on thread 1 until it is served or `deadline` passes; returns its result and
-- the registry index it reflects, once this node's replica applied that index. op: "w" (arg: a
-- command table, given a request id here), "get" (a key), "keys" (a prefix), "sync" (nothing:
-- this node's replica catches up with the leader).
-- `leader_applied`: a write returns once the leader applied it (committed by a majority),
-- without waiting for this node's replica to apply it too (it learns the commit with the
-- leader's next message: up to a heartbeat later); for writes whose writer reads nothing back.
function requests.run(op, arg, deadline, what, leader_applied)
  if not S then unavailable(what, "this node is not a cluster member") end
  local here_only = requests.local_ops[op]
  if here_only then return here_only(arg, deadline) end
  if op == "w" and arg.req == nil then arg.req = new_req() end
  local why
  while true do
    local leader = S.leader()
    if leader == S.self_addr and consensus.running() then
      local ok, r, index = serve_here(op, arg, deadline)
      if ok then return r, index end
      why = r
    elseif leader then
      local ok, r, index = forward(leader, op, arg, deadline)
      if ok then
        if index and not leader_applied then replica.await_index(index, deadline) end
        return r, index
      end
      why = r
    else
      why = "no leader"
    end
    if clock.get() + RETRY_PAUSE >= deadline then unavailable(what, why) end
    clock.sleep(RETRY_PAUSE)
  end
end

local function send_answer(rm, rt, corr, ok, value, index)
  local msg
  if ok then msg = { "r", corr, true, 2, value, index } else msg = { "r", corr, false, 0, value } end
  wire.send(rm, rt, msg)
end

-- A request from another thread or node. On a node that is the leader it is served here;
-- elsewhere it is forwarded on (the sender may know an old leader).
loop.on("CQ", function(msg)
  local corr, rt, rm, op, arg, left = msg[2], msg[3], msg[4], msg[5], msg[6], msg[7]
  if type(corr) ~= "number" or type(left) ~= "number" then return end
  if requests.local_ops[op] and rm ~= host.MACHINE then return end   -- (leave: this node's own threads only)
  tentacle(function()
    local deadline = clock.get() + math.min(left, 60)
    local ok, r, index = pcall(requests.run, op, arg, deadline, "cluster request")
    if not ok and not exception.is_exception(r) then
      r = exception.new("actor_runtime_error", tostring(r))
    end
    send_answer(rm, rt, corr, ok, r, index)
  end)
end)

-- From any thread: runs the request on this node's thread 1 and returns its result.
function requests.call(op, arg, timeout, what)
  local deadline = clock.get() + timeout
  if thread.id == 1 then return (requests.run(op, arg, deadline, what)) end
  local corr = call.new_corr()
  if not wire.send(host.MACHINE, 1, { "CQ", corr, thread.id, host.MACHINE, op, arg, timeout }) then
    unavailable(what, "thread 1's inbox is full")
  end
  local ok, r = pcall(call.await, corr, host.MACHINE, deadline + 0.5, what, 1, 0, 0)
  if ok then return r end     -- (thread 1 answers once this node's replica applied it)
  if exception.is_exception(r) and r:is("actor_timeout") then unavailable(what, "timeout") end
  error(r, 0)
end

-- opts: self_addr, boot (this process's boot id), leader() -> current leader address.
function requests.start(opts)
  S = opts
end

function requests.stop()
  S = nil
end

return requests
