-- Node links in mutual TLS (`luact.start{ tls = { cert, key, ca } }`): two nodes calling each
-- other's actors from several threads, a node whose certificate another CA signed refused with a
-- reason both sides log, plain and TLS nodes refusing each other, a man in the middle that flips
-- one bit of an established link (TLS: the link closes, nothing altered is delivered; plain: the
-- altered message is delivered, as README's threat model says), and the checks of the option at
-- start. Nodes on 127.0.0.x in the network namespace spec/run makes (`unshare -n`); every spawned
-- process is killed and the nftables table removed in after_each.
local process = require "helpers.process"
local helpers = require "helpers.runtime"
local certs = require "helpers.certs"

local SECRET = "s3cret"
local B = { addr = "127.0.0.2:7201", tcp = "tcp://127.0.0.2:8080", http = "http://127.0.0.2:8081" }
local DIR            -- certificates: ca.pem (the cluster's CA), other.pem (another CA)
local NODE = {}      -- node certificates: a (127.0.0.1), b (127.0.0.2), rogue (127.0.0.1, other CA)

local function tls_of(name, ca)
  return { cert = NODE[name].cert, key = NODE[name].key, ca = ca or (DIR .. "/ca.pem") }
end

-- B: spec/nodes/serve.lua (two threads) with node links in TLS (`tls` = tls_of(...)) or plain.
local function serve(tls)
  local env = tls and ("LUACT_SPEC_NODE_TLS='%s %s %s' "):format(tls.cert, tls.key, tls.ca) or ""
  local p = process.spawn(("%sluajit spec/nodes/serve.lua %s %s %s %s ''"):format(env, B.addr, SECRET, B.tcp, B.http))
  process.wait_for(p, "ready")
  return p
end

-- B's handshake failures of `reason` (luact.metrics(), summed over its threads), asked through
-- its http:// listener once it has at least `at_least` (bounded wait); returns the last value.
local function b_failures(reason, at_least)
  local v
  for _ = 1, 50 do
    local out = process.run(("curl -s -m 5 -X POST -d '[\"%s\"]' http://127.0.0.2:8081/svc/metrics/failures"):format(reason))
    v = tonumber(out:match("^%[(%d+)%]")) or error("no answer from B's /svc/metrics: " .. out)
    if v >= (at_least or 0) then break end
    os.execute("sleep 0.1")
  end
  return v
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- Runs `main` as node A (127.0.0.1:7101, thread 1 of `n_core`) with its log in a file; returns
-- what main passed to luact.stop and A's log.
local function as_a(opts, main)
  local log = os.tmpname()
  opts.address, opts.secret, opts.log = opts.address or "127.0.0.1:7101", opts.secret or SECRET, log
  opts.n_core = opts.n_core or 1
  local r = helpers.start(opts, function()
    local luact = require "luact"
    if luact.thread_id == 1 then luact.logger.redirect(luact.opts.log) end
    local main = luact.opts.main and loadstring(luact.opts.main)
    if main then return main() end
  end)
  return r, log
end

describe("luact node links in TLS", function()
  local b, proxy
  setup(function()
    process.require_netns()
    os.execute("ip link set lo up")
    DIR = certs.make("127.0.0.2")
    for name, spec in pairs { a = { "127.0.0.1" }, b = { "127.0.0.2" } } do
      local cert, key = certs.node(DIR, name, spec)
      NODE[name] = { cert = cert, key = key }
    end
    local cert, key = certs.node(DIR, "rogue", { "127.0.0.1" }, "other")
    NODE.rogue = { cert = cert, key = key }
    -- a CA bundle trusting both CAs: a rogue node that accepts B's certificate (so B's own check
    -- of the rogue's certificate is what refuses it)
    assert(os.execute(("cat %s/other.pem %s/ca.pem > %s/both.pem"):format(DIR, DIR, DIR)) == 0)
  end)
  teardown(function()
    if DIR then os.execute("rm -rf " .. DIR) end
  end)
  after_each(function()
    process.cleanup(b); process.cleanup(proxy)
    b, proxy = nil, nil
    os.execute("nft delete table ip luact_mitm 2>/dev/null")
  end)

  it("carry calls both ways between two TLS nodes, from several threads of each", function()
    b = serve(tls_of("b"))
    local log = os.tmpname()
    local r = helpers.start({ n_core = 2, address = "127.0.0.1:7101", secret = SECRET, tls = tls_of("a"),
                              peer = B.tcp, log = log }, function()
      local luact = require "luact"
      -- each thread: 4 tentacles x 50 calls to an actor on B's thread 1 and one on B's thread 2,
      -- and B's /svc/caller calling back an actor of this thread (B -> A over B's own dial)
      local function work()
        local peer = luact.opts.peer
        local on1 = luact.ref(peer .. "/svc/factory"):make(("t%d"):format(luact.thread_id))
        local on2 = luact.ref(peer .. "/svc/gates"):make()
        local caller = luact.ref(peer .. "/svc/caller")
        local mine = luact({ echo = function(self, x) return "A" .. luact.thread_id, x end })
        local got, ts = { n = 0, back = 0, on2 = 0 }, {}
        for k = 1, 4 do
          ts[k] = luact.tentacle(function()
            for i = 1, 50 do
              if on1:get() == ("t%d"):format(luact.thread_id) then got.n = got.n + 1 end
              on2:note(i)
              local who, x = caller:call_back(mine, i)
              if who == "A" .. luact.thread_id and x == i then got.back = got.back + 1 end
            end
          end)
        end
        luact.event.join(nil, unpack(ts))
        got.on2 = #on2:list()
        return got
      end
      if luact.thread_id == 2 then
        luact.register("/a/work", { run = function() return work() end })
        return
      end
      luact.logger.redirect(luact.opts.log)
      local names = require "luact.actor.names"
      while not names.resolve("/a/work") do luact.clock.sleep(0.001) end
      local other = luact.future(luact.ref("/a/work"):async_run())
      local mine = work()
      local ok, theirs = other:get()
      if not ok then theirs = tostring(theirs) end
      -- a 2 MiB message each way (many TLS records per frame)
      local g = luact.ref(luact.opts.peer .. "/svc/gates"):make()
      local big = string.rep("0123456789abcdef", 2 ^ 17)
      g:note(big)
      local seen = g:list()
      luact.logger.redirect()
      luact.stop({ mine, theirs, big = #seen == 1 and seen[1] == big })
    end)
    for tid = 1, 2 do
      assert.same({ n = 200, back = 200, on2 = 200 }, r[tid], "thread " .. tid)
    end
    assert.is_true(r.big)
    -- no link was refused or lost on either side
    local mine = read(log); os.remove(log)
    -- (a stall report of the watchdog, likely on a loaded machine, is not about the links)
    assert.falsy(mine:gsub("[^\n]*WARN[^\n]*stall: [^\n]*", ""):find("WARN"), mine)
    assert.falsy(process.output(b):find("refused"), process.output(b))
  end)

  it("refuse a node whose certificate another CA signed, with the reason on both sides", function()
    b = serve(tls_of("b"))
    -- a node of another PKI: it refuses B's certificate (and B, dialing it back, refuses its)
    local r, log = as_a({ tls = tls_of("rogue", DIR .. "/other.pem"), main = string.dump(function()
      local luact = require "luact"
      local made = luact.ref("tcp://127.0.0.2:8080/svc/factory"):make("x")   -- (the listener is plain tcp://)
      local ok, e = pcall(made.get, made)
      luact.logger.redirect()
      luact.stop({ ok = ok, name = e and e.name, message = e and e.message })
    end) })
    assert.is_false(r.ok)
    assert.equal("actor_unreachable", r.name)
    assert.truthy(r.message:find("invalid peer certificate: UnknownIssuer", 1, true), r.message)
    local mine = read(log); os.remove(log)
    assert.truthy(mine:find("WARN.-lost the connection to node 127%.0%.0%.2:7201: connect failed: tls: invalid peer certificate: UnknownIssuer"), mine)
    assert.truthy(process.wait_for(b, "WARN.-refused a node connection from 127%.0%.0%.1:%d+: tls: received fatal alert: UnknownCA %(the peer refused our certificate%)", 5), process.output(b))

    -- a node that trusts B's CA too, but whose own certificate B's CA did not sign: B refuses it
    process.cleanup(b); b = serve(tls_of("b"))
    r, log = as_a({ tls = tls_of("rogue", DIR .. "/both.pem"), address = "127.0.0.1:7102", main = string.dump(function()
      local luact = require "luact"
      local made = luact.ref("tcp://127.0.0.2:8080/svc/factory"):make("x")
      local ok, e = pcall(made.get, made)
      luact.logger.redirect()
      luact.stop({ ok = ok, name = e and e.name, message = e and e.message })
    end) })
    assert.is_false(r.ok)
    assert.equal("actor_unreachable", r.name)
    assert.truthy(r.message:find("UnknownCA (the peer refused our certificate)", 1, true), r.message)
    mine = read(log); os.remove(log)
    assert.truthy(mine:find("WARN.-lost the connection to node 127%.0%.0%.2:7201: tls: received fatal alert: UnknownCA %(the peer refused our certificate%)"), mine)
    assert.truthy(process.wait_for(b, "WARN.-refused a node connection from 127%.0%.0%.1:%d+: tls: invalid peer certificate: UnknownIssuer", 5), process.output(b))
  end)

  it("still check the cluster secret inside TLS", function()
    b = serve(tls_of("b"))
    local r, log = as_a({ tls = tls_of("a"), secret = "guess", main = string.dump(function()
      local luact = require "luact"
      local made = luact.ref("tcp://127.0.0.2:8080/svc/factory"):make("x")
      local ok, e = pcall(made.get, made)
      luact.logger.redirect()
      luact.stop({ ok = ok, name = e and e.name, message = e and e.message })
    end) })
    assert.is_false(r.ok)
    assert.equal("actor_unreachable", r.name)
    assert.truthy(r.message:find("authentication failed (wrong cluster secret?)", 1, true), r.message)
    local mine = read(log); os.remove(log)
    assert.truthy(mine:find("WARN.-lost the connection to node 127%.0%.0%.2:7201: .-authentication failed"), mine)
    assert.truthy(process.wait_for(b, "WARN.-127%.0%.0%.1.-authentication failed", 5), process.output(b))
  end)

  it("refuse between a TLS node and a plain one, saying which side speaks TLS", function()
    -- a plain node dials a TLS node
    b = serve(tls_of("b"))
    local r, log = as_a({ main = string.dump(function()
      local luact = require "luact"
      local made = luact.ref("tcp://127.0.0.2:8080/svc/factory"):make("x")
      local ok, e = pcall(made.get, made)
      luact.logger.redirect()
      luact.stop({ ok = ok, name = e and e.name, message = e and e.message,
                   hs = luact.metrics().threads[1].handshake_failures })
    end) })
    assert.is_false(r.ok)
    assert.equal("actor_unreachable", r.name)
    assert.truthy(r.message:find("this node's links are TLS", 1, true), r.message)
    os.remove(log)
    assert.truthy(process.wait_for(b, "WARN.-refused a node connection from 127%.0%.0%.1:%d+: tls: received corrupt message of type InvalidContentType %(the peer does not speak TLS%)", 5), process.output(b))
    -- counted: a TLS refusal on B, refused by the peer here
    assert.is_true(r.hs.peer_refused >= 1, tostring(r.hs.peer_refused))
    assert.is_true(b_failures("tls", 1) >= 1)

    -- a TLS node dials a plain node
    process.cleanup(b); b = serve(nil)
    r, log = as_a({ tls = tls_of("a"), address = "127.0.0.1:7102", main = string.dump(function()
      local luact = require "luact"
      local made = luact.ref("tcp://127.0.0.2:8080/svc/factory"):make("x")
      local ok, e = pcall(made.get, made)
      luact.logger.redirect()
      luact.stop({ ok = ok, name = e and e.name, message = e and e.message,
                   hs = luact.metrics().threads[1].handshake_failures })
    end) })
    assert.is_false(r.ok)
    assert.equal("actor_unreachable", r.name)
    assert.truthy(r.message:find("(the peer does not speak TLS)", 1, true), r.message)
    os.remove(log)
    assert.truthy(process.wait_for(b, "WARN.-refused a node connection from 127%.0%.0%.1:%d+: .-%(the peer speaks TLS: is it a node started with the 'tls' option, and this one without%?%)", 5), process.output(b))
    -- counted as TLS refusals on both sides (the plain B saw a TLS hello)
    assert.is_true(r.hs.tls >= 1, tostring(r.hs.tls))
    assert.is_true(b_failures("tls", 1) >= 1)
  end)

  -- A man in the middle: A's dials to B go through flip_proxy.py (nftables DNAT, in this network
  -- namespace only), which flips one bit of A's next large write once armed.
  local function mitm(tls)
    assert(os.execute([[nft -f - <<'EOF'
table ip luact_mitm {
  chain out {
    type nat hook output priority -100;
    ip saddr 127.0.0.1 ip daddr 127.0.0.2 tcp dport 7201 dnat to 127.0.0.9:7209
  }
}
EOF]]) == 0, "nft failed")
    local arm = os.tmpname(); os.remove(arm)
    local marker = "MARKER-in-clear-7f3a"
    proxy = process.spawn(("python3 spec/nodes/flip_proxy.py 127.0.0.9:7209 127.0.0.2:7201 127.0.0.9 %s %s"):format(arm, marker))
    process.wait_for(proxy, "listening")
    b = serve(tls and tls_of("b") or nil)
    local r, log = as_a({ tls = tls and tls_of("a") or nil, arm = arm, marker = marker, main = string.dump(function()
      local luact = require "luact"
      local gate = luact.ref("tcp://127.0.0.2:8080/svc/gates1"):make()   -- on B's thread 1
      local out = {}
      gate:note("before")
      local payload = luact.opts.marker .. string.rep("x", 3000)
      out.payload = payload
      -- armed: the proxy flips the middle byte of the next chunk of >= 1000 bytes from A to B
      local f = assert(io.open(luact.opts.arm, "w")); f:close()
      local ok, e = pcall(gate.note, gate, payload)
      out.ok, out.err = ok, e and (e.name .. ": " .. e.message)
      luact.clock.sleep(0.5)                 -- (the link's quarantine after a loss)
      out.seen = gate:list()                 -- over a new link (the proxy flips once)
      luact.logger.redirect()
      luact.stop(out)
    end) })
    local a_log = read(log); os.remove(log)
    return r, a_log, process.output(proxy)
  end

  it("close a TLS link that a man in the middle altered, and deliver nothing altered", function()
    local r, a_log, seen = mitm(true)
    -- the proxy saw a TLS handshake and never the marker in clear, and flipped a bit
    assert.truthy(seen:find("first 1 16 03 01"), seen)
    assert.falsy(seen:find("marker"), seen)
    assert.truthy(seen:find("flipped 1 %d+ %d+"), seen)
    -- the altered call failed, B has only what arrived intact, and the next link works
    assert.is_false(r.ok)
    assert.truthy(r.err:find("^actor_unreachable: .-tls: "), r.err)
    assert.same({ "before" }, r.seen)
    -- both sides say why (B could not authenticate the record; A heard B's alert)
    assert.truthy(process.wait_for(b, "WARN.-lost the connection to node 127%.0%.0%.1:7101: tls: cannot decrypt peer's message %(a record failed its integrity check: altered on the way%?%)", 5), process.output(b))
    assert.truthy(a_log:find("WARN.-lost the connection to node 127%.0%.0%.2:7201: tls: received fatal alert: BadRecordMac %(the peer could not authenticate what we sent: altered on the way%?%)"), a_log)
  end)

  it("deliver the altered message on a plain link (what TLS is for)", function()
    local r, _, seen = mitm(false)
    assert.truthy(seen:find("marker 1"), seen)        -- in clear on the wire
    assert.truthy(seen:find("flipped 1 %d+ %d+"), seen)
    -- nobody noticed: the call succeeded and B holds a message that A never sent
    assert.is_true(r.ok, r.err)
    assert.equal(2, #r.seen)
    assert.equal("before", r.seen[1])
    assert.equal(#r.payload, #r.seen[2])
    assert.are_not.equal(r.payload, r.seen[2])
  end)

  it("run a cluster of three voters over TLS links: one leader, writes from each read back on each", function()
    local procs = require "helpers.cluster_procs"
    procs.setup()
    local ok, err = pcall(function()
      for i = 1, 3 do
        local cert, key = certs.node(DIR, "m" .. i, { ("127.0.0.%d"):format(i) })
        procs.start(i, ("LUACT_SPEC_NODE_TLS='%s %s %s' "):format(cert, key, DIR .. "/ca.pem"))
      end
      assert.is_truthy(procs.settle(40), "the cluster did not settle")
      for i = 1, 3 do
        for thread = 1, 2 do
          assert.is_true(procs.value(i, { "set", thread = thread }, ("tls/%d/%d"):format(i, thread), i * 10 + thread))
        end
      end
      for j = 1, 3 do
        for i = 1, 3 do
          assert.equal(i * 10 + 2, procs.value(j, "get", ("tls/%d/2"):format(i)))
        end
      end
      for i = 1, 3 do
        local out = procs.output(i)
        -- (a member dialing one not started yet logs "Connection refused": not a refusal of ours)
        assert.falsy(out:find("refused a node connection") or out:find("tls:"), out)
      end
    end)
    procs.teardown()
    assert(ok, err)
  end)

  it("refuse bad 'tls' options at start with a clear error", function()
    local luact = require "luact"
    local ca = DIR .. "/ca.pem"
    local function start(tls, address)
      local ok, e = pcall(luact.start, { address = address or "127.0.0.1:7101", secret = SECRET, tls = tls }, function()
        require("luact").stop()
      end)
      return ok and "started" or tostring(e)
    end
    local junk = DIR .. "/junk.pem"
    local f = assert(io.open(junk, "w")); f:write("not a certificate\n"); f:close()
    -- a certificate that names another IP, and one that cannot be a TLS client
    local elsewhere = { certs.node(DIR, "elsewhere", { "127.0.0.5" }) }
    local server_only = { certs.node(DIR, "server_only", { "127.0.0.1" }, "ca", "extendedKeyUsage=serverAuth") }
    local cases = {
      { { cert = NODE.a.cert, key = NODE.a.key }, "bad 'tls' option to luact.start (tls.ca: the path of a PEM file expected, got nil)" },
      { { cert = NODE.a.cert, key = NODE.a.key, ca = "" }, "bad 'tls' option to luact.start (tls.ca: the path of a PEM file expected, got \"\")" },
      { { cert = NODE.a.cert, key = NODE.a.key, ca = ca, verify = false }, "bad 'tls' option to luact.start (unknown field 'verify': cert, key and ca expected)" },
      { "yes", "bad 'tls' option to luact.start (table expected, got string)" },
      { { cert = DIR .. "/missing.pem", key = NODE.a.key, ca = ca }, "bad 'tls' option to luact.start (tls: cannot read " .. DIR .. "/missing.pem: No such file or directory)" },
      { { cert = junk, key = NODE.a.key, ca = ca }, "bad 'tls' option to luact.start (tls: " .. junk .. ": no certificate (-----BEGIN CERTIFICATE-----) found)" },
      { { cert = NODE.a.cert, key = junk, ca = ca }, "bad 'tls' option to luact.start (tls: " .. junk .. ": no private key (PKCS#8, PKCS#1 or SEC1 PEM) found)" },
      { { cert = NODE.a.cert, key = NODE.a.key, ca = junk }, "bad 'tls' option to luact.start (tls: " .. junk .. ": no certificate (-----BEGIN CERTIFICATE-----) found)" },
      { { cert = NODE.a.cert, key = NODE.b.key, ca = ca }, "bad 'tls' option to luact.start (tls: bad configuration: " .. NODE.a.cert .. " / " .. NODE.b.key },
      { { cert = elsewhere[1], key = elsewhere[2], ca = ca }, "bad 'tls' option to luact.start (tls: bad configuration: " .. elsewhere[1] .. " would be refused by the nodes that dial this one (invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for IpAddress(127.0.0.5)): it must be signed by " .. ca .. ", name this node's IP 127.0.0.1 as a subjectAltName (IP:127.0.0.1) and allow serverAuth)" },
      { { cert = server_only[1], key = server_only[2], ca = ca }, "bad 'tls' option to luact.start (tls: bad configuration: " .. server_only[1] .. " would be refused by the nodes this one dials (" },
      { { cert = NODE.rogue.cert, key = NODE.rogue.key, ca = ca }, "bad 'tls' option to luact.start (tls: bad configuration: " .. NODE.rogue.cert .. " would be refused by the nodes that dial this one (invalid peer certificate: UnknownIssuer)" },
    }
    for i, c in ipairs(cases) do
      local got = start(c[1])
      assert.equal(c[2], got:sub(1, #c[2]), ("case %d: %s"):format(i, got))
    end
    assert.equal("bad 'tls' option to luact.start (TLS is for node links: it needs an 'address', or a 'secret' for a node client)",
      (select(2, pcall(luact.start, { tls = tls_of("a") }, function() end))))
    -- and the good one starts
    assert.equal("started", start(tls_of("a")))
  end)
end)
