-- luact.listener: the public doors of a node. `luact.listen("tcp://ip:port")` serves calls to
-- registered names (only) from other processes — luact itself through `luact.ref("tcp://...")`,
-- or programs in other languages (PROTOCOL.md); `http://` serves `POST /name/method` with JSON.
-- The core parses frames and HTTP, converts bodies, and hands each call to this thread as
-- { "x", conn, gen, corr, notify, port, timeout } followed by the body { vid, method, n, args... }; the reply
-- goes back with luact_net_reply. This module also makes the calls of `tcp://` references.
local lffi = require "luact.ffi"
local thread = require "luact.thread"
local ffi, C = lffi.ffi, lffi.C
local loop = require "luact.loop"
local codec = require "luact.actor.codec"
local ref = require "luact.actor.ref"
local names = require "luact.actor.names"
local call = require "luact.actor.call"
local exception = require "luact.exception"
local event = require "luact.event"
local node = require "luact.node"
local util = require "luact.util"

local listener = {}

local KINDS = { tcp = 1, http = 2, udp = 3, tls = 4, ssl = 4 }

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

local function check_paths(opts, who, names)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad 'opts' argument to %s (table expected, got %s)"):format(who, type(opts)), 4)
  end
  for _, k in ipairs(names) do
    local v = opts and opts[k]
    if v ~= nil and type(v) ~= "string" then
      error(("bad '%s' option to %s (file path expected, got %s)"):format(k, who, type(v)), 4)
    end
  end
end

-- The bounds on one listener's clients (src/listen_limits.rs; README "Security"): option name
-- -> field of luact_listen_limits_t. Unset: the core's default.
local LIMITS = { "header_timeout", "idle_timeout", "max_buffered", "max_pipelined", "max_connections" }

local function limits_of(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad 'opts' argument to luact.listen (table expected, got %s)"):format(type(opts)), 3)
  end
  local limits = ffi.new("luact_listen_limits_t")
  for _, k in ipairs(LIMITS) do
    local v = opts and opts[k]
    if v ~= nil then
      if type(v) ~= "number" or not (v > 0) or v == math.huge then
        error(("bad '%s' option to luact.listen (positive number expected, got %s)"):format(k, tostring(v)), 3)
      end
      limits[k] = v
    end
  end
  for _, k in ipairs { "metrics", "dashboard" } do
    local m = opts and opts[k]
    if m ~= nil and type(m) ~= "boolean" then
      error(("bad '%s' option to luact.listen (boolean expected, got %s)"):format(k, type(m)), 3)
    end
    if m then limits[k] = 1 end
  end
  return limits
end

-- luact.listen(url[, opts]) -> { url = ..., port = bound port }. tls:// (or ssl://) needs
-- opts.cert and opts.key (PEM files); opts.client_ca requires client certificates signed by it.
-- opts.header_timeout, idle_timeout, max_buffered, max_pipelined, max_connections bound the
-- listener's clients (README "Security" has the defaults; each thread's listener has its own).
-- opts.timeout: the deadline of each call through it, in seconds (default 5; a client may set
-- its own per call: PROTOCOL.md).
-- opts.threads = "all": every thread listens on the same port (SO_REUSEPORT), so the kernel
-- spreads new connections over the threads; "this" (the default): only the calling thread.
local call_timeouts = {}   -- listener port -> the default timeout of its calls (opts.timeout)
local dashboard_ports = {} -- listener port -> true: it serves the dashboard (opts.dashboard)

-- The dashboard (luact.dashboard registers it when it loads): opened(port) when a listener that
-- serves it opens on this thread, state(port) -> the table `GET /_luact/state.json` answers.
local dashboard = nil
function listener.set_dashboard(handlers) dashboard = handlers end

-- Opens the listener on this thread. `raise` false: returns nil, err instead of raising (a
-- thread asked by another to listen too logs it).
local function open(scheme, host, port, opts, reuse, raise)
  local kind = KINDS[scheme]
  local limits = limits_of(opts)
  local addr = host .. ":" .. port
  local rc
  if kind == 4 then
    local ca = opts.client_ca or ""
    rc = C.luact_net_listen_tls(loop.context(), addr, #addr, opts.cert, #opts.cert, opts.key, #opts.key, ca, #ca, limits, reuse and 1 or 0)
  else
    rc = C.luact_net_listen(loop.context(), addr, #addr, kind, limits, reuse and 1 or 0)
  end
  if rc < 0 then
    local err = ("luact.listen: cannot listen on %s://%s: %s"):format(scheme, addr, lffi.describe(rc))
    if raise then error(err, 3) end
    return nil, err
  end
  call_timeouts[rc] = type(opts) == "table" and opts.timeout or nil
  dashboard_ports[rc] = type(opts) == "table" and opts.dashboard == true or nil
  if dashboard_ports[rc] and dashboard then dashboard.opened(rc) end
  return { url = ("%s://%s:%d"):format(scheme, host, rc), port = rc }
end

local LISTEN_OPTIONS = util.set({ "timeout", "threads", "cert", "key", "client_ca", "metrics", "dashboard" }, LIMITS)

function listener.listen(url, opts)
  local scheme, host, port = parse_url(url, "luact.listen")
  util.check_options(opts, LISTEN_OPTIONS, "luact.listen", 2)
  local timeout = type(opts) == "table" and opts.timeout or nil
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout > 0)) then
    error(("bad 'timeout' option to luact.listen (seconds above 0 expected, got %s)"):format(tostring(timeout)), 2)
  end
  local kind = KINDS[scheme]
  if not kind then
    error(("luact.listen: unknown scheme '%s' (tcp, tls, ssl, http, udp)"):format(scheme), 2)
  end
  limits_of(opts)   -- raises on a bad limit before anything opens
  for _, k in ipairs { "metrics", "dashboard" } do
    if type(opts) == "table" and opts[k] and kind ~= KINDS.http then
      error(("luact.listen: the '%s' option needs an http:// listener (got %s://)"):format(k, scheme), 2)
    end
  end
  local threads = type(opts) == "table" and opts.threads or nil
  if threads ~= nil and threads ~= "all" and threads ~= "this" then
    error(("bad 'threads' option to luact.listen ('all' or 'this' expected, got %s)"):format(tostring(threads)), 2)
  end
  if kind == 4 then
    check_paths(opts, "luact.listen", { "cert", "key", "client_ca" })
    if not (opts and opts.cert and opts.key) then
      error("luact.listen: a tls:// listener needs opts.cert and opts.key (PEM files)", 2)
    end
  end
  local all = threads == "all"
  local l = open(scheme, host, port, opts, all, true)
  if all then
    -- the others bind the port this one got (port 0 picks one for all)
    local o = {}
    for k, v in pairs(opts) do if k ~= "threads" then o[k] = v end end
    for tid = 1, thread.n_core or 1 do
      if tid ~= thread.id then
        loop.send(tid, { "listener_open", scheme, host, l.port, o }, "luact.listen's options", 5)
      end
    end
  end
  return l
end

-- Another thread asked this one to listen too (threads = "all").
loop.on("listener_open", function(msg)
  local ok, l, err = pcall(open, msg[2], msg[3], msg[4], msg[5], true, false)
  if not ok then err = l end
  if not ok or not l then
    require("luact.logger").error(("luact.listen: thread %s cannot listen on %s://%s:%s too: %s"):format(
      tostring(thread.id), msg[2], msg[3], tostring(msg[4]), tostring(err)))
  end
end)

-- luact.listen_stats() -> what this thread's listener limits refused so far: { header_timeouts,
-- idle_timeouts, slow_readers, refused_connections, accept_pauses, read_pauses }.
local stats_out = ffi.new("luact_listen_stats_t")
function listener.stats()
  local rc = C.luact_net_listen_stats(loop.context(), stats_out)
  if rc < 0 then error("luact.listen_stats: " .. lffi.describe(rc), 2) end
  local t = {}
  for _, k in ipairs({ "header_timeouts", "idle_timeouts", "slow_readers", "refused_connections", "accept_pauses", "read_pauses" }) do
    t[k] = stats_out[k]
  end
  return t
end

local function reply(conn, gen, corr, ok, ...)
  local msg
  if ok then
    msg = { ok, select("#", ...), ... }
  else
    local e = ...
    if not exception.is_exception(e) and not (type(e) == "table" and getmetatable(e) == nil) then
      e = exception.new("actor_runtime_error", tostring(e))
    end
    msg = { false, 1, e }
  end
  local p, len = codec.try_encode(msg, "the result", 3)
  if not p then
    p, len = codec.encode({ false, 1, exception.new("actor_runtime_error", "cannot send the result: " .. tostring(len)) })
  end
  C.luact_net_reply(loop.context(), conn, gen, corr, p, len)
end

-- Calls the method with the body's arguments (unpacked inside the protected call: a count the
-- VM cannot unpack is an error to report, not a lost request). By name, with the named actor as
-- self (as `luact.ref(vid):method(...)` does), without making a reference per request.
local function invoke(vid, method, body, n)
  return names.dispatch(vid, "notify", method, true, unpack(body, 4, 3 + n))
end

local function invoke_timed(vid, method, timeout, body, n)
  return names.dispatch(vid, "timed", method, true, timeout, unpack(body, 4, 3 + n))
end

-- timeout: the call's deadline in seconds from now (the client's, else its listener's, else 5 s).
local function serve(conn, gen, corr, notify, body, timeout)
  local vid, method, n = body[1], body[2], body[3]
  if type(vid) ~= "string" or type(method) ~= "string" or type(n) ~= "number" then
    if not notify then reply(conn, gen, corr, false, exception.new("bad_request", "malformed call")) end
    return
  end
  if method:sub(1, 2) == "__" then
    -- hooks such as __actor_destroy__ are not messages, least of all from outside
    if not notify then reply(conn, gen, corr, false, exception.new("actor_no_method", ("'%s' cannot be called through a listener"):format(method))) end
    return
  end
  -- (the kind is given, not parsed from a prefix, so that the method is the one named, even
  -- when its name starts like a prefix: a client's "timed_set" is the method timed_set)
  if notify then
    local ok, e = pcall(invoke, vid, method, body, n)
    if not ok then require("luact.logger").warn(("listener notify %s.%s failed: %s"):format(vid, method, tostring(e))) end
    return
  end
  reply(conn, gen, corr, pcall(invoke_timed, vid, method, timeout, body, n))
end

-- The dashboard's state (src/wire/http.rs routes GET /_luact/state.json to /_luact's 'state' on
-- a listener that serves the dashboard).
-- `after`: the query's `after` (GET /_luact/state.json?after=NAME: the placements' page after
-- that name), or nil.
local function serve_dashboard(conn, gen, corr, method, port, after)
  if method ~= "state" then
    return reply(conn, gen, corr, false, exception.new("actor_no_method", "/_luact has only 'state'"))
  end
  if type(after) ~= "string" then after = nil end
  reply(conn, gen, corr, pcall(dashboard.state, port, after))
end

-- A call from a listener client. A body that cannot be decoded still gets an answer.
loop.on("x", function(msg)
  local ok, body = pcall(loop.decode_rest)
  if not ok or type(body) ~= "table" then
    if not msg[5] then
      reply(msg[2], msg[3], msg[4], false, exception.new("bad_request", "the call's body cannot be decoded"))
    end
    return
  end
  -- msg[6]: the listener's port, msg[7]: the timeout the client asked for (0: none)
  local timeout = msg[7]
  if not (type(timeout) == "number" and timeout > 0) then
    timeout = call_timeouts[msg[6]] or call.DEFAULT_TIMEOUT
  end
  if body[1] == "/_luact" and dashboard_ports[msg[6]] and dashboard and not msg[5] then
    local after = type(body[3]) == "number" and body[3] >= 1 and body[4] or nil
    return require("luact.scheduler").task(serve_dashboard, msg[2], msg[3], msg[4], body[2], msg[6], after)
  end
  require("luact.scheduler").task(serve, msg[2], msg[3], msg[4], msg[5], body, timeout)
end)

---------------------------------------------------------------------------------------------
-- tcp:// references: this process as a client of another node's listener

local tls_profiles = {}   -- "ca|cert|key" -> this thread's TLS client profile id

local function tls_profile(addr, tls)
  if not tls then return 0 end
  local cert, key = tls.cert or "", tls.key or ""
  local id = tls.ca .. "|" .. cert .. "|" .. key
  local profile = tls_profiles[id]
  if not profile then
    profile = C.luact_net_tls_client(loop.context(), tls.ca, #tls.ca, cert, #cert, key, #key)
    if profile < 0 then exception.raise("actor_unreachable", ("tls://%s: %s"):format(addr, lffi.describe(profile))) end
    tls_profiles[id] = profile
  end
  return profile
end

-- left: seconds to the call's deadline (the listener's node bounds the method by it; nil for a
-- notify_)
local function send_call(addr, tls, corr, left, vid, method, ...)
  local profile = tls_profile(addr, tls)
  local body = { vid, method, select("#", ...), ... }
  local p, len = codec.encode(body, ("'%s'"):format(method), 4)
  local ms = left and math.max(1, math.ceil(left * 1000)) or 0
  local rc = C.luact_net_call(loop.context(), addr, #addr, profile, corr, ms, p, len)
  if rc < 0 then
    exception.raise("actor_unreachable", ("%s: %s"):format(addr, lffi.describe(rc)))
  end
end

local function dispatch_url(addr, vid, tls, kind, method, has_self, ...)
  if loop.context() == nil then
    error(("'%s' to %s: luact is not running (call it inside luact.start)"):format(method, addr .. vid), 3)
  end
  local m = node.machine_of(addr)
  if kind == "notify" then
    return send_call(addr, tls, 0, nil, vid, method, ...)
  end
  local timeout = call.DEFAULT_TIMEOUT
  if kind == "timed" then
    timeout = ...
    call.check_timeout(method, timeout)
    return (function(...)
      local corr = call.new_corr()
      local deadline, now = call.deadline_for(timeout)
      send_call(addr, tls, corr, deadline - now, vid, method, ...)
      return call.await(corr, m, deadline, method, vid, addr)
    end)(select(2, ...))
  end
  local corr = call.new_corr()
  local deadline, now = call.deadline_for(timeout)
  send_call(addr, tls, corr, deadline - now, vid, method, ...)
  if kind == "async" then
    local ev = event.new_oneshot()
    call.await_async(corr, m, deadline, method, ev)
    return ev
  end
  return call.await(corr, m, deadline, method, vid, addr)
end
ref.set_url_dispatch(dispatch_url)

-- A reply from another node's listener: { "xr", corr } followed by { ok, n, values... }.
-- The listener is outside what this node trusts: a reply it cannot read fails the call at once
-- (actor_runtime_error), rather than leaving the caller to its deadline.
local MAX_REPLY_VALUES = 4096
local function malformed_reply(corr, why)
  call.on_reply({ "r", corr, false, 1, exception.new("actor_runtime_error", "a malformed reply from the listener: " .. why) })
end

loop.on("xr", function(msg)
  local corr = msg[2]
  local ok, body = pcall(loop.decode_rest)
  if not ok then return malformed_reply(corr, "cannot be decoded") end
  if type(body) ~= "table" then return malformed_reply(corr, "not a table but a " .. type(body)) end
  local done, n = body[1], body[2]
  if type(done) ~= "boolean" then return malformed_reply(corr, "its first value is not a boolean") end
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 or n > MAX_REPLY_VALUES or (not done and n ~= 1) then
    return malformed_reply(corr, ("a count of %s values"):format(tostring(n)))
  end
  call.on_reply({ "r", corr, done, n, unpack(body, 3, 2 + n) })
end)

-- Our connection to a listener was lost: calls waiting on it fail.
function listener.remote_lost(m, why)
  call.machine_lost(m, false, why)
end

local REF_OPTIONS = util.set { "ca", "cert", "key" }

local function resolve(url, rest, opts)
  local scheme, host, port, path = parse_url(url, "luact.ref")
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad 'opts' argument to luact.ref (table or nil expected, got %s)"):format(type(opts)), 3)
  end
  util.check_options(opts, REF_OPTIONS, "luact.ref", 3)
  if path == "" or path:sub(1, 1) ~= "/" then
    error(("bad 'url' argument to luact.ref (a name after the address expected: %s)"):format(url), 3)
  end
  -- what the transport can dial: an IPv4 address (host names are not resolved) and a port
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  local ip_ok = a and tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256 and tonumber(d) < 256
  if not ip_ok or port < 1 or port > 65535 then
    error(("bad 'url' argument to luact.ref (an IPv4 address and a port 1..65535 expected, got '%s:%s' in %s%s)"):format(
      host, port, url, host == "localhost" and "; use 127.0.0.1" or ": names are not resolved"), 3)
  end
  local tls
  if scheme == "tls" or scheme == "ssl" then
    check_paths(opts, "luact.ref", { "ca", "cert", "key" })
    if not (opts and opts.ca) then
      error("luact.ref: a tls:// reference needs opts.ca (the PEM file of the CA to trust)", 3)
    end
    tls = { ca = opts.ca, cert = opts.cert, key = opts.key }
  end
  return ref.url(url, host .. ":" .. port, path, tls)
end
names.add_scheme("tcp", resolve)
names.add_scheme("tls", resolve)
names.add_scheme("ssl", resolve)

node.on_listener_lost(listener.remote_lost)

return listener
