-- Nodes: several luajit processes in a fresh network namespace (spec/run runs this directory
-- under `unshare -n`), calling each other over the authenticated node transport and the
-- tcp:// / http:// listeners.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

local SECRET = "s3cret"
local B = { addr = "127.0.0.2:7201", tcp = "tcp://127.0.0.2:8080", http = "http://127.0.0.2:8081",
            udp = "udp://127.0.0.2:8082" }
local C = { addr = "127.0.0.3:7301", tcp = "tcp://127.0.0.3:8080", http = "http://127.0.0.3:8081" }

-- A CA, a server certificate for 127.0.0.2 and a client certificate, made with openssl (the
-- commands documented at the top of src/tls.rs).
local function make_certs() return require("helpers.certs").make("127.0.0.2") end
local CERTS

local function serve(node, secret, env)
  local p = process.spawn(("%sluajit spec/nodes/serve.lua %s %s %s %s '%s' %s"):format(
    env or "", node.addr, secret or SECRET, node.tcp, node.http, node.udp or "", node == B and CERTS or ""))
  process.wait_for(p, "ready")
  return p
end

-- B's handshake failures of `reason` (or, with side, its flow-control pauses of that side),
-- asked through its http:// listener: a number.
local function b_metric(what, arg)
  local out = process.run(("curl -s -m 5 -X POST -d '[\"%s\"]' http://127.0.0.2:8081/svc/metrics/%s"):format(arg, what))
  return tonumber(out:match("^%[(%d+)%]")) or error("no answer from B's /svc/metrics: " .. out)
end

-- Polls (bounded) until B's metric reaches `at_least`; returns the last value.
local function b_metric_reaches(what, arg, at_least)
  local v
  for _ = 1, 50 do
    v = b_metric(what, arg)
    if v >= at_least then break end
    os.execute("sleep 0.1")
  end
  return v
end

describe("luact nodes", function()
  local b, c
  setup(function()
    process.require_netns()
    os.execute("ip link set lo up")
    CERTS = make_certs()
  end)
  teardown(function()
    if CERTS then os.execute("rm -rf " .. CERTS) end
  end)
  before_each(function() b = serve(B) end)
  after_each(function()
    process.cleanup(b); process.cleanup(c)
    b, c = nil, nil
  end)

  it("call a registered actor on another node through its listener, and actors it returns", function()
    local r = helpers.start({ n_core = 2, address = "127.0.0.1:7101", secret = SECRET, peer = B.tcp }, function()
      local luact = require "luact"
      if luact.thread_id ~= 1 then return end
      local peer = luact.opts.peer
      local echo = luact.ref(peer .. "/svc/echo")
      local out = {}
      out.hoge = echo:hoge()
      out.many = { echo:echo(1, nil, "three") }
      out.timed = echo:timed_hoge(2)
      out.async = { luact.future(echo:async_hoge()):get() }
      local e = select(2, pcall(echo.fail, echo))
      out.fail = { e.name, e.message:find("remote failure", 1, true) ~= nil }
      -- an actor created on the other node, returned as a reference: called over the node transport
      local made = luact.ref(peer .. "/svc/factory"):make("made remotely")
      out.made = made:get()
      out.made_machine = require("luact.actor.ref").parts(made) ~= luact.machine_id
      -- the other node calls back an actor of ours
      local mine = luact({ echo = function(self, ...) return "mine", ... end })
      out.back = { luact.ref(peer .. "/svc/caller"):call_back(mine, 7) }
      out.missing = select(2, pcall(luact.ref(peer .. "/svc/none").hoge, luact.ref(peer .. "/svc/none"))).name
      luact.stop(out)
    end)
    assert.equal(100, r.hoge)
    assert.same({ 1, nil, "three" }, r.many)
    assert.equal(100, r.timed)
    assert.same({ true, 100 }, r.async)
    assert.same({ "actor_runtime_error", true }, r.fail)
    assert.equal("made remotely", r.made)
    assert.is_true(r.made_machine)
    assert.same({ "mine", 7 }, r.back)
    assert.equal("actor_no_body", r.missing)
  end)

  it("deliver an error raised as a plain table intact, through a listener and over the node transport", function()
    local r = helpers.start({ n_core = 1, address = "127.0.0.1:7101", secret = SECRET, peer = B.tcp }, function()
      local luact = require "luact"
      local peer = luact.opts.peer
      local echo = luact.ref(peer .. "/svc/echo")
      local out = {}
      local _, e = pcall(echo.fail_data, echo, 1)        -- through the tcp:// listener
      out.listener = e
      local made = luact.ref(peer .. "/svc/factory"):make("x")
      _, e = pcall(made.fail_data, made, 2)             -- over the node transport
      out.node = e
      out.alive = made:get()                            -- a plain error does not kill the actor
      luact.stop(out)
    end)
    assert.same({ code = 1, why = { "plain", "data" } }, r.listener)
    assert.same({ code = 2, why = { "plain", "data" } }, r.node)
    assert.equal("x", r.alive)
  end)

  it("call methods named like a reference's fields through tcp:// references and the references they return", function()
    local r = helpers.start({ n_core = 1, address = "127.0.0.1:7101", secret = SECRET, peer = B.tcp }, function()
      local luact = require "luact"
      local fields = luact.ref(luact.opts.peer .. "/svc/fields")
      local out = {}
      for _, k in ipairs { "url", "addr", "vid", "tls", "m", "t", "e", "l", "s" } do
        out[#out + 1] = fields[k](fields)
      end
      local plain = fields:me()        -- a plain reference, over the node transport
      for _, k in ipairs { "m", "t", "e", "l", "s" } do out[#out + 1] = plain[k](plain) end
      luact.stop(out)
    end)
    assert.same({ "url", "addr", "vid", "tls", "m", "t", "e", "l", "s", "m", "t", "e", "l", "s" }, r)
  end)

  it("hold back a sender while a receiving thread is blocked, then deliver everything in order", function()
    process.cleanup(b)
    b = serve(B, nil, "LUACT_SPEC_INBOX=64 ")          -- small inboxes: deliveries stall at once
    local r = helpers.start({ n_core = 1, address = "127.0.0.1:7103", secret = SECRET, peer = B.tcp }, function()
      local luact = require "luact"
      -- over the node transport: a gate on B's thread 2 and one on its thread 1 (which also
      -- reads the connection), sent to alternately so that one read holds frames for both
      local blocked = luact.ref(luact.opts.peer .. "/svc/gates"):make()
      local busy = luact.ref(luact.opts.peer .. "/svc/gates1"):make()
      blocked:notify_block(0.5)                       -- B's thread 2 stops reading its inbox
      local N, sent = 3000, 0
      local deadline = luact.clock.get() + 20
      while sent < 2 * N and luact.clock.get() < deadline do
        local gate = sent % 2 == 0 and blocked or busy
        local ok, e = pcall(gate.notify_note, gate, math.floor(sent / 2) + 1)
        if ok then
          sent = sent + 1
        else
          assert(e.name == "actor_overload", tostring(e))
          luact.clock.sleep(0.001)
        end
      end
      local function in_order(seen)
        if #seen ~= N then return false end
        for i = 1, #seen do if seen[i] ~= i then return false end end
        return true
      end
      local a, b2 = blocked:timed_list(20), busy:timed_list(20)
      luact.stop({ sent = sent, got = { #a, #b2 }, in_order = { in_order(a), in_order(b2) } })
    end)
    assert.equal(6000, r.sent)
    assert.same({ 3000, 3000 }, r.got)
    assert.same({ true, true }, r.in_order)
    -- B counted its flow control: deliveries that waited for thread 2's full inbox
    assert.is_true(b_metric("flow", "receive") >= 1)
  end)

  it("fail calls in flight within 1 s when a node is killed; the survivors keep serving", function()
    c = serve(C)
    local r = helpers.start({ n_core = 2, address = "127.0.0.1:7102", secret = SECRET, peer_b = B.tcp,
                              peer_c = C.tcp, b_pid = b.pid }, function()
      local luact = require "luact"
      if luact.thread_id ~= 1 then return end
      local slow = luact.ref(luact.opts.peer_b .. "/svc/slow")
      local factory = luact.ref(luact.opts.peer_b .. "/svc/factory")
      local direct = factory:make("on b")            -- reached over the node transport
      local waiters = {}
      for i = 1, 5 do
        waiters[i] = luact.tentacle(function()
          local ok, e = pcall(slow.timed_nap, slow, 10, 5)
          return e and e.name
        end)
      end
      waiters[6] = luact.tentacle(function()
        local ok, e = pcall(direct.get, direct)   -- answered at once...
        local ok2, e2 = pcall(luact.ref(luact.opts.peer_b .. "/svc/factory").make, factory, 1)
        return ok
      end)
      local down = {}
      luact.monitor(direct, function(target, reason) down[#down + 1] = reason.name end)
      luact.clock.sleep(0.2)
      local t0 = luact.clock.get()
      os.execute("kill -9 " .. luact.opts.b_pid)
      local results = luact.event.join(luact.clock.alarm(3), unpack(waiters, 1, 5))
      local took = luact.clock.get() - t0
      local names = {}
      for i, res in ipairs(results) do names[i] = res[4] end
      luact.clock.sleep(0.1)
      local after = select(2, pcall(direct.get, direct)).name
      local c_still = luact.ref(luact.opts.peer_c .. "/svc/echo"):hoge()
      luact.stop({ names = names, took = took, down = down, after = after, c_still = c_still })
    end)
    assert.same({ "actor_unreachable", "actor_unreachable", "actor_unreachable", "actor_unreachable",
                  "actor_unreachable" }, r.names)
    assert.is_true(r.took < 1.0, "took " .. r.took)
    assert.same({ "actor_unreachable" }, r.down)
    assert.equal("actor_unreachable", r.after)
    assert.equal(100, r.c_still)
  end)

  it("refuse a node that does not know the secret, saying why on both sides", function()
    local log = os.tmpname()
    local ok, name, message, refused = helpers.start({ n_core = 1, address = "127.0.0.1:7103", secret = "wrong", peer = B.tcp, log = log }, function()
      local luact = require "luact"
      luact.logger.redirect(luact.opts.log)
      -- the listener is the public door: names are reachable without the secret...
      local factory = luact.ref(luact.opts.peer .. "/svc/factory")
      local made = factory:make("x")
      -- ...but the actor it returns lives behind the node transport, which needs the secret
      local ok, e = pcall(made.get, made)
      luact.logger.redirect()
      local hs = luact.metrics().threads[1].handshake_failures
      luact.stop(ok, e and e.name, e and e.message, hs.bad_secret + hs.peer_refused)
    end)
    assert.is_false(ok)
    assert.equal("actor_unreachable", name)
    -- counted on both sides: the side that checked the proof as a bad secret, the other as refused
    assert.is_true(refused >= 1)
    assert.is_true(b_metric_reaches("failures", "bad_secret", 1) + b_metric("failures", "peer_refused") >= 1)
    assert.truthy(message:find("authentication failed (wrong cluster secret?)", 1, true), message)
    local f = assert(io.open(log)); local mine = f:read("*a"); f:close(); os.remove(log)
    assert.truthy(mine:find("WARN.-lost the connection to node 127%.0%.0%.2:7201: .-authentication failed"), mine)
    -- (B logs when its loop takes the event: maybe after our call failed)
    assert.truthy(process.wait_for(b, "WARN.-127%.0%.0%.1.-authentication failed", 5), process.output(b))
  end)

  it("speak TLS on tls:// and ssl:// listeners, with client certificates when asked", function()
    local r = helpers.start({ n_core = 1, certs = CERTS }, function()
      local luact = require "luact"
      local dir = luact.opts.certs
      local out = {}
      local plain = luact.ref("tls://127.0.0.2:8443/svc/echo", { ca = dir .. "/ca.pem" })
      out.plain = plain:hoge()
      out.many = { plain:echo("a", nil, 3) }
      local wrong = luact.ref("tls://127.0.0.2:8443/svc/echo", { ca = dir .. "/other.pem" })
      local e = select(2, pcall(wrong.hoge, wrong))
      out.wrong_ca, out.wrong_ca_message = e.name, e.message
      local mutual = luact.ref("ssl://127.0.0.2:8444/svc/echo",
        { ca = dir .. "/ca.pem", cert = dir .. "/client.pem", key = dir .. "/client.key" })
      out.mutual = mutual:hoge()
      luact.stop(out)
    end)
    assert.equal(100, r.plain)
    assert.same({ "a", nil, 3 }, r.many)
    assert.equal("actor_unreachable", r.wrong_ca)
    -- the reason reaches the caller, and the server logs the refusal
    assert.truthy(r.wrong_ca_message:find("UnknownIssuer", 1, true), r.wrong_ca_message)
    assert.truthy(process.wait_for(b, "WARN.-refused a tls:// client from 127%.0%.0%.1:%d+: .-UnknownCA", 5), process.output(b))
    assert.equal(100, r.mutual)
  end)

  it("refuse a client without a certificate on a listener that requires one", function()
    local name = helpers.start({ n_core = 1, certs = CERTS }, function()
      local luact = require "luact"
      local anon = luact.ref("tls://127.0.0.2:8444/svc/echo", { ca = luact.opts.certs .. "/ca.pem" })
      local ok, e = pcall(anon.timed_hoge, anon, 2)
      luact.stop(e and e.name)
    end)
    assert.equal("actor_unreachable", name)
  end)

  it("answer curl on the http listener", function()
    local function curl(args)
      return process.run("curl -s -o - -w ' %{http_code}' " .. args)
    end
    assert.equal('[100] 200', curl("-X POST -d '[]' http://127.0.0.2:8081/svc/echo/hoge"))
    assert.equal('[1,"a",null,true] 200', curl("-X POST -d '[1,\"a\",null,true]' http://127.0.0.2:8081/svc/echo/echo"))
    -- the count of results is kept: trailing nils come back as null
    assert.equal('[1,null,null] 200', curl("-X POST -d '[1,null,null]' http://127.0.0.2:8081/svc/echo/echo"))
    assert.equal('ok 200', curl("http://127.0.0.2:8081/health"))
    local missing = curl("-X POST -d '[]' http://127.0.0.2:8081/svc/none/hoge")
    assert.truthy(missing:find('"error":"actor_no_body"', 1, true), missing)
    assert.truthy(missing:find(" 404$"), missing)
    local bad = curl("-X POST -d 'not json' http://127.0.0.2:8081/svc/echo/hoge")
    assert.truthy(bad:find(" 400$"), bad)
    local hook = curl("-X POST -d '[]' http://127.0.0.2:8081/svc/echo/__actor_destroy__")
    assert.truthy(hook:find('"error":"actor_no_method"', 1, true), hook)
    assert.truthy(hook:find(" 404$"), hook)
    -- keep-alive: the second request reuses the first one's connection (0 new connects)
    local two = process.run("curl -s -o - -w ' %{http_code} %{num_connects}' -X POST -d '[]' http://127.0.0.2:8081/svc/echo/hoge"
      .. " --next -w ' %{http_code} %{num_connects}' -X POST -d '[]' http://127.0.0.2:8081/svc/echo/hoge")
    assert.equal('[100] 200 1[100] 200 0', two)
  end)

  it("give calls through listeners a deadline: 5 s by default, the listener's, or the client's", function()
    local function curl(args)
      return process.run("curl -s -o - -w ' %{http_code}' " .. args)
    end
    -- the client's: an X-Luact-Timeout header, a CALL frame's thread field (milliseconds)
    local header = curl("-X POST -H 'X-Luact-Timeout: 0.3' -d '[3]' http://127.0.0.2:8081/svc/slow/nap")
    assert.truthy(header:find('"error":"actor_timeout"', 1, true), header)
    assert.truthy(header:find(" 504$"), header)
    local bad = curl("-X POST -H 'X-Luact-Timeout: soon' -d '[3]' http://127.0.0.2:8081/svc/slow/nap")
    assert.truthy(bad:find(" 400$"), bad)
    local frame = process.run([[/usr/bin/python3 -c '
import msgpack, socket, struct
s = socket.create_connection(("127.0.0.2", 8080))
body = msgpack.packb(["/svc/slow", "nap", 3])
s.sendall(struct.pack("<IBBHI", 8 + len(body), 4, 1, 300, 7) + body)   # CALL, msgpack, 300 ms, corr 7
b = b""
while len(b) < 12 or len(b) < 4 + struct.unpack("<I", b[:4])[0]:
    b += s.recv(4096)
print(struct.unpack("<IBBHI", b[:12])[4], msgpack.unpackb(b[12:])[1]["error"])
']])
    assert.equal("7 actor_timeout\n", frame)
    -- the listener's (opts.timeout = 0.3 on port 8091), and the 5 s default
    local listener = curl("-X POST -d '[3]' http://127.0.0.2:8091/svc/slow/nap")
    assert.truthy(listener:find(" 504$"), listener)
    local default = curl("-X POST -d '[6]' http://127.0.0.2:8081/svc/slow/nap")
    assert.truthy(default:find('"error":"actor_timeout"', 1, true), default)
    assert.truthy(default:find(" 504$"), default)
    -- in time
    assert.equal('["woke"] 200', curl("-X POST -H 'X-Luact-Timeout: 2' -d '[0.01]' http://127.0.0.2:8081/svc/slow/nap"))
    -- a luact caller's own deadline goes with its call (its timed_ through a tcp:// reference)
    local r = helpers.start({ n_core = 1, peer = B.tcp }, function()
      local luact = require "luact"
      local slow = luact.ref(luact.opts.peer .. "/svc/slow")
      local ok, e = pcall(slow.timed_nap, slow, 0.3, 3)
      luact.stop(e.name)
    end)
    assert.equal("actor_timeout", r)
  end)

  it("answer actor_timeout when a method caught its nested call's timeout at the caller's deadline, its callee behind a listener", function()
    -- (the same rule as spec/integration/actor_flow_spec.lua, with the nested call leaving the
    -- node: a middle actor on the caller's thread and one on another thread)
    local r = helpers.start({ n_core = 2, peer = B.tcp }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local function middle()
        return { relay = function(self, s)
          local luact = require "luact"
          local slow = luact.ref(luact.opts.peer .. "/svc/slow")
          local ok, e = pcall(slow.nap, slow, s)
          return ok and "nap ended" or "caught " .. tostring(e.name)
        end }
      end
      if luact.thread_id == 2 then luact.register("/spec/middle_elsewhere", middle()); return end
      luact.register("/spec/middle_here", middle())
      local out = {}
      for _, vid in ipairs({ "/spec/middle_here", "/spec/middle_elsewhere" }) do
        local m = h.wait_for(vid)
        for _ = 1, 2 do
          local ok, v = pcall(m.timed_relay, m, 0.3, 3)
          out[#out + 1] = ok and v or v.name
        end
      end
      luact.stop(out)
    end)
    assert.same({ "actor_timeout", "actor_timeout", "actor_timeout", "actor_timeout" }, r)
  end)

  it("serve a client in another language (Python, MessagePack)", function()
    local out = process.run("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080")
    assert.equal("hoge -> [True, 100]\necho -> [True, 1, 'two', None, 3.5]\nmissing -> [False, {'error': 'actor_no_body'}]\n", out)
  end)

  it("take one-way notify_ datagrams on a udp listener, dropping malformed ones", function()
    local out = process.run("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080 --udp 8082")
    assert.equal("notes -> [True, ['one', 'two', 'three']]\n", out)
  end)

  it("refuse a node client whose id another connected client has, so that neither takes the other's replies", function()
    -- two clients made to draw the same id (a test hook); the first calls B for 8 s over its
    -- node link, the second comes meanwhile
    local cmd = "LUACT_TEST_CLIENT_ID=4242 luajit spec/nodes/node_client.lua %s %s %s %s"
    local one = process.spawn(cmd:format(SECRET, B.tcp, "one", 8))
    finally(function() process.cleanup(one) end)
    assert.truthy(process.wait_for(one, "one ready", 10), process.output(one))
    local two = process.run(cmd:format(SECRET, B.tcp, "two", 1))
    -- the first got every answer of its own (before, the second took B's answers from then on)
    assert.truthy(process.wait_for(one, "one ok=%d+ ", 20), process.output(one))
    assert.truthy(process.output(one):find("one ok=%d+ wrong=0 failed=0 "), process.output(one))
    -- the second never got an answer; it is told why when B's CLOSE reaches it before the reset
    -- (B closes with the second's first call unread, which may reset the connection)
    assert.truthy(two:find("two ok=0 wrong=0 failed=%d+ first_error=actor_unreachable: "), two)
    local why = two:match("first_error=actor_unreachable: .-peer closed: ([^\n]*)")
    if why then
      assert.truthy(why:find("duplicate client id: another node client connected as process-4242 " ..
        "(run this one again: it draws a new id)", 1, true), two)
    end
    assert.is_true(b_metric("failures", "duplicate_client") >= 1)
    -- once the first is gone (B may take a moment to see its connection end), its id is free again
    local three
    for _ = 1, 5 do
      three = process.run(cmd:format(SECRET, B.tcp, "three", 0.3))
      if not three:find("duplicate client id", 1, true) then break end
      os.execute("sleep 0.5")
    end
    assert.truthy(three:find("three ok=%d+ wrong=0 failed=0 "), three)
  end)

  it("count node handshakes that fail by reason: garbage, a version, a cluster, silence (a timeout)", function()
    assert.equal(0, b_metric("failures", "protocol"))
    local out = process.run("/usr/bin/python3 spec/nodes/raw_handshakes.py 127.0.0.2 7201")
    assert.equal("garbage closed\nversion 1 closed\nother cluster closed\nsilent closed after 5s+\n", out)
    assert.is_true(b_metric_reaches("failures", "protocol", 1) >= 1)
    assert.equal(1, b_metric_reaches("failures", "version", 1))
    assert.equal(1, b_metric_reaches("failures", "wrong_cluster", 1))
    assert.is_true(b_metric_reaches("failures", "timeout", 1) >= 1)
    assert.equal(0, b_metric("failures", "bad_secret"))
  end)

  it("refuse oversized and garbage frames and keep serving everyone else", function()
    local out = process.run("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080 --abuse")
    assert.equal("oversize closed\ngarbage closed\nstill serving -> [True, 100]\n", out)
  end)
end)
