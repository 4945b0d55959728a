-- luact.listener: the public doors of a node. `luact.listen("tcp://ip:port")` serves calls to
-- registered names (only) from other processes — luact itself through `luact.ref("tcp://...")`,
-- or programs in other languages (PROTOCOL.md); `http://` serves `POST /name/method` with JSON.
-- The core parses frames and HTTP, converts bodies, and hands each call to this thread as
-- { "x", conn, gen, corr, notify } followed by the body { vid, method, n, args... }; the reply
-- goes back with luact_net_reply. This module also makes the calls of `tcp://` references.
local lffi = require "luact.ffi"
local C = lffi.C
local loop = require "luact.loop"
local codec = require "luact.actor.codec"
local ref = require "luact.actor.ref"
local names = require "luact.actor.names"
local call = require "luact.actor.call"
local exception = require "luact.exception"
local event = require "luact.event"
local node = require "luact.node"

local listener = {}

local KINDS = { tcp = 1, http = 2, udp = 3 }
local LATER = { tls = true, ssl = true }

local function parse_url(url, who)
  if type(url) ~= "string" then
    error(("bad 'url' argument to %s (string expected, got %s)"):format(who, type(url)), 3)
  end
  local scheme, host, port, rest = url:match("^(%a+)://([^:/]+):(%d+)(.*)$")
  if not scheme then
    error(("bad 'url' argument to %s (scheme://ip:port expected, got '%s')"):format(who, url), 3)
  end
  return scheme:lower(), host, tonumber(port), rest
end

-- luact.listen(url[, opts]) -> { url = ..., port = bound port }
function listener.listen(url, opts)
  local scheme, host, port = parse_url(url, "luact.listen")
  if LATER[scheme] then
    error(("luact.listen: '%s://' listeners are not available yet (tcp://, http:// and udp:// are)"):format(scheme), 2)
  end
  local kind = KINDS[scheme]
  if not kind then
    error(("luact.listen: unknown scheme '%s' (tcp, http, udp)"):format(scheme), 2)
  end
  local addr = host .. ":" .. port
  local rc = C.luact_net_listen(loop.context(), addr, #addr, kind)
  if rc < 0 then
    error(("luact.listen: cannot listen on %s: %s"):format(url, lffi.describe(rc)), 2)
  end
  return { url = ("%s://%s:%d"):format(scheme, host, rc), port = rc }
end

local function reply(conn, gen, corr, ok, ...)
  local msg
  if ok then
    msg = { ok, select("#", ...), ... }
  else
    local e = ...
    if not exception.is_exception(e) then e = exception.new("actor_runtime_error", tostring(e)) end
    msg = { false, 1, e }
  end
  local sent, p, len = pcall(codec.encode, msg, "the result", 3)
  if not sent then
    p, len = codec.encode({ false, 1, exception.new("actor_runtime_error", "cannot send the result: " .. tostring(p)) })
  end
  C.luact_net_reply(loop.context(), conn, gen, corr, p, len)
end

local function serve(conn, gen, corr, notify, body)
  local vid, method, n = body[1], body[2], body[3]
  if type(vid) ~= "string" or type(method) ~= "string" or type(n) ~= "number" then
    if not notify then reply(conn, gen, corr, false, exception.new("actor_runtime_error", "malformed call")) end
    return
  end
  local target = ref.named(vid)
  local fn = target[(notify and "notify_" or "") .. method]
  if notify then
    local ok, e = pcall(fn, target, unpack(body, 4, 3 + n))
    if not ok then require("luact.logger").warn(("listener notify %s.%s failed: %s"):format(vid, method, tostring(e))) end
    return
  end
  reply(conn, gen, corr, pcall(fn, target, unpack(body, 4, 3 + n)))
end

-- A call from a listener client.
loop.on("x", function(msg)
  local body = loop.decode_rest()
  if type(body) ~= "table" then return end
  require("luact.scheduler").task(serve, msg[2], msg[3], msg[4], msg[5], body)
end)

---------------------------------------------------------------------------------------------
-- tcp:// references: this process as a client of another node's listener

local function send_call(addr, corr, vid, method, ...)
  local body = { vid, method, select("#", ...), ... }
  local p, len = codec.encode(body, ("'%s'"):format(method), 4)
  local rc = C.luact_net_call(loop.context(), addr, #addr, corr, p, len)
  if rc < 0 then
    exception.raise("actor_unreachable", ("%s: %s"):format(addr, lffi.describe(rc)))
  end
end

local function dispatch_url(addr, vid, kind, method, has_self, ...)
  local m = node.machine_of(addr)
  local who = ("actor(tcp://%s%s)"):format(addr, vid)
  if kind == "notify" then
    return send_call(addr, 0, vid, method, ...)
  end
  local timeout = call.DEFAULT_TIMEOUT
  if kind == "timed" then
    timeout = ...
    if type(timeout) ~= "number" or timeout < 0 then
      error(("bad timeout argument to 'timed_%s' (non-negative number expected, got %s)"):format(method, type(timeout)), 3)
    end
    return (function(...)
      local corr = call.new_corr()
      local deadline = call.deadline_for(timeout)
      send_call(addr, corr, vid, method, ...)
      return call.await(corr, m, deadline, who, method)
    end)(select(2, ...))
  end
  local corr = call.new_corr()
  local deadline = call.deadline_for(timeout)
  send_call(addr, corr, vid, method, ...)
  if kind == "async" then
    local ev = event.new_oneshot()
    call.await_async(corr, m, deadline, method, ev)
    return ev
  end
  return call.await(corr, m, deadline, who, method)
end
ref.set_url_dispatch(dispatch_url)

-- A reply from another node's listener: { "xr", corr } followed by { ok, n, values... }.
loop.on("xr", function(msg)
  local body = loop.decode_rest()
  if type(body) ~= "table" then return end
  call.on_reply({ "r", msg[2], body[1], body[2], unpack(body, 3, 2 + (body[2] or 0)) })
end)

-- Our connection to a listener was lost: calls waiting on it fail.
function listener.remote_lost(m)
  call.machine_lost(m)
end

local function resolve_tcp(url, rest)
  local scheme, host, port, path = parse_url(url, "luact.ref")
  if path == "" or path:sub(1, 1) ~= "/" then
    error(("bad 'url' argument to luact.ref (a name after the address expected: %s)"):format(url), 3)
  end
  return ref.url(url, host .. ":" .. port, path)
end
names.add_scheme("tcp", resolve_tcp)

return listener
