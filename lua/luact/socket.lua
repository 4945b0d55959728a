-- luact.socket: TCP and Unix-domain sockets for Lua code, on the calling thread's io_uring
-- (the connections themselves are the core's: src/conn/, src/socket.rs). The API follows
-- OpenResty's cosockets: `connect`, `listen`, and socket methods `send`, `receive` ("*l", "*a",
-- a byte count), `receiveany`, `receiveuntil`, `settimeout(s)`, `close`, `getpeername`. A
-- runtime failure returns `nil, err` (err short and stable: "timeout", "closed", "connection
-- refused", "connection reset", ...; receive adds the partial data); misuse raises. A wait
-- suspends the calling tentacle, never the thread. A socket belongs to the thread (and the run
-- of luact.start) that opened it.
local lffi = require "luact.ffi"
local thread = require "luact.thread"
local ffi, C = lffi.ffi, lffi.C
local buffer = require "string.buffer"
local loop = require "luact.loop"
local scheduler = require "luact.scheduler"
local clock = require "luact.clock"
local tentacle = require "luact.tentacle"
local util = require "luact.util"

local socket = {}

-- Completion flags (mirrors EV_* in src/socket.rs).
local EV_CONNECTED, EV_READABLE, EV_WRITABLE, EV_ACCEPTED = 1, 2, 3, 4

local DEFAULT_TIMEOUT = 60            -- seconds, each of connect / send / read (as OpenResty)
local DEFAULT_SEND_BUFFER = 1024 * 1024
local DEFAULT_LINGER = 10             -- seconds a closed socket may take to deliver what it queued
local DEFAULT_MAX_CONNECTIONS = 1024
local DEFAULT_BACKLOG = 511

local ERRNAMES = {
  [111] = "connection refused", [104] = "connection reset", [32] = "connection reset",
  [110] = "timeout", [101] = "network unreachable", [113] = "host unreachable",
  [2] = "no such file", [13] = "permission denied", [125] = "closed", [99] = "address not available",
  [98] = "address in use", [103] = "connection aborted",
  [10001] = "tls handshake failed", [10002] = "tls error",   -- (ERR_TLS_* in src/conn/mod.rs)
}
local function errname(errno)
  return ERRNAMES[errno] or ("os error " .. tostring(errno))
end
socket.errname = errname

local view = ffi.new("luact_sock_view_t")
local port_out = ffi.new("int32_t[1]")
local addr_out = ffi.new("uint8_t[?]", 256)
local char_p = ffi.typeof("const char*")

local epoch = {}   -- replaced by socket.reset: sockets of an earlier run of luact.start are stale

local function thread_id()
  return thread.id
end

-- A host and port: "name:port", "a.b.c.d:port" or "[ipv6]:port"; nil if malformed.
local function host_port(rest)
  local host, port = rest:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = rest:match("^([^:/%[%]]+):(%d+)$") end
  return host, port
end

-- "tcp://host:port" -> 0, "host:port"; "tls://host:port" -> 2, "host:port"; "unix:///path"
-- (or unix:path) -> 1, "/path". host: a name, an IPv4 address or [an IPv6 address].
local function parse_url(url, who)
  if type(url) ~= "string" then
    error(("bad 'url' argument to %s (string expected, got %s)"):format(who, type(url)), 3)
  end
  for scheme, family in pairs { tcp = 0, tls = 2 } do
    local rest = url:match("^" .. scheme .. "://(.+)$")
    if rest then
      if not host_port(rest) then
        error(("bad 'url' argument to %s (%s://host:port expected, got '%s')"):format(who, scheme, url), 3)
      end
      return family, rest
    end
  end
  local rest
  rest = url:match("^unix://(.+)$") or url:match("^unix:(.+)$")
  if rest then return 1, rest end
  error(("bad 'url' argument to %s (tcp://host:port, tls://host:port or unix:///path expected, got '%s')"):format(who, url), 3)
end

-- The options each function takes (README "Sockets").
local CONNECT_OPTIONS = { "timeout", "connect_timeout", "send_timeout", "read_timeout", "send_buffer", "linger",
                          "ca", "sni", "cert", "key" }
local OPTIONS = {
  ["luact.socket.connect"] = util.set(CONNECT_OPTIONS),
  ["luact.socket.listen"] = util.set(CONNECT_OPTIONS, { "max_connections", "backlog", "threads", "client_ca" }),
  ["luact.socket.udp"] = util.set { "timeout" },
}

local function check_opts(opts, who)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad 'opts' argument to %s (table or nil expected, got %s)"):format(who, type(opts)), 3)
  end
  util.check_options(opts, OPTIONS[who], who, 3)
  for _, k in ipairs { "timeout", "connect_timeout", "send_timeout", "read_timeout", "send_buffer",
                       "max_connections", "backlog", "linger" } do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v ~= v or v < 0) then
      error(("bad '%s' option to %s (non-negative number expected, got %s)"):format(k, who, tostring(v)), 3)
    end
  end
  for _, k in ipairs { "ca", "sni", "cert", "key", "client_ca" } do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error(("bad '%s' option to %s (string expected, got %s)"):format(k, who, type(opts[k])), 3)
    end
  end
  if (opts.cert == nil) ~= (opts.key == nil) then
    error(("bad options to %s ('cert' and 'key' go together)"):format(who), 3)
  end
  if opts.threads ~= nil and opts.threads ~= "all" and opts.threads ~= "this" then
    error(("bad 'threads' option to %s ('all' or 'this' expected, got %s)"):format(who, tostring(opts.threads)), 3)
  end
  return opts
end

local function context(who)
  local ctx = loop.context()
  if ctx == nil then error(who .. ": luact is not running on this thread (call it inside luact.start)", 3) end
  if scheduler.running() == nil then error(who .. ": must be called inside a tentacle", 3) end
  return ctx
end

---------------------------------------------------------------------------------------------
-- waiting

local function fire_timeout(entry)
  scheduler.wake(entry.t, entry.token, false)
end

-- Suspends the running tentacle until the socket's `which` side ("reader" or "writer") has
-- news (true) or `deadline` (monotonic seconds, nil: none) passes (false).
local function wait(s, which, deadline, who)
  local t, token = scheduler.prepare_wait(who)
  s[which], s[which .. "_token"] = t, token
  local timer
  if deadline then
    timer = clock.schedule({ at = deadline, fire = fire_timeout, t = t, token = token, seq = 0, pos = 0 })
  end
  local ok = scheduler.suspend()
  s[which], s[which .. "_token"] = nil, nil
  if timer then clock.cancel(timer) end
  return ok
end

local function wake(s, which)
  local t = s[which]
  if t then scheduler.wake(t, s[which .. "_token"], true) end
end

local function deadline_of(timeout)
  if timeout and timeout > 0 then return C.luact_clock_monotonic() + timeout end
  return nil
end

---------------------------------------------------------------------------------------------
-- sockets

local Socket = {}
Socket.__index = Socket
socket.Socket = Socket

local function on_event(s, res, flags)
  if flags == EV_READABLE then
    wake(s, "reader")
  elseif flags == EV_WRITABLE then
    wake(s, "writer")
  elseif flags == EV_CONNECTED then
    s.connect_res = res
    wake(s, "writer")
  end
end

local function new_socket(ctx, h, opts)
  local t = opts.timeout or DEFAULT_TIMEOUT
  local s = setmetatable({
    -- (ctx is a cdata: the codec refuses to send a socket to another thread, where it would
    -- not work)
    h = h, ctx = ctx, epoch = epoch, tid = thread_id(), rb = buffer.new(), closed = false,
    connect_timeout = opts.connect_timeout or t, send_timeout = opts.send_timeout or t,
    read_timeout = opts.read_timeout or t, send_buffer = opts.send_buffer or DEFAULT_SEND_BUFFER,
    linger = opts.linger or DEFAULT_LINGER,
  }, Socket)
  if s.send_buffer < 1 then s.send_buffer = 1 end
  loop.on_io(h, function(res, flags) on_event(s, res, flags) end)
  return s
end

-- Raises when the socket is used outside the thread and run that opened it.
local function check(s, who)
  if getmetatable(s) ~= Socket then
    error(("bad self to %s (socket expected, got %s)"):format(who, type(s)), 3)
  end
  if s.epoch ~= epoch or s.tid ~= thread_id() or s.ctx ~= loop.context() then
    error(("%s: this socket belongs to thread %s of an earlier or other run of luact.start"):format(who, tostring(s.tid)), 3)
  end
end

-- Moves what the core received into the socket's buffer; returns eof, errno.
local function pull(s)
  if C.luact_sock_view(s.ctx, s.h, view) < 0 then return true, 125 end
  local n = tonumber(view.len)
  if n > 0 then
    s.rb:putcdata(view.data, n)
    C.luact_sock_consume(s.ctx, s.h, n)
  end
  return view.eof ~= 0, view.err
end

local function busy(s, which, who)
  if s[which] then
    error(("%s: socket busy %s (another tentacle is waiting on it)"):format(who, which == "reader" and "reading" or "writing"), 3)
  end
end

-- The failure that ends a read: (nil, err, partial).
local function read_failure(s, err)
  return nil, err, s.rb:get()
end

-- sock:receive(pattern) -> data | nil, err, partial. pattern: "*l" (a line, without "\r\n" or
-- "\n"; the default), "*a" (everything until the peer closes), or a byte count.
function Socket:receive(pattern)
  check(self, "socket:receive")
  local n
  if pattern == nil then pattern = "*l" end
  if type(pattern) == "number" then
    if pattern < 0 or pattern % 1 ~= 0 then
      error("bad 'pattern' argument to socket:receive (non-negative integer, '*l' or '*a' expected)", 2)
    end
    n = pattern
  elseif pattern ~= "*l" and pattern ~= "*a" then
    error(("bad 'pattern' argument to socket:receive ('*l', '*a' or a byte count expected, got %s)"):format(tostring(pattern)), 2)
  end
  if self.closed then return nil, "closed" end
  busy(self, "reader", "socket:receive")
  local rb = self.rb
  local deadline = deadline_of(self.read_timeout)
  -- (what is buffered is tried first and more is pulled from the core only when it does not
  -- do: a reader taking little at a time never holds more than the core's read-ahead)
  local eof, err, fresh = false, 0, false
  while true do
    if n then
      if #rb >= n then return rb:get(n) end
    elseif pattern == "*l" then
      local p, len = rb:ref()
      local i = C.luact_memory_find(p, len, "\n", 1)
      if i >= 0 then
        local line = rb:get(i)
        rb:skip(1)
        if line:byte(-1) == 13 then line = line:sub(1, -2) end
        return line
      end
    end
    if not fresh then
      eof, err = pull(self)
      fresh = true
    else
      if err ~= 0 then return read_failure(self, errname(err)) end
      if eof then
        if pattern == "*a" then return rb:get() end
        return read_failure(self, "closed")
      end
      if not wait(self, "reader", deadline, "socket:receive") then return read_failure(self, "timeout") end
      if self.closed then return read_failure(self, "closed") end
      fresh = false
    end
  end
end

-- sock:receiveany(max) -> up to max bytes as soon as any arrived | nil, err.
function Socket:receiveany(max)
  check(self, "socket:receiveany")
  if type(max) ~= "number" or max < 1 then
    error("bad 'max' argument to socket:receiveany (positive number expected)", 2)
  end
  if self.closed then return nil, "closed" end
  busy(self, "reader", "socket:receiveany")
  local rb = self.rb
  local deadline = deadline_of(self.read_timeout)
  while true do
    if #rb > 0 then return rb:get(max) end
    local eof, err = pull(self)
    if #rb > 0 then return rb:get(max) end
    if err ~= 0 then return nil, errname(err) end
    if eof then return nil, "closed" end
    if not wait(self, "reader", deadline, "socket:receiveany") then return nil, "timeout" end
    if self.closed then return nil, "closed" end
  end
end

-- sock:receiveuntil(delimiter[, { inclusive = true }]) -> reader. reader() returns the data
-- before the next delimiter (which it consumes) or nil, err, partial. reader(size) returns it
-- in pieces of at most size bytes, then nil (no error) once the delimiter was reached.
local RECEIVEUNTIL_OPTIONS = util.set { "inclusive" }
function Socket:receiveuntil(delim, opts)
  check(self, "socket:receiveuntil")
  if type(delim) ~= "string" or #delim == 0 then
    error("bad 'delimiter' argument to socket:receiveuntil (non-empty string expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad 'opts' argument to socket:receiveuntil (table or nil expected)", 2)
  end
  util.check_options(opts, RECEIVEUNTIL_OPTIONS, "socket:receiveuntil", 2)
  local inclusive = opts and opts.inclusive
  local s, dlen, finished = self, #delim, false
  return function(size)
    check(s, "socket:receiveuntil's reader")
    if size ~= nil and (type(size) ~= "number" or size < 1) then
      error("bad 'size' argument to the reader (positive number expected)", 2)
    end
    if finished then finished = false; return nil end
    if s.closed then return nil, "closed" end
    busy(s, "reader", "socket:receiveuntil's reader")
    local rb = s.rb
    local deadline = deadline_of(s.read_timeout)
    local eof, err, fresh = false, 0, false
    while true do
      local p, len = rb:ref()
      local i = C.luact_memory_find(p, len, delim, dlen)
      if i >= 0 then
        if size and i > size then return rb:get(size) end
        local data = rb:get(i)
        rb:skip(dlen)
        if inclusive then data = data .. delim end
        if size then finished = true end
        return data
      end
      -- (the last dlen - 1 bytes may start the delimiter: keep them)
      if size and len - (dlen - 1) >= size then return rb:get(size) end
      if not fresh then
        eof, err = pull(s)
        fresh = true
      else
        if err ~= 0 then return read_failure(s, errname(err)) end
        if eof then return read_failure(s, "closed") end
        if not wait(s, "reader", deadline, "socket:receiveuntil's reader") then return read_failure(s, "timeout") end
        if s.closed then return read_failure(s, "closed") end
        fresh = false
      end
    end
  end
end

-- sock:send(data) -> bytes | nil, err. data: a string, a number, or an array of them. The bytes
-- go out with the loop turn's write; send waits only while more than `send_buffer` bytes are
-- queued for the peer (then up to the send timeout: nil, "timeout", and what did not fit is
-- not queued).
function Socket:send(data)
  check(self, "socket:send")
  local tp = type(data)
  if tp == "table" then
    local ok, s = pcall(table.concat, data)
    if not ok then error("bad 'data' argument to socket:send (array of strings expected)", 2) end
    data = s
  elseif tp == "number" then
    data = tostring(data)
  elseif tp ~= "string" then
    error(("bad 'data' argument to socket:send (string expected, got %s)"):format(tp), 2)
  end
  if self.closed then return nil, "closed" end
  local len = #data
  if len == 0 then return 0 end
  busy(self, "writer", "socket:send")
  local p = ffi.cast(char_p, data)
  local sent = 0
  local deadline
  while true do
    local n = C.luact_sock_send(self.ctx, self.h, p + sent, len - sent, self.send_buffer)
    if n < 0 then return nil, "closed" end
    sent = sent + n
    if sent == len then return len end
    pull(self)
    if view.err ~= 0 then return nil, errname(view.err) end
    deadline = deadline or deadline_of(self.send_timeout)
    if not wait(self, "writer", deadline, "socket:send") then
      self.stuck = true   -- the peer does not read: close() will not wait for it
      return nil, "timeout"
    end
    if self.closed then return nil, "closed" end
  end
end

-- sock:settimeout(sec): the connect, send and read timeouts at once (0: no limit).
function Socket:settimeout(sec)
  check(self, "socket:settimeout")
  if type(sec) ~= "number" or sec < 0 then
    error("bad 'sec' argument to socket:settimeout (non-negative number expected)", 2)
  end
  self.connect_timeout, self.send_timeout, self.read_timeout = sec, sec, sec
end

function Socket:settimeouts(connect, send, read)
  check(self, "socket:settimeouts")
  for i, v in ipairs { connect, send, read } do
    if type(v) ~= "number" or v < 0 then
      error(("bad argument #%d to socket:settimeouts (non-negative number expected)"):format(i), 2)
    end
  end
  self.connect_timeout, self.send_timeout, self.read_timeout = connect, send, read
end

-- sock:close() -> 1 | nil, "closed". What was sent is still delivered (unless the peer stopped
-- reading: then it is dropped and the peer sees a reset); tentacles waiting on the socket get
-- nil, "closed".
function Socket:close(abort)
  check(self, "socket:close")
  if self.closed then return nil, "closed" end
  self.closed = true
  C.luact_sock_close(self.ctx, self.h, (abort or self.stuck) and 1 or 0, self.linger)
  loop.on_io(self.h, nil)
  wake(self, "reader")
  wake(self, "writer")
  return 1
end

-- sock:getpeername() -> ip, port (a Unix socket: its path, or "" when the peer has none).
function Socket:getpeername()
  check(self, "socket:getpeername")
  if self.closed then return nil, "closed" end
  local n = C.luact_sock_address(self.ctx, self.h, 0, addr_out, 256, port_out)
  if n < 0 then return nil, "closed" end
  return ffi.string(addr_out, n), port_out[0]
end

function Socket:__tostring()
  return ("socket(%s)"):format(self.closed and "closed" or tostring(self.h))
end

-- Runs in an offload pool thread (so it captures nothing: it is sent as bytecode): the system
-- resolver (getaddrinfo: /etc/hosts, then DNS as /etc/resolv.conf says) for a host name; returns
-- its addresses for TCP in the resolver's order, or nil and the resolver's message.
local function resolve_on_pool(name)
  local ffi = require "ffi"
  if not pcall(ffi.typeof, "struct luact_addrinfo") then
    ffi.cdef [[
      struct luact_addrinfo { int ai_flags, ai_family, ai_socktype, ai_protocol; uint32_t ai_addrlen;
                              void *ai_addr; char *ai_canonname; struct luact_addrinfo *ai_next; };
      int getaddrinfo(const char *node, const char *service, const struct luact_addrinfo *hints,
                      struct luact_addrinfo **res);
      void freeaddrinfo(struct luact_addrinfo *res);
      const char *gai_strerror(int errcode);
      const char *inet_ntop(int af, const void *src, char *dst, uint32_t size);
    ]]
  end
  local AF_INET, AF_INET6, SOCK_STREAM = 2, 10, 1
  local hints = ffi.new("struct luact_addrinfo")
  hints.ai_socktype = SOCK_STREAM
  local res = ffi.new("struct luact_addrinfo *[1]")
  local rc = ffi.C.getaddrinfo(name, nil, hints, res)
  if rc ~= 0 then return nil, ffi.string(ffi.C.gai_strerror(rc)) end
  local out, seen, buf = {}, {}, ffi.new("char[64]")
  local ai = res[0]
  while ai ~= nil do
    local offset = ai.ai_family == AF_INET and 4 or ai.ai_family == AF_INET6 and 8
    if offset and ffi.C.inet_ntop(ai.ai_family, ffi.cast("uint8_t *", ai.ai_addr) + offset, buf, 64) ~= nil then
      local ip = ffi.string(buf)
      if not seen[ip] then seen[ip] = true; out[#out + 1] = ip end
    end
    ai = ai.ai_next
  end
  ffi.C.freeaddrinfo(res[0])
  if #out == 0 then return nil, "no address" end
  return out
end

-- Whether `host` needs no resolver: an IPv4 or IPv6 address, or localhost (the core knows it).
local function is_address(host)
  return host == "localhost" or host:find(":", 1, true) ~= nil or host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- Connects to one address ("ip:port", "[ipv6]:port" or a Unix path); `host` names the server
-- for TLS (the default SNI and the certificate's name).
local function connect_to(ctx, family, addr, host, opts)
  local h
  if family == 2 then
    if not opts.ca then
      error("bad options to luact.socket.connect (tls:// needs 'ca': the CA bundle to trust; no system store is used)", 3)
    end
    local sni = opts.sni or host
    local cert, key = opts.cert or "", opts.key or ""
    h = C.luact_sock_connect_tls(ctx, addr, #addr, sni, #sni, opts.ca, #opts.ca, cert, #cert, key, #key)
  else
    h = C.luact_sock_connect(ctx, family, addr, #addr)
  end
  if h < 0 then
    if h == lffi.status.bad_argument and family == 2 then
      error("bad options to luact.socket.connect (" .. lffi.last_error() .. ")", 3)
    elseif h == lffi.status.bad_argument then
      error("bad 'url' argument to luact.socket.connect (" .. lffi.last_error() .. ")", 3)
    end
    return nil, lffi.last_error()
  end
  local s = new_socket(ctx, h, opts)
  local deadline = deadline_of(s.connect_timeout)
  while s.connect_res == nil do
    if not wait(s, "writer", deadline, "luact.socket.connect") then
      s:close(true)
      return nil, "timeout"
    end
  end
  if s.connect_res < 0 then
    s:close(true)
    return nil, errname(-s.connect_res)
  end
  return s
end

-- socket.connect(url[, opts]) -> sock | nil, err. url: tcp://host:port, tls://host:port or
-- unix:///path; host is a name, an IPv4 address or [an IPv6 address]. A name is resolved by the
-- system resolver on the offload pool (the loop never blocks on it), and its addresses are
-- tried in order until one connects (err: the last failure, or "NAME could not be resolved
-- (...)"). opts: ca, sni (default: the host), cert and key (tls://), timeout (connect, send and
-- read; default 60 s, 0: none; each address gets the connect timeout), connect_timeout,
-- send_timeout, read_timeout, send_buffer (bytes queued for the peer before send waits;
-- default 1 MiB).
function socket.connect(url, opts)
  local family, addr = parse_url(url, "luact.socket.connect")
  opts = check_opts(opts, "luact.socket.connect")
  local ctx = context("luact.socket.connect")
  if family == 1 then return connect_to(ctx, family, addr, "", opts) end
  local host, port = host_port(addr)
  if is_address(host) then return connect_to(ctx, family, addr, host, opts) end
  local ok, ips, why = pcall(require "luact.offload", resolve_on_pool, host)
  if not ok then return nil, ("%s could not be resolved (%s)"):format(host, tostring(ips)) end
  if not ips then return nil, ("%s could not be resolved (%s)"):format(host, why) end
  local err
  for i = 1, #ips do
    local ip = ips[i]
    local s, e = connect_to(ctx, family, (ip:find(":", 1, true) and "[" .. ip .. "]" or ip) .. ":" .. port, host, opts)
    if s then return s end
    err = e
  end
  return nil, err
end

---------------------------------------------------------------------------------------------
-- servers

local Listener = {}
Listener.__index = Listener
socket.Listener = Listener

local function run_callbacks(cb, s, peer)
  if cb.accept and not cb.accept(s, peer) then s:close(); return end
  local reason
  while true do
    local data, err = s:receiveany(65536)
    if not data then reason = err; break end
    if cb.receive then cb.receive(s, data) end
    if s.closed then reason = "closed"; break end
  end
  if cb.close then cb.close(s, reason) end
end

local function serve(l, h)
  local s = new_socket(l.ctx, h, l.opts)
  local ip, port = s:getpeername()
  local peer = port and port > 0 and (ip .. ":" .. port) or (ip or "")
  l.accepted = l.accepted + 1
  local t = tentacle(function()
    if l.tls then
      -- the handler runs once the TLS handshake completed (within the connect timeout)
      local deadline = deadline_of(s.connect_timeout)
      while s.connect_res == nil do
        if not wait(s, "writer", deadline, "luact.socket.listen") then s:close(true); return end
      end
      if s.connect_res < 0 then s:close(true); return end
    end
    local handler = l.handler
    local ok, err
    if type(handler) == "function" then
      ok, err = pcall(handler, s, peer)
    else
      ok, err = pcall(run_callbacks, handler, s, peer)
    end
    if not s.closed then s:close() end
    if not ok then error(err, 0) end
  end)
  t.name = "socket " .. peer
end

local function check_handler(handler, who, moving)
  local th = type(handler)
  if th == "table" then
    for _, k in ipairs { "accept", "receive", "close" } do
      if handler[k] ~= nil and type(handler[k]) ~= "function" then
        error(("bad 'handler' argument to %s ('%s' must be a function)"):format(who, k), 3)
      end
    end
    if not handler.receive and not handler.accept then
      error(("bad 'handler' argument to %s (a table needs 'receive' or 'accept')"):format(who), 3)
    end
  elseif th ~= "function" then
    error(("bad 'handler' argument to %s (function or table of callbacks expected, got %s)"):format(who, th), 3)
  end
  if moving then
    local fns = th == "function" and { handler = handler } or handler
    for k, f in pairs(fns) do
      if type(f) == "function" then
        local info = debug.getinfo(f, "u")
        if info.nups > 0 then
          error(("bad 'handler' argument to %s (with threads = 'all' the handler is moved to every thread as bytecode, so it must not capture upvalues; %s captures '%s')"):format(who, k, tostring(debug.getupvalue(f, 1))), 3)
        end
      end
    end
  end
end

local function open_listener(ctx, family, addr, url, handler, opts, reuse)
  local backlog, max = opts.backlog or DEFAULT_BACKLOG, opts.max_connections or DEFAULT_MAX_CONNECTIONS
  local h
  if family == 2 then
    local ca = opts.client_ca or ""
    h = C.luact_sock_listen_tls(ctx, addr, #addr, backlog, max, reuse and 1 or 0,
                                opts.cert, #opts.cert, opts.key, #opts.key, ca, #ca)
  else
    h = C.luact_sock_listen(ctx, family, addr, #addr, backlog, max, reuse and 1 or 0)
  end
  if h < 0 then return nil, lffi.last_error(), h end
  local l = setmetatable({ h = h, ctx = ctx, epoch = epoch, handler = handler, opts = opts, url = url,
                           accepted = 0, closed = false, tls = family == 2 }, Listener)
  C.luact_sock_address(ctx, h, 1, addr_out, 256, port_out)
  l.port = port_out[0]
  loop.on_io(h, function(res, flags)
    if flags == EV_ACCEPTED then serve(l, res) end
  end)
  return l
end

-- socket.listen(url, handler[, opts]) -> listener | nil, err. handler(sock, peer) runs in a
-- tentacle of its own for every accepted connection (the socket is closed when it returns), or
-- handler is { accept = fn(sock, peer) -> keep?, receive = fn(sock, data), close = fn(sock,
-- reason) }. opts: those of connect (for accepted sockets), max_connections (default 1024:
-- past it, accepting pauses until one closes), backlog, threads = "all" (listen on every
-- thread with SO_REUSEPORT; the handler then travels as bytecode: no upvalues).
function socket.listen(url, handler, opts)
  local family, addr = parse_url(url, "luact.socket.listen")
  opts = check_opts(opts, "luact.socket.listen")
  local all = opts.threads == "all"
  check_handler(handler, "luact.socket.listen", all)
  if family == 2 and not (opts.cert and opts.key) then
    error("bad options to luact.socket.listen (tls:// needs 'cert' and 'key': PEM files)", 2)
  end
  local ctx = loop.context()
  if ctx == nil then error("luact.socket.listen: luact is not running on this thread (call it inside luact.start)", 2) end
  local l, err, code = open_listener(ctx, family, addr, url, handler, opts, all)
  if not l then
    if code == lffi.status.bad_argument then
      error((family == 2 and "bad options to luact.socket.listen (" or "bad 'url' argument to luact.socket.listen (") .. err .. ")", 2)
    end
    return nil, err
  end
  if all then
    local bound = family == 0 and (addr:match("^(.*):%d+$") .. ":" .. l.port) or addr
    local o = {}
    for k, v in pairs(opts) do if k ~= "threads" then o[k] = v end end
    for tid = 1, thread.n_core or 1 do
      if tid ~= thread.id then
        loop.send(tid, { "socket_listen", family, bound, url, handler, o }, "luact.socket.listen's handler", 5)
      end
    end
  end
  return l
end

-- Another thread asked this one to listen too (threads = "all").
loop.on("socket_listen", function(msg)
  local family, addr, url, handler, opts = msg[2], msg[3], msg[4], msg[5], msg[6]
  local l, err = open_listener(loop.context(), family, addr, url, handler, opts, true)
  if not l then
    require("luact.logger").error(("luact.socket.listen: thread %s cannot listen on %s: %s"):format(tostring(thread_id()), url, tostring(err)))
  end
end)

-- listener:close(): stops accepting (connections it accepted stay open).
function Listener:close()
  if self.closed then return nil, "closed" end
  self.closed = true
  if self.epoch == epoch and self.ctx == loop.context() then
    C.luact_sock_close(self.ctx, self.h, 0, 0)
    loop.on_io(self.h, nil)
  end
  return 1
end

---------------------------------------------------------------------------------------------
-- UDP

local Udp = {}
Udp.__index = Udp
socket.Udp = Udp
local data_out = ffi.new("const uint8_t*[1]")
local from_len = ffi.new("int32_t[1]")

-- socket.udp(url[, opts]) -> udp | nil, err: a UDP socket bound to udp://ip:port (port 0: any
-- free port; `udp.port` says which). opts: timeout (of receivefrom; default 60 s, 0: none).
function socket.udp(url, opts)
  if type(url) ~= "string" or not url:match("^udp://") or not host_port(url:sub(7)) then
    error(("bad 'url' argument to luact.socket.udp (udp://ip:port or udp://[ipv6]:port expected, got %s)"):format(tostring(url)), 2)
  end
  opts = check_opts(opts, "luact.socket.udp")
  local ctx = loop.context()
  if ctx == nil then error("luact.socket.udp: luact is not running on this thread (call it inside luact.start)", 2) end
  local addr = url:sub(7)
  local h = C.luact_udp_open(ctx, addr, #addr)
  if h < 0 then
    if h == lffi.status.bad_argument then error("bad 'url' argument to luact.socket.udp (" .. lffi.last_error() .. ")", 2) end
    return nil, lffi.last_error()
  end
  local u = setmetatable({ h = h, ctx = ctx, epoch = epoch, tid = thread_id(), closed = false,
                           read_timeout = opts.timeout or DEFAULT_TIMEOUT }, Udp)
  u.port = C.luact_udp_port(ctx, h)
  loop.on_io(h, function() wake(u, "reader") end)
  return u
end

local function check_udp(u, who)
  if getmetatable(u) ~= Udp then error(("bad self to %s (udp socket expected)"):format(who), 3) end
  if u.epoch ~= epoch or u.tid ~= thread_id() or u.ctx ~= loop.context() then
    error(("%s: this socket belongs to thread %s of an earlier or other run of luact.start"):format(who, tostring(u.tid)), 3)
  end
end

-- udp:sendto(data, ip, port) -> true | nil, err ("closed", or "buffer full" when 4 MiB of
-- datagrams still wait for the kernel). Fire and forget: a datagram may be lost.
function Udp:sendto(data, ip, port)
  check_udp(self, "udp:sendto")
  if type(data) ~= "string" then error("bad 'data' argument to udp:sendto (string expected, got " .. type(data) .. ")", 2) end
  if type(ip) ~= "string" then error("bad 'ip' argument to udp:sendto (string expected, got " .. type(ip) .. ")", 2) end
  if type(port) ~= "number" or port < 1 or port > 65535 or port % 1 ~= 0 then
    error("bad 'port' argument to udp:sendto (1..65535 expected, got " .. tostring(port) .. ")", 2)
  end
  if self.closed then return nil, "closed" end
  local to = (ip:find(":", 1, true) and "[" .. ip .. "]" or ip) .. ":" .. port
  local rc = C.luact_udp_sendto(self.ctx, self.h, data, #data, to, #to)
  if rc == lffi.status.full then return nil, "buffer full" end
  if rc < 0 then error("udp:sendto: " .. lffi.last_error(), 2) end
  return true
end

-- udp:receivefrom() -> data, ip, port | nil, err ("timeout", "closed").
function Udp:receivefrom()
  check_udp(self, "udp:receivefrom")
  if self.closed then return nil, "closed" end
  busy(self, "reader", "udp:receivefrom")
  local deadline = deadline_of(self.read_timeout)
  while true do
    local n = C.luact_udp_take(self.ctx, self.h, data_out, addr_out, 256, from_len, port_out)
    if n >= 0 then
      return ffi.string(data_out[0], n), ffi.string(addr_out, from_len[0]), port_out[0]
    end
    if n < -1 then return nil, "closed" end
    if not wait(self, "reader", deadline, "udp:receivefrom") then return nil, "timeout" end
    if self.closed then return nil, "closed" end
  end
end

function Udp:settimeout(sec)
  check_udp(self, "udp:settimeout")
  if type(sec) ~= "number" or sec < 0 then
    error("bad 'sec' argument to udp:settimeout (non-negative number expected)", 2)
  end
  self.read_timeout = sec
end

function Udp:close()
  check_udp(self, "udp:close")
  if self.closed then return nil, "closed" end
  self.closed = true
  C.luact_udp_close(self.ctx, self.h)
  loop.on_io(self.h, nil)
  wake(self, "reader")
  return 1
end

-- Forgets the sockets of a finished run of luact.start (their descriptors closed with the
-- thread's context).
function socket.reset()
  epoch = {}
end

return socket
