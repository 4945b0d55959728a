-- Adversarial: what a listener client (no cluster secret) can and cannot make a node do, one
-- finding of the security review at a time. Nodes on 127.0.0.x in the network namespace that
-- spec/run makes (`unshare -n`); every spawned process is killed in after_each.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

local SECRET = "s3cret"
local B = { addr = "127.0.0.2:7201", tcp = "tcp://127.0.0.2:8080", http = "http://127.0.0.2:8081" }

local function serve(node, env, prefix)
  local p = process.spawn(("%s%sluajit spec/nodes/serve.lua %s %s %s %s%s"):format(env or "", prefix or "", node.addr, SECRET,
    node.tcp, node.http, prefix and "'" or ""))
  process.wait_for(p, "ready")
  return p
end

describe("luact against listener clients", function()
  local b
  setup(function()
    process.require_netns()
    os.execute("ip link set lo up")
  end)
  before_each(function() b = serve(B) end)
  after_each(function()
    process.cleanup(b)
    b = nil
  end)

  -- finding 1 (forged references through a tcp:// listener) and finding 2 (the node dials or
  -- reads files for the client)
  it("take back a reference it handed out, and refuse every reference or tagged value a client made up", function()
    local out = helpers.start({ n_core = 1, peer = B.tcp }, function()   -- no address: no secret
      local luact = require "luact"
      local ref = require "luact.actor.ref"
      local exception = require "luact.exception"
      local caller = luact.ref(luact.opts.peer .. "/svc/caller")
      local made = luact.ref(luact.opts.peer .. "/svc/factory"):make("handed out")
      local function try(v)
        local ok, e = pcall(caller.get_of, caller, v)
        if ok then return "called: " .. tostring(e) end
        return e.name .. ": " .. e.message
      end
      local out = {}
      out.back = try(made)
      local m, t, e, l = ref.parts(made)
      out.made_up = try(ref.new(m, t, e, l + 1))
      out.altered = try(setmetatable({ m, t, e, l + 1, made[5] }, getmetatable(made)))
      out.url = try(luact.ref("tcp://127.0.0.5:9/svc/x"))
      out.tls_file = try(luact.ref("tls://127.0.0.5:9/svc/x", { ca = "/etc/passwd" }))
      out.named = try(luact.ref("/svc/echo"))
      out.fn = try(function() return 1 end)
      out.exception = try(exception.new("actor_error"))
      out.nested = try({ a = { { made_up = ref.new(m, t, e, 1) } } })
      out.still = luact.ref(luact.opts.peer .. "/svc/echo"):hoge()
      luact.stop(out)
    end)
    assert.equal("called: handed out", out.back)
    local unsigned = "bad_request: an actor reference that no node of this cluster handed out (unsigned): a listener client may only pass back references it received"
    assert.equal(unsigned, out.made_up)
    assert.equal("bad_request: a forged or altered actor reference (bad signature)", out.altered)
    assert.equal("bad_request: a reference by URL cannot be sent by a listener client (plain data only)", out.url)
    assert.equal("bad_request: a reference by URL cannot be sent by a listener client (plain data only)", out.tls_file)
    assert.equal("bad_request: a reference by name cannot be sent by a listener client (plain data only)", out.named)
    assert.equal("bad_request: a function cannot be sent by a listener client (plain data only)", out.fn)
    assert.equal("bad_request: an exception cannot be sent by a listener client (plain data only)", out.exception)
    assert.equal(unsigned, out.nested)
    assert.equal(100, out.still)
  end)

  it("refuse the references of a node with another secret, and never call them", function()
    local out = helpers.start({ n_core = 1, address = "127.0.0.1:7109", secret = "guess", peer = B.tcp }, function()
      local luact = require "luact"
      local called = 0
      local mine = luact({ echo = function() called = called + 1; return "mine" end })
      local ok, e = pcall(luact.ref(luact.opts.peer .. "/svc/caller").call_back, luact.ref(luact.opts.peer .. "/svc/caller"), mine)
      luact.stop({ ok = ok, err = e and (e.name .. ": " .. e.message), called = called })
    end)
    assert.is_false(out.ok)
    assert.equal("bad_request: a forged or altered actor reference (bad signature)", out.err)
    assert.equal(0, out.called)
  end)

  it("send errors to listener clients without file locations or tracebacks", function()
    local out = helpers.start({ n_core = 1, peer = B.tcp }, function()
      local luact = require "luact"
      local echo = luact.ref(luact.opts.peer .. "/svc/echo")
      local ok, e = pcall(echo.fail, echo)
      luact.stop({ name = e.name, message = e.message, traceback = rawget(e, "traceback") or false })
    end)
    assert.same({ name = "actor_runtime_error", message = "remote failure", traceback = false }, out)
  end)

  it("pass references to MessagePack and JSON clients signed, and take back only those", function()
    local out = process.run("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080 --refs")
    assert.equal(table.concat({
      "made -> True ['e', 'l', 'm', 's', 't']",
      "passed back -> [True, 'py']",
      "altered -> [False, {'error': 'bad_request', 'message': 'a forged or altered actor reference (bad signature)'}]",
      "unsigned -> False",
      "error text -> [False, {'error': 'actor_runtime_error', 'message': 'remote failure'}]",
    }, "\n") .. "\n", out)
    local forged = process.run([[curl -s -o - -w ' %{http_code}' -X POST -d '[{"actor":{"m":1,"t":1,"e":1,"l":1,"s":"00000000000000000000000000000000"}}]' http://127.0.0.2:8081/svc/caller/get_of]])
    assert.equal('{"error":"bad_request","message":"a forged or altered actor reference (bad signature)"} 400', forged)
  end)

  -- finding 3 (unbounded resources) and finding 4 (replies to a slow reader dropped)
  it("bound every listener client: request and idle timeouts, connections, pipelining, unread replies", function()
    process.cleanup(b)
    b = serve(B, "LUACT_SPEC_LIMITS=header_timeout=1,idle_timeout=1.5,max_buffered=262144,max_pipelined=4,max_connections=8 ")
    local out = process.run("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080 --limits 8081")
    assert.equal(table.concat({
      "partial frame -> closed",
      "partial http request -> closed",
      "idle connection -> closed",
      "connection 9 -> closed",
      "after they left -> [True, 100]",
      "40 pipelined calls -> True",
      "unread replies -> some replies, then CLOSE 'the client does not read its replies', then EOF",
      "3001 pipelined http requests -> 3001",
      "stats -> {'accept_pauses': False, 'header_timeouts': True, 'idle_timeouts': True, 'read_pauses': True, "
        .. "'refused_connections': True, 'slow_readers': True}",
    }, "\n") .. "\n", out)
  end)

  it("pause accepting when out of file descriptors, and serve again once they are back", function()
    process.cleanup(b)
    b = serve(B, nil, "sh -c 'ulimit -n 100; exec ")
    local out = process.run("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080 --fds")
    assert.equal("after the flood -> [True, 100]\naccept paused -> True\n", out)
  end)

  it("give back the memory of keep-alive HTTP clients once they leave", function()
    local out = process.run(("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080 --rss 8081 %d"):format(b.pid))
    assert.truthy(out:find("800 keep-alive clients took memory -> True\ngiven back when they left (within 20 % of before) -> True\n", 1, true), out)
  end)

  -- finding 4: a notify_ to an actor of a process that died and restarted at the same address
  it("fail a notify_ to an actor of a process that restarted at the same address, once the sender was told", function()
    local cmd = ("luajit spec/nodes/serve.lua %s %s %s %s"):format(B.addr, SECRET, B.tcp, B.http)
    local out = helpers.start({ n_core = 1, address = "127.0.0.1:7110", secret = SECRET, peer = B.tcp, b_pid = b.pid,
                                cmd = cmd, timeout = 40 }, function()
      local luact = require "luact"
      local process = require "helpers.process"
      local made = luact.ref(luact.opts.peer .. "/svc/factory"):make("old")
      local out = { before = made:get() }
      os.execute("kill -9 " .. luact.opts.b_pid)
      luact.clock.sleep(0.3)
      local again = process.spawn(luact.opts.cmd)          -- the same address, a new process
      out.pid = again.pid
      process.wait_for(again, "ready")
      out.oks = 0
      for _ = 1, 100 do                                     -- bounded: 100 tries, 5 s
        local ok, e = pcall(made.notify_get, made)
        if not ok then
          out.name, out.message = e.name, e.message
          break
        end
        out.oks = out.oks + 1
        luact.clock.sleep(0.05)
      end
      luact.stop(out)
    end)
    b = { pid = out.pid }                                   -- after_each kills the new process
    assert.equal("old", out.before)
    assert.equal("actor_no_body", out.name)
    assert.matches("is gone: its process on 127.0.0.2:7201 has restarted; notify_get was not sent", out.message, 1, true)
    -- what is guaranteed: the notify_ (or few) sent before the sender was told are lost, as any
    -- message in flight to a process that dies; never more than one round trip's worth
    assert.is_true(out.oks >= 1 and out.oks < 100)
  end)

  -- finding 5: what one node may queue for another is bounded in messages
  it("refuse a notify_ flood to a blocked thread of another node after a bounded number of messages", function()
    local out = helpers.start({ n_core = 1, address = "127.0.0.1:7111", secret = SECRET, peer = B.tcp, timeout = 60 }, function()
      local luact = require "luact"
      local blocked = luact.ref(luact.opts.peer .. "/svc/gates"):make()
      blocked:notify_block(3)                                -- B's thread 2 stops reading its inbox
      luact.clock.sleep(0.1)
      local n, err = 0, nil
      local t0 = luact.clock.get()
      while n < 2000000 and luact.clock.get() - t0 < 20 do   -- bounded in count and time
        local ok, e = pcall(blocked.notify_note, blocked, n)
        if not ok then err = e.name; break end
        n = n + 1
        if n % 1000 == 0 then luact.clock.sleep(0) end
      end
      luact.stop({ n = n, err = err })
    end)
    assert.equal("actor_overload", out.err)
    -- B's inbox (16384) + this sender's queue (inbox_size, 16384) + the kernel's buffers (1 MiB
    -- each way); before the bound, 536 730 were accepted
    assert.is_true(out.n < 100000, ("%d accepted"):format(out.n))
  end)

  -- finding 4: requests that got no answer at all
  it("answer every call it refuses: too many arguments, a doubled map key, nesting too deep, a huge count", function()
    local out = process.run("/usr/bin/python3 spec/clients/luact_client.py 127.0.0.2 8080 --edges")
    assert.equal(table.concat({
      "5000 args -> [False, {'error': 'bad_request', 'message': 'too many arguments (5000, at most 4096)'}]",
      "duplicate key -> [False, {'error': 'bad_request', 'message': 'a map with the same key twice'}]",
      "100 deep -> [False, {'error': 'bad_request', 'message': 'bad MessagePack: depth limit exceeded'}]",
      "count 1e9 -> True",
      "forged Ref -> True",
      "still serving -> [True, 100]",
    }, "\n") .. "\n", out)
  end)
end)
