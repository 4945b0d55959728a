-- luact.node: this thread's side of the node transport (src/transport/). It sends luact
-- messages to a thread of another node, names machines, and turns the core's connection events
-- into what the layers above must do (fail calls to a lost node, fire its monitors: luact.actor.call;
-- a remote listener lost: luact.listener), through hooks they register here; it requires
-- neither, and it gives the loop its event drain (luact.loop requires nothing above it).
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C
local loop = require "luact.loop"
local thread = require "luact.thread"

local node = {}

-- Machine ids from 2^48 up are processes without a node address; those that hold the secret
-- are node clients (the `luact` command): they dial a node's thread 1, the only thread with
-- a connection to them, so what another thread sends them goes through thread 1 ("NR").
local CLIENTS = 2 ^ 48
node.CLIENTS = CLIENTS

-- Queues one message already encoded (len bytes at p) for thread tid of machine m; returns the
-- core's status (0, full, unreachable). The loop counts them (it polls sooner after a turn that
-- sent some).
function node.send_bytes(m, tid, p, len)
  loop.node_sends = loop.node_sends + 1
  if m >= CLIENTS and thread.id ~= 1 then
    return loop.send(1, { "NR", m, tid, ffi.string(p, len) }, "a message to a node client")
  end
  return C.luact_net_send(loop.context(), m, tid, p, len)
end

-- Thread 1 sends another thread's message on to a node client (see above).
loop.on("NR", function(msg)
  local m, tid, bytes = msg[2], msg[3], msg[4]
  if type(m) == "number" and type(tid) == "number" and type(bytes) == "string" then
    C.luact_net_send(loop.context(), m, tid, bytes, #bytes)
  end
end)

-- The layers above: lost(machine, unreached, why) when a node's connection is lost, and
-- listener_lost(machine, why) when a remote listener's is.
local on_lost = function() end
local on_listener_lost = function() end
function node.on_lost(fn) on_lost = fn end
function node.on_listener_lost(fn) on_listener_lost = fn end

-- "ip:port" of a node's machine id (a node's id is ip << 16 | port).
function node.name(m)
  if m >= 2 ^ 48 then return ("process-%d"):format(m - 2 ^ 48) end
  local ip = math.floor(m / 65536)
  local port = m % 65536
  return ("%d.%d.%d.%d:%d"):format(math.floor(ip / 16777216) % 256, math.floor(ip / 65536) % 256,
    math.floor(ip / 256) % 256, ip % 256, port)
end

-- The machine id of "ip:port".
function node.machine_of(addr)
  local a, b, c, d, port = addr:match("^(%d+)%.(%d+)%.(%d+)%.(%d+):(%d+)$")
  if not a then return nil end
  return ((((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)) * 65536) + tonumber(port)
end

local EV_NODE_UP, EV_NODE_DOWN, EV_CLIENT_CLOSED, EV_REMOTE_LISTENER_DOWN, EV_NODE_REFUSED, EV_NODE_UNREACHED = 1, 2, 3, 4, 5, 6
local EV_CONN_REFUSED = 7
local ev = ffi.new("luact_net_event_t")
local reason_out = ffi.new("const uint8_t *[1]")

-- Why the event just taken happened ("" when there is nothing to say).
local function event_reason(ctx)
  local len = C.luact_net_event_reason(ctx, reason_out)
  if len <= 0 then return "" end
  return ffi.string(reason_out[0], len)
end

local function warn(msg)
  require("luact.logger").warn(msg)
end

-- Upper layers that want to hear of nodes lost or refusing connections (the cluster's
-- membership) register here: fn("down" | "refused", machine).
local watchers = {}
function node.watch(fn)
  watchers[#watchers + 1] = fn
end
function node.unwatch(fn)
  for i = #watchers, 1, -1 do if watchers[i] == fn then table.remove(watchers, i) end end
end

local function tell(what, m)
  for i = 1, #watchers do
    local ok, err = pcall(watchers[i], what, m)
    if not ok then require("luact.logger").error("node watcher failed: " .. tostring(err)) end
  end
end

-- Closes this thread's connections to and from machine m (the cluster declared it dead): calls
-- waiting on it fail and its monitors fire, as when a connection is lost.
function node.drop(m)
  C.luact_net_drop(loop.context(), m)
end

-- Called by the loop after each poll: handles every pending connection event.
function node.drain_events(ctx)
  while C.luact_net_event(ctx, ev) == 1 do
    local kind, m, conn = ev.kind, ev.machine, ev.conn
    if kind == EV_NODE_DOWN or kind == EV_NODE_UNREACHED then
      local why = event_reason(ctx)
      -- (a node client going away is its business: `luact status` closes when it is done)
      if m < CLIENTS then warn(("lost the connection to node %s: %s"):format(node.name(m), why)) end
      on_lost(m, kind == EV_NODE_UNREACHED, why)
      if #watchers > 0 then tell("down", m) end
    elseif kind == EV_NODE_REFUSED then
      if #watchers > 0 then tell("refused", m) end
    elseif kind == EV_REMOTE_LISTENER_DOWN then
      local why = event_reason(ctx)
      if why ~= "done" and why ~= "closed by peer" then
        warn(("lost the connection to the listener at %s: %s"):format(node.name(m), why))
      end
      on_listener_lost(m, why)
    elseif kind == EV_CONN_REFUSED then
      warn(event_reason(ctx))
    end
  end
end

loop.on_node_events(node.drain_events)

return node
