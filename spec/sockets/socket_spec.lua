-- luact.socket: TCP and Unix-domain sockets on the thread's io_uring, against peers in the same
-- thread, on other threads and in other processes. spec/run runs this directory inside a fresh
-- network namespace (`unshare -n`): loopback only.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

-- Runs main on thread 1 (n_core threads) and returns what it passes to luact.stop.
local function run(main, n_core)
  return helpers.start({ n_core = n_core or 1, timeout = 30 }, main)
end

describe("luact.socket", function()
  setup(function()
    process.require_netns()
  end)

  it("echoes lines between a client and a server on the same thread", function()
    local a, b, c, peer_ip = run(function()
      local luact = require "luact"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        while true do
          local line = sock:receive("*l")
          if not line then break end
          sock:send("echo: " .. line .. "\n")
        end
      end))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      s:send("hello\n")
      local a = s:receive()
      s:send({ "wor", "ld\r\n", "third\n" })
      local b, c = s:receive("*l"), s:receive("*l")
      local ip = s:getpeername()
      s:close()
      luact.stop(a, b, c, ip)
    end)
    assert.same({ "echo: hello", "echo: world", "echo: third", "127.0.0.1" }, { a, b, c, peer_ip })
  end)

  it("reads byte counts, everything until close, and up to a delimiter", function()
    local r = run(function()
      local luact = require "luact"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        sock:send("12345--boundary--tail one--boundary--rest until close")
      end))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      local r = {}
      r[1] = s:receive(3)
      r[2] = s:receive(0)
      local until_b = s:receiveuntil("--boundary--")
      r[3] = until_b()
      local pieces = {}
      while true do
        local piece = until_b(3)
        if not piece then break end
        pieces[#pieces + 1] = piece
      end
      r[4] = table.concat(pieces, "|")
      r[5] = s:receive("*a")
      r[6], r[7] = s:receive(1)
      s:close()
      luact.stop(r)
    end)
    assert.same({ "123", "", "45", "tai|l o|ne", "rest until close", nil, "closed" }, r)
  end)

  it("reassembles data sent one byte per loop turn, and moves payloads larger than every buffer", function()
    local small, big_ok, big_len = run(function()
      local luact = require "luact"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        -- echo raw bytes as they come
        while true do
          local data = sock:receiveany(65536)
          if not data then break end
          assert(sock:send(data))
        end
      end))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      local msg = "one byte at a time\n"
      for i = 1, #msg do
        s:send(msg:sub(i, i))
        luact.tentacle.yield_turn = nil
        luact.clock.sleep(0.001)    -- each byte leaves in its own turn (its own write)
      end
      local small = s:receive("*l")
      -- 8 MiB: more than the send buffer (1 MiB), the read-ahead (256 KiB) and the kernel's
      -- buffers; a reader tentacle drains while the writer sends
      local parts = {}
      for i = 1, 8 * 1024 do parts[i] = string.char(65 + i % 26):rep(1024) end
      local big = table.concat(parts)
      local reader = luact.tentacle(function() return s:receive(#big) end)
      assert(s:send(big))
      local _, _, ok, got = luact.event.wait(nil, reader)
      s:close()
      luact.stop(small, ok and got == big, got and #got)
    end)
    assert.equal("one byte at a time", small)
    assert.equal(8 * 1024 * 1024, big_len)
    assert.is_true(big_ok)
  end)

  it("holds no more than the read-ahead for a reader that takes little at a time", function()
    local most = run(function()
      local luact = require "luact"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        sock:send(("x"):rep(8 * 1024 * 1024))
        sock:receive()
      end, { send_buffer = 16 * 1024 * 1024 }))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      local most = 0
      for _ = 1, 2000 do
        assert(s:receive(100))
        if #s.rb > most then most = #s.rb end   -- (the socket's Lua-side buffer)
        if _ % 100 == 0 then luact.clock.sleep(0.002) end   -- the peer keeps sending meanwhile
      end
      s:close()
      luact.stop(most)
    end)
    assert.is_true(most <= 256 * 1024 + 16 * 1024, "buffered " .. most)
  end)

  it("returns nil, 'timeout' and the partial data when a read times out, and stays usable", function()
    local r = run(function()
      local luact = require "luact"
      local go = luact.event.new()
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        sock:send("partial")
        luact.event.wait(nil, go)
        sock:send(" line\n")
        sock:receive()   -- wait for the client to close
      end))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      s:settimeout(0.05)
      local r = { s:receive("*l") }
      go:emit("go")
      s:settimeouts(1, 1, 5)
      r[4] = s:receive("*l")
      s:close()
      luact.stop(r)
    end)
    assert.same({ nil, "timeout", "partial", " line" }, r)
  end)

  it("says why an OS call or a dial failed in short words, with no Rust names or codes", function()
    local r = run(function()
      local luact = require "luact"
      local r = {}
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function() end))
      r.port = l.port
      r.socket_listen = select(2, luact.socket.listen("tcp://127.0.0.1:" .. l.port, function() end))
      r.listen = select(2, pcall(luact.listen, "tcp://127.0.0.1:" .. l.port))
      local u = assert(luact.socket.udp("udp://127.0.0.1:0"))
      r.udp = select(2, luact.socket.udp("udp://127.0.0.1:" .. u.port))
      r.udp_port = u.port
      local ok, e = pcall(function() return luact.ref("tcp://127.0.0.1:9/x"):timed_hi(1) end)
      r.unreachable = tostring(e)
      luact.stop(r)
    end)
    local p = r.port
    assert.equal(("bind 127.0.0.1:%d: Address already in use"):format(p), r.socket_listen)
    assert.matches(("luact.listen: cannot listen on tcp://127.0.0.1:%d: bind 127.0.0.1:%d: Address already in use$"):format(p, p), r.listen)
    assert.equal(("bind 127.0.0.1:%d: Address already in use"):format(r.udp_port), r.udp)
    for k, v in pairs(r) do
      if k ~= "port" and k ~= "udp_port" then
        v = tostring(v)
        for _, rust in ipairs { "Os:", "os:", "os error", "BadArgument", "Unreachable:", "OtherError", "Other(" } do
          assert.falsy(v:find(rust, 1, true), k .. ": " .. v)
        end
      end
    end
    assert.truthy(r.unreachable:find("actor_unreachable", 1, true), r.unreachable)
  end)

  it("fails a connect to a port nobody listens on with 'connection refused'", function()
    local sock, err = run(function()
      local luact = require "luact"
      luact.stop(luact.socket.connect("tcp://127.0.0.1:1"))
    end)
    assert.is_nil(sock)
    assert.equal("connection refused", err)
  end)

  it("serves and connects over IPv6, and sends UDP datagrams to an IPv6 peer", function()
    local r = run(function()
      local luact = require "luact"
      local l = assert(luact.socket.listen("tcp://[::1]:0", function(sock)
        local line = sock:receive("*l")
        sock:send(("%s from %s\n"):format(line, (sock:getpeername())))
      end))
      local s = assert(luact.socket.connect("tcp://[::1]:" .. l.port))
      s:send("hi\n")
      local r = { line = s:receive("*l"), peer = { s:getpeername() } }
      s:close()
      local u1, u2 = assert(luact.socket.udp("udp://[::1]:0")), assert(luact.socket.udp("udp://[::1]:0"))
      r.sent = u1:sendto("ping", "::1", u2.port)
      r.got = { u2:receivefrom() }
      luact.stop(r)
    end)
    assert.equal("hi from ::1", r.line)
    assert.equal("::1", r.peer[1])
    assert.is_true(r.sent)
    assert.equal("ping", r.got[1])
    assert.equal("::1", r.got[2])
  end)

  it("resolves a host name off the loop and tries its addresses in order; an unknown name is an error", function()
    local r = run(function()
      local luact = require "luact"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock) sock:send("hello\n") end))
      local r = {}
      -- a name from /etc/hosts (every Debian machine has one for 127.0.0.1): the system
      -- resolver runs on an offload pool thread)
      local name
      for line in io.lines("/etc/hosts") do
        local ip, names = line:match("^%s*127%.0%.0%.1%s+(.+)$")
        for n in (names or ""):gmatch("%S+") do if n ~= "localhost" then name = name or n end end
      end
      r.name = name
      if name then
        local s, err = luact.socket.connect(("tcp://%s:%d"):format(name, l.port))
        r.by_name = s and s:receive("*l") or err
      end
      r.unknown = { luact.socket.connect("tcp://no-such-host.invalid:80", { timeout = 5 }) }
      luact.stop(r)
    end)
    if r.name then assert.equal("hello", r.by_name) end
    assert.is_nil(r.unknown[1])
    assert.matches("^no%-such%-host%.invalid could not be resolved %(.+%)$", r.unknown[2])
  end)

  it("fails connects the network rejects with 'host unreachable' and 'network unreachable'", function()
    -- nftables in this namespace answers SYNs to 127.0.0.1 ports 9 and 10 with ICMP errors
    local nft = "nft add table inet luact_spec && " ..
      "nft add chain inet luact_spec out '{ type filter hook output priority 0; }' && " ..
      "nft add rule inet luact_spec out ip daddr 127.0.0.1 tcp dport 9 reject with icmp type host-unreachable && " ..
      "nft add rule inet luact_spec out ip daddr 127.0.0.1 tcp dport 10 reject with icmp type net-unreachable"
    assert(os.execute(nft .. " 2>/dev/null") == 0, "nft failed")
    local ok, a, b = pcall(run, function()
      local luact = require "luact"
      local a = { luact.socket.connect("tcp://127.0.0.1:9", { timeout = 5 }) }
      local b = { luact.socket.connect("tcp://127.0.0.1:10", { timeout = 5 }) }
      luact.stop(a, b)
    end)
    os.execute("nft delete table inet luact_spec 2>/dev/null")
    assert(ok, a)
    assert.same({ nil, "host unreachable" }, a)
    assert.same({ nil, "network unreachable" }, b)
  end)

  it("fails a connect that gets no answer within its timeout with 'timeout'", function()
    local results = run(function()
      local luact = require "luact"
      local wait_peer = require("helpers.sockets").wait_peer
      local process = require "helpers.process"
      -- a listener with a full backlog that never accepts: the kernel drops further SYNs
      local p = process.spawn("python3 spec/sockets/peer.py hold 127.0.0.1 0")
      local port = wait_peer(p, "listening (%d+)\n")
      local results, socks = {}, {}
      for i = 1, 6 do
        local s, err = luact.socket.connect("tcp://127.0.0.1:" .. port, { connect_timeout = 0.3 })
        if s then socks[#socks + 1] = s else results[#results + 1] = err end
      end
      for _, s in ipairs(socks) do s:close() end
      process.cleanup(p)
      luact.stop(results)
    end)
    assert.is_true(#results >= 1, "every connect was answered")
    for _, err in ipairs(results) do assert.equal("timeout", err) end
  end)

  it("tells a reader the peer reset the connection, and a reader of a closed peer 'closed'", function()
    local reset, closed = run(function()
      local luact = require "luact"
      local mode = "abort"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        sock:receive(1)
        if mode == "abort" then sock:close(true) else sock:close() end
      end))
      local s1 = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      s1:send("x")
      local r1 = { s1:receive("*a") }
      mode = "close"
      local s2 = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      s2:send("x")
      local r2 = { s2:receive("*l") }
      s1:close(); s2:close()
      luact.stop(r1, r2)
    end)
    assert.same({ nil, "connection reset", "" }, reset)
    assert.same({ nil, "closed", "" }, closed)
  end)

  it("serves a peer that half-closes: reads all it sent, then answers it", function()
    local out = run(function()
      local luact = require "luact"
      local wait_peer = require("helpers.sockets").wait_peer
      local process = require "helpers.process"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        local all = assert(sock:receive("*a"))
        sock:send("you sent: " .. all)
      end))
      local p = process.spawn("python3 spec/sockets/peer.py halfclose 127.0.0.1 " .. l.port)
      local got, out = wait_peer(p, "got ([^\n]*)\n")
      process.cleanup(p)
      luact.stop(got or out)
    end)
    assert.equal("you sent: first part, second part", out)
  end)

  it("echoes for 50 concurrent clients of another process", function()
    local out = run(function()
      local luact = require "luact"
      local wait_peer = require("helpers.sockets").wait_peer
      local process = require "helpers.process"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        while true do
          local line = sock:receive("*l")
          if not line then break end
          sock:send("echo: " .. line .. "\n")
        end
      end))
      local p = process.spawn("python3 spec/sockets/peer.py echo 127.0.0.1 " .. l.port .. " 50 40")
      local got, out = wait_peer(p, "errors ([^\n]*)\n")
      process.cleanup(p)
      luact.stop(got or out, l.accepted)
    end)
    assert.equal("0", out)
  end)

  it("accepts on every thread with threads = 'all' (SO_REUSEPORT)", function()
    local out, seen = run(function()
      local luact = require "luact"
      if luact.thread_id ~= 1 then return end
      local wait_peer = require("helpers.sockets").wait_peer
      local process = require "helpers.process"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        local luact = require "luact"
        while true do
          local line = sock:receive("*l")
          if not line then break end
          sock:send("echo: " .. line .. "\n")
        end
        luact.ref("counter"):hit(luact.thread_id)
      end, { threads = "all" }))
      local counts = {}
      luact.register("counter", { hit = function(_, tid) counts[tid] = (counts[tid] or 0) + 1 end })
      local p = process.spawn("python3 spec/sockets/peer.py echo 127.0.0.1 " .. l.port .. " 40 5")
      local got, out = wait_peer(p, "errors ([^\n]*)\n")
      process.cleanup(p)
      for _ = 1, 100 do
        if (counts[1] or 0) + (counts[2] or 0) >= 40 then break end
        luact.clock.sleep(0.02)
      end
      luact.stop(got or out, counts)
    end, 2)
    assert.equal("0", out)
    assert.equal(40, (seen[1] or 0) + (seen[2] or 0))
    assert.is_true((seen[1] or 0) > 0, "thread 1 accepted none")
    assert.is_true((seen[2] or 0) > 0, "thread 2 accepted none")
  end)

  it("stops accepting past max_connections until a connection closes", function()
    local r = run(function()
      local luact = require "luact"
      local live, most = 0, 0
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        live = live + 1
        if live > most then most = live end
        sock:send("hi\n")
        sock:receive("*l")
        live = live - 1
      end, { max_connections = 2 }))
      local socks = {}
      for i = 1, 3 do socks[i] = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port)) end
      local a, b = socks[1]:receive(), socks[2]:receive()
      socks[3]:settimeout(0.2)
      local c, err = socks[3]:receive()   -- accepted by the kernel, not by luact: no greeting
      socks[1]:close()
      socks[3]:settimeout(5)
      local c2 = socks[3]:receive()
      socks[2]:close(); socks[3]:close()
      luact.stop({ a, b, c, err, c2, most })
    end)
    assert.same({ "hi", "hi", nil, "timeout", "hi", 2 }, r)
  end)

  it("pauses accepting while out of file descriptors (no spinning core), and serves once one is back, on every thread", function()
    local r = run(function()
      local luact = require "luact"
      if luact.thread_id ~= 1 then return end
      local ffi = require "ffi"
      ffi.cdef [[
        struct spec_rlimit { unsigned long cur, max; };
        int getrlimit(int resource, struct spec_rlimit *r);
        int setrlimit(int resource, const struct spec_rlimit *r);
        struct spec_rusage { long utime_s, utime_us, stime_s, stime_us; long rest[14]; };
        int getrusage(int who, struct spec_rusage *u);
      ]]
      local RLIMIT_NOFILE, RUSAGE_SELF = 7, 0
      local function cpu_seconds()
        local u = ffi.new("struct spec_rusage")
        ffi.C.getrusage(RUSAGE_SELF, u)
        return tonumber(u.utime_s + u.stime_s) + tonumber(u.utime_us + u.stime_us) / 1e6
      end
      -- the limit first: an accept takes the limit of when it was submitted (io_uring reads it
      -- then), and each thread submits its accept as soon as it listens
      local lim = ffi.new("struct spec_rlimit")
      assert(ffi.C.getrlimit(RLIMIT_NOFILE, lim) == 0)
      lim.cur = 256
      assert(ffi.C.setrlimit(RLIMIT_NOFILE, lim) == 0)
      -- both threads listen (SO_REUSEPORT): the kernel may hand the client to either one
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        sock:send("hi\n")
        sock:receive("*l")
        sock:close()
      end, { threads = "all" }))
      local listening = 0
      for _ = 1, 100 do                                   -- bounded: 2 s for thread 2's listener
        local ss = io.popen("ss -Hltn 'sport = :" .. l.port .. "'")
        local out = ss:read("*a")
        ss:close()
        listening = select(2, out:gsub("LISTEN", ""))
        if listening >= 2 then break end
        luact.clock.sleep(0.02)
      end
      local files = {}
      for _ = 1, 300 do                                   -- bounded: the limit is 256
        local f = io.open("/dev/null")
        if not f then break end
        files[#files + 1] = f
      end
      local full = #files < 300
      table.remove(files):close()                         -- room for the client's socket alone
      local sock = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      sock:settimeout(1)
      local before = cpu_seconds()
      local got, err = sock:receive("*l")                 -- the kernel connected it; accept fails
      local spent = cpu_seconds() - before
      for _, f in ipairs(files) do f:close() end
      sock:settimeout(5)
      local again = sock:receive("*l")                    -- accepted at the next retry (<= 1 s)
      sock:close()
      luact.stop({ listening, full, got, err, again, spent < 0.5 or spent })
    end, 2)
    assert.same({ 2, true, nil, "timeout", "hi", true }, r)
  end)

  it("bounds what a peer that does not read can make it queue (send_buffer), then times out", function()
    local r = run(function()
      local luact = require "luact"
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        luact.clock.sleep(2)   -- never reads
      end))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port, { send_buffer = 65536, send_timeout = 0.3 }))
      local big = ("x"):rep(64 * 1024 * 1024)
      local r = { s:send(big) }
      s:close()
      luact.stop(r)
    end)
    assert.same({ nil, "timeout" }, r)
  end)

  it("aborts a closed connection whose peer does not take what was queued after its linger time", function()
    local r = run(function()
      local luact = require "luact"
      -- one connection at a time; each gets a greeting and 32 MiB (queued at once: send_buffer
      -- is larger), then the handler returns and the socket closes
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock)
        sock:send("hi\n" .. ("x"):rep(32 * 1024 * 1024))
      end, { max_connections = 1, send_buffer = 64 * 1024 * 1024, linger = 0.3 }))
      local url = "tcp://127.0.0.1:" .. l.port
      local a = assert(luact.socket.connect(url))     -- never reads: the close cannot finish
      local b = assert(luact.socket.connect(url, { read_timeout = 5 }))
      -- b is accepted only once a's connection is gone: 0.3 s after its close, not never
      local r = { b:receive("*l") }
      luact.clock.sleep(0.1)
      r[4] = select(2, a:receive(64 * 1024 * 1024))   -- what a sees in the end
      a:close(); b:close()
      luact.stop(r)
    end)
    assert.equal("hi", r[1])
    assert.equal("connection reset", r[4])
  end)

  it("serves STAGE-style callbacks (accept, receive, close)", function()
    local r = run(function()
      local luact = require "luact"
      local log = {}
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", {
        accept = function(sock, peer) log[#log + 1] = "accept " .. (peer:match("^127%.0%.0%.1:%d+$") and "ok" or peer); return true end,
        receive = function(sock, data) log[#log + 1] = "receive"; sock:send(data:upper()) end,
        close = function(sock, reason) log[#log + 1] = "close " .. reason end,
      }))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      s:send("abc")
      local got = s:receive(3)
      s:close()
      for _ = 1, 100 do
        if #log == 3 then break end
        luact.clock.sleep(0.01)
      end
      luact.stop({ got, log })
    end)
    assert.same({ "ABC", { "accept ok", "receive", "close closed" } }, r)
  end)

  it("connects to a unix:// socket, and fails one with no listener", function()
    local path = os.tmpname()
    os.remove(path)
    local r = helpers.start({ n_core = 1, timeout = 30, path = path }, function()
      local luact = require "luact"
      local path = luact.opts.path
      assert(luact.socket.listen("unix://" .. path, function(sock) sock:send("unix " .. sock:receive() .. "\n") end))
      local s = assert(luact.socket.connect("unix://" .. path))
      s:send("hello\n")
      local line = s:receive()
      s:close()
      local missing = { luact.socket.connect("unix://" .. path .. ".missing") }
      luact.stop({ line, missing[1], missing[2] })
    end)
    os.remove(path)
    assert.same({ "unix hello", nil, "no such file" }, r)
  end)

  it("sends and receives UDP datagrams (sendto / receivefrom), with a timeout, on two threads", function()
    local r = run(function()
      local luact = require "luact"
      if luact.thread_id == 2 then
        -- an echo on thread 2, upper-cased
        local u = assert(luact.socket.udp("udp://127.0.0.1:0", { timeout = 0 }))
        luact.register("udp_echo_port", { port = function() return u.port end })
        while true do
          local data, ip, port = u:receivefrom()
          if not data then break end
          u:sendto(data:upper(), ip, port)
        end
        return
      end
      while not luact.resolve("udp_echo_port") do luact.clock.sleep(0.01) end
      local echo_port = luact.ref("udp_echo_port"):port()
      local u = assert(luact.socket.udp("udp://127.0.0.1:0", { timeout = 2 }))
      local r = {}
      for i = 1, 20 do
        -- datagrams are not retried: loopback does not lose them under this load
        assert(u:sendto("datagram " .. i, "127.0.0.1", echo_port))
      end
      local got = {}
      for _ = 1, 20 do
        local data, ip, port = u:receivefrom()
        if not data then break end
        got[#got + 1] = data
        r.from = ip .. ":" .. port
      end
      r.count = #got
      r.first = got[1]
      assert(u:sendto(("x"):rep(60000), "127.0.0.1", echo_port))
      local big = u:receivefrom()
      r.big_back = big and #big
      u:settimeout(0.05)
      r.timeout = { u:receivefrom() }
      r.too_big = pcall(u.sendto, u, ("x"):rep(70000), "127.0.0.1", echo_port)
      r.bad_port = pcall(u.sendto, u, "x", "127.0.0.1", 0)
      u:close()
      r.closed = { u:receivefrom() }
      luact.stop(r, echo_port)
    end, 2)
    assert.equal(20, r.count)
    assert.equal("DATAGRAM 1", r.first)
    assert.matches("^127%.0%.0%.1:%d+$", r.from)
    assert.equal(60000, r.big_back)
    assert.same({ nil, "timeout" }, r.timeout)
    assert.is_false(r.too_big)
    assert.is_false(r.bad_port)
    assert.same({ nil, "closed" }, r.closed)
  end)

  it("raises on misuse: bad arguments, a socket of an earlier run, a socket sent to another thread", function()
    local errs = run(function()
      local luact = require "luact"
      if luact.thread_id == 2 then
        luact.register("keeper", { keep = function(_, x) return x end })
        return
      end
      local errs = {}
      local function catch(f, ...) local ok, e = pcall(f, ...); errs[#errs + 1] = not ok and tostring(e) or "no error" end
      catch(luact.socket.connect, "http://127.0.0.1:80")
      catch(luact.socket.connect, "tcp://127.0.0.1:1", { timeout = -1 })
      catch(luact.socket.listen, "tcp://127.0.0.1:0", 42)
      local l = assert(luact.socket.listen("tcp://127.0.0.1:0", function(sock) sock:receive() end))
      local s = assert(luact.socket.connect("tcp://127.0.0.1:" .. l.port))
      catch(s.receive, s, "*x")
      catch(s.send, s, {})
      catch(s.send, s, true)
      while not luact.resolve("keeper") do luact.clock.sleep(0.01) end
      catch(function() return luact.ref("keeper"):keep(s) end)
      OLD_SOCKET = s
      luact.stop(errs)
    end, 2)
    local old = OLD_SOCKET
    OLD_SOCKET = nil
    assert.matches("bad 'url' argument to luact.socket.connect", errs[1], 1, true)
    assert.matches("bad 'timeout' option to luact.socket.connect", errs[2], 1, true)
    assert.matches("bad 'handler' argument to luact.socket.listen", errs[3], 1, true)
    assert.matches("bad 'pattern' argument to socket:receive", errs[4], 1, true)
    assert.equal("no error", errs[5])   -- an empty array sends nothing
    assert.matches("bad 'data' argument to socket:send", errs[6], 1, true)
    assert.matches("argument #1 to 'keep' (at .", errs[7], 1, true)
    assert.matches("cannot be sent to another VM", errs[7], 1, true)
    assert.has_error(function() old:receive() end, "socket:receive: this socket belongs to thread 1 of an earlier or other run of luact.start")
  end)
end)
