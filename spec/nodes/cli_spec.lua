-- The `luact` command-line tool (rockspec/bin/luact, lua/luact/cli/) against a cluster of three
-- real members (spec/nodes/cluster_node.lua) in the spec's network namespace: its output and
-- exit status for each command, bad usage (2), an unreachable address and a wrong secret (1),
-- that it never joins the cluster, and `luact top` driven in tmux and read back with
-- capture-pane while calls are made.
local procs = require "helpers.cluster_procs"
local process = require "helpers.process"

local BIN = "rockspec/bin/luact"
local ENV = "LUA_CPATH='./target/lua/?.so;;' LUACT_SECRET=s3cret"

-- Runs the tool; returns its exit status, stdout and stderr.
local function luact(args, env)
  local out, err = os.tmpname(), os.tmpname()
  local rc = os.execute(("env %s %s %s >%s 2>%s"):format(env or ENV, BIN, args, out, err))
  local function slurp(path)
    local f = io.open(path)
    local s = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(path)
    return s
  end
  -- (os.execute gives the shell's status: exit code * 256 on LuaJIT/5.1)
  if rc > 255 then rc = math.floor(rc / 256) end
  return rc, slurp(out), slurp(err)
end

local function lines_of(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("the luact command", function()
  setup(function()
    procs.setup()
    for i = 1, 3 do procs.start(i) end
    assert.is_truthy(procs.settle(40), "the cluster did not settle")
  end)
  teardown(function() procs.teardown() end)

  it("refuses bad usage with exit status 2 and a message on stderr", function()
    local rc, out, err = luact("")
    assert.equal(2, rc)
    assert.equal("", out)
    assert.equal("luact: missing COMMAND\nTry 'luact --help'.\n", err)
    rc, out, err = luact("status 127.0.0.1")
    assert.equal(2, rc)
    assert.truthy(err:find("bad ADDR '127.0.0.1' (ip:port of a node expected", 1, true), err)
    rc, _, err = luact("frobnicate 127.0.0.1:7001")
    assert.equal(2, rc)
    assert.truthy(err:find("unknown command 'frobnicate'", 1, true), err)
    rc, _, err = luact("actors 127.0.0.1:7001 --limit 0")
    assert.equal(2, rc)
    assert.truthy(err:find("bad value '0' for --limit", 1, true), err)
    rc, _, err = luact("db put 127.0.0.1:7001 k v")
    assert.equal(2, rc)
    assert.truthy(err:find("unknown db command 'put'", 1, true), err)
    -- the secret is never taken from the command line, and not echoed
    rc, out, err = luact("status 127.0.0.1:7001 --secret=hunter2")
    assert.equal(2, rc)
    assert.truthy(err:find("not taken from the command line", 1, true), err)
    assert.falsy(err:find("hunter2", 1, true))
    -- no secret at all
    rc, _, err = luact("status 127.0.0.1:7001", "LUA_CPATH='./target/lua/?.so;;' LUACT_SECRET=")
    assert.equal(2, rc)
    assert.equal("luact: no cluster secret: set LUACT_SECRET or use --secret-file FILE\n", err)
    -- a thread the node does not have
    rc, _, err = luact("actors 127.0.0.1:7001 --thread 3")
    assert.equal(2, rc)
    assert.equal("luact: --thread 3: 127.0.0.1:7001 has 2 threads\nTry 'luact --help'.\n", err)
  end)

  it("prints help on stdout with exit status 0", function()
    local rc, out, err = luact("--help", "LUA_CPATH='./target/lua/?.so;;'")
    assert.equal(0, rc)
    assert.equal("", err)
    assert.truthy(out:find("^Usage: luact %[OPTIONS%] COMMAND ADDR"), out)
    for _, cmd in ipairs { "status", "members", "leader", "actors", "where", "db get", "db set", "db keys", "top" } do
      assert.truthy(out:find("\n  " .. cmd .. " ADDR", 1, true), cmd)
    end
    rc, out = luact("help top", "LUA_CPATH='./target/lua/?.so;;'")
    assert.equal(0, rc)
    assert.truthy(out:find("^Usage: luact top ADDR"), out)
    rc, _, err = luact("help nope", "LUA_CPATH='./target/lua/?.so;;'")
    assert.equal(2, rc)
    assert.truthy(err:find("no help for 'nope'", 1, true), err)
  end)

  it("fails with exit status 1 on an address nobody listens at, and on a wrong secret", function()
    local rc, out, err = luact("status 127.0.0.9:7009")
    assert.equal(1, rc)
    assert.equal("", out)
    assert.equal("luact: cannot reach 127.0.0.9:7009: connect failed: Connection refused\n", err)
    rc, out, err = luact("members 127.0.0.1:7001", "LUA_CPATH='./target/lua/?.so;;' LUACT_SECRET=wrong")
    assert.equal(1, rc)
    assert.equal("", out)
    assert.equal("luact: cannot reach 127.0.0.1:7001: authentication failed (wrong cluster secret?)\n", err)
    -- the secret from a file instead (the environment's is wrong)
    local f = os.tmpname()
    local h = io.open(f, "w"); h:write("s3cret\n"); h:close()
    rc, out = luact("leader 127.0.0.2:7002 --secret-file " .. f, "LUA_CPATH='./target/lua/?.so;;' LUACT_SECRET=wrong")
    os.remove(f)
    assert.equal(0, rc)
    assert.equal(procs.value(2, "leader") .. "\n", out)
    -- the node said why it refused, and the member it asked is as well as before
    -- (the node's words depend on which side saw the wrong secret first)
    assert.truthy(procs.output(1):find("refused a node connection from 127%.0%.0%.1:%d+: [^\n]*authentication failed"), procs.output(1))
  end)

  it("shows the status, the members and the leader of a node", function()
    local leader = procs.value(1, "leader")
    local rc, out, err = luact("members 127.0.0.3:7003")
    assert.equal(0, rc, err)
    local l = lines_of(out)
    assert.equal(4, #l, out)
    assert.truthy(l[1]:find("^ADDRESS%s+STATE%s+VOTER%s+INCARNATION"), l[1])
    for i = 1, 3 do
      local row = l[i + 1]
      assert.truthy(row:find("^" .. procs.addr(i):gsub("%.", "%%.") .. "%s+alive%s+yes%s+%d+"), row)
      assert.equal(procs.addr(i) == leader, row:find("leader", 1, true) ~= nil, row)
      assert.equal(i == 3, row:find("(asked)", 1, true) ~= nil, row)
    end
    rc, out = luact("leader 127.0.0.3:7003")
    assert.equal(0, rc)
    assert.equal(leader .. "\n", out)
    rc, out, err = luact("status 127.0.0.2:7002")
    assert.equal(0, rc, err)
    assert.truthy(out:find("^node     127%.0%.0%.2:7002\nmember   yes\nleader   " .. leader:gsub("%.", "%%.")), out)
    assert.truthy(out:find("\nmembers  3 %(3 alive%)\n"), out)
    assert.truthy(out:find("\nraft     %a+, term %d+, commit %d+, applied %d+\n"), out)
    assert.truthy(out:find("\nthreads  2\n"), out)
    assert.truthy(out:find("\nTHREAD%s+ACTORS%s+TENTACLES%s+INBOX"), out)
    assert.truthy(out:find("\n%s+1%s+%d+%s+%d+"), out)
    assert.truthy(out:find("\n%s+2%s+%d+%s+%d+"), out)
    -- as JSON
    rc, out = luact("--json leader 127.0.0.2:7002")
    assert.equal(0, rc)
    assert.equal(('{"leader":"%s"}\n'):format(leader), out)
  end)

  it("never joins the cluster: the members see three members and log nothing of it", function()
    for _ = 1, 3 do assert.equal(0, (luact("status 127.0.0.1:7001"))) end
    for i = 1, 3 do
      local ms = procs.value(i, "members")
      assert.equal(3, #ms)
      for _, m in ipairs(ms) do assert.equal("alive", m.state) end
      assert.falsy(procs.output(i):find("process%-"), procs.output(i))
    end
  end)

  it("lists a thread's actors in pages", function()
    local rc, out, err = luact("actors 127.0.0.1:7001 --thread 2")
    assert.equal(0, rc, err)
    local l = lines_of(out)
    assert.truthy(l[1]:find("ID%s+NAME%s+BODY%s+STATE%s+CALLS%s+IN_PROGRESS%s+LAST_ERROR"), l[1])
    assert.truthy(out:find("%d+%s+/ctl2%s+table%s+alive"), out)
    assert.truthy(err:find("^thread 2: %d+ actors? shown of %d+, inbox %d+\n$"), err)
    -- pages of one: the first, and the next one after it
    assert.is_true(procs.value(1, "spawn", 3) >= 3)
    rc, out, err = luact("actors 127.0.0.1:7001 --limit 1")
    assert.equal(0, rc, err)
    assert.equal(2, #lines_of(out), out)
    local after = err:match("next page: %-%-after (%d+)")
    assert.truthy(after, err)
    local first = lines_of(out)[2]:match("^%s*(%d+)")
    assert.equal(after, first)
    rc, out = luact("actors 127.0.0.1:7001 --limit 1 --after " .. after)
    assert.equal(0, rc)
    local second = lines_of(out)[2]:match("^%s*(%d+)%s+%-%s+table:kid%s+alive")
    assert.is_true(tonumber(second) > tonumber(first))
    rc, out = luact("actors 127.0.0.1:7001 --limit 1000")
    assert.equal(0, rc)
    local ids = {}
    for id in out:gmatch("\n%s*(%d+)") do ids[#ids + 1] = tonumber(id) end
    assert.is_true(#ids >= 4, out)     -- /ctl and the three kids, in id order
    for i = 2, #ids do assert.is_true(ids[i] > ids[i - 1]) end
  end)

  it("reads and writes the cluster's db through any member", function()
    local rc, out, err = luact("db set 127.0.0.2:7002 cli/greeting hello")
    assert.equal(0, rc, err)
    assert.equal("", out)
    assert.equal("hello", procs.value(1, "get", "cli/greeting"))
    rc, out = luact("db get 127.0.0.3:7003 cli/greeting")
    assert.equal(0, rc)
    assert.equal("hello\n", out)
    assert.is_true(procs.value(1, "set", "cli/table", { a = 1 }))
    rc, out = luact("db get 127.0.0.1:7001 cli/table")
    assert.equal(0, rc)
    assert.equal('{"a":1}\n', out)
    rc, out = luact("db keys 127.0.0.1:7001 cli/")
    assert.equal(0, rc)
    assert.equal("cli/greeting\ncli/table\n", out)
    rc, out, err = luact("db get 127.0.0.1:7001 cli/missing")
    assert.equal(1, rc)
    assert.equal("", out)
    assert.equal("luact: no key 'cli/missing'\n", err)
  end)

  it("says where a virtual actor is placed", function()
    assert.is_true(procs.value(1, "vreg", "/cli/room", "room"))
    local ok, host = procs.value(2, "vcall", "/cli/room", "where", 10)
    assert.is_true(ok)
    local rc, out, err = luact("where 127.0.0.3:7003 /cli/room")
    assert.equal(0, rc, err)
    local l = lines_of(out)
    assert.truthy(l[1]:find("^NODE%s+THREAD%s+STATE"), l[1])
    assert.truthy(l[2]:find("^" .. host:gsub("%.", "%%.") .. "%s+%d+%s+%a+"), out)
    rc, out, err = luact("where 127.0.0.3:7003 /cli/nobody")
    assert.equal(1, rc)
    assert.equal("luact: no activation of '/cli/nobody' is known to 127.0.0.3:7003\n", err)
  end)

  it("shows a node that is not a cluster member", function()
    local p = process.spawn("luajit spec/nodes/serve.lua 127.0.0.6:7006 s3cret tcp://127.0.0.6:8006")
    local ok, err = pcall(function()
      process.wait_for(p, "ready", 20)
      local rc, out, e = luact("status 127.0.0.6:7006")
      assert.equal(0, rc, e)
      assert.truthy(out:find("^node     127%.0%.0%.6:7006\nmember   no %(not in a cluster%)\nthreads  2\n"), out)
      rc, out, e = luact("members 127.0.0.6:7006")
      assert.equal(1, rc)
      assert.equal("luact: 127.0.0.6:7006 is not a cluster member\n", e)
      -- a name of that node only: where it lives there
      rc, out, e = luact("where 127.0.0.6:7006 /svc/echo")
      assert.equal(0, rc, e)
      assert.truthy(out:find("\n127%.0%.0%.6:7006%s+%d%s+local\n"), out)
      rc, out, e = luact("db get 127.0.0.6:7006 k")
      assert.equal(1, rc)
      assert.equal("luact: 127.0.0.6:7006: cluster_unavailable: cluster request: this node is not a cluster member\n", e)
    end)
    process.cleanup(p)
    assert(ok, err)
  end)

  it("reaches a node whose links are TLS with a client certificate", function()
    local certs = require "helpers.certs"
    local dir = certs.make("127.0.0.7")
    local cert, key = certs.node(dir, "n7", { "127.0.0.7" })
    local p = process.spawn(("LUACT_SPEC_NODE_TLS='%s %s %s/ca.pem' luajit spec/nodes/serve.lua 127.0.0.7:7007 s3cret tcp://127.0.0.7:8007"):format(
      cert, key, dir))
    local ok, err = pcall(function()
      process.wait_for(p, "ready", 20)
      local tls = ("--tls-cert %s/client.pem --tls-key %s/client.key --tls-ca %s/ca.pem"):format(dir, dir, dir)
      local rc, out, e = luact("status 127.0.0.7:7007 " .. tls)
      assert.equal(0, rc, e)
      assert.truthy(out:find("^node     127%.0%.0%.7:7007\nmember   no"), out)
      -- the same from the environment
      rc, out = luact("leader 127.0.0.7:7007", ENV .. (" LUACT_TLS_CERT=%s/client.pem LUACT_TLS_KEY=%s/client.key LUACT_TLS_CA=%s/ca.pem"):format(dir, dir, dir))
      assert.equal(1, rc)   -- (it answers: it is not a member)
      -- without TLS the node says why it refuses
      rc, out, e = luact("status 127.0.0.7:7007")
      assert.equal(1, rc)
      assert.truthy(e:find("^luact: cannot reach 127%.0%.0%.7:7007: [^\n]*TLS"), e)
      -- a part of it only, or a file that is not there: bad usage
      rc, out, e = luact("status 127.0.0.7:7007 --tls-cert " .. dir .. "/client.pem")
      assert.equal(2, rc)
      assert.truthy(e:find("TLS needs all three of --tls-cert, --tls-key and --tls-ca", 1, true), e)
      rc, out, e = luact(("status 127.0.0.7:7007 --tls-cert %s/nope.pem --tls-key %s/client.key --tls-ca %s/ca.pem"):format(dir, dir, dir))
      assert.equal(2, rc)
      assert.truthy(e:find("^luact: bad 'tls' option to luact.start %(tls: "), e)
    end)
    process.cleanup(p)
    os.execute("rm -rf " .. dir)
    assert(ok, err)
  end)

  describe("top", function()
    -- a tmux server of its own for each case (a fresh socket: no race with the last one's end)
    local base, n = "luact-spec-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e6)), 0
    local sock
    local function tmux(args)
      return process.run(("tmux -L %s %s"):format(sock, args))
    end
    local function screen() return tmux("capture-pane -p -t top") end
    -- the CALLS_IN/S cell of thread `tid` in the view, or nil
    local function calls_in(text, tid)
      for line in text:gmatch("[^\n]+") do
        local cells = {}
        for c in line:gmatch("%S+") do cells[#cells + 1] = c end
        if cells[1] == tostring(tid) and #cells == 10 then return tonumber(cells[6]) end
      end
    end
    after_each(function() tmux("kill-server 2>/dev/null") end)

    -- top runs from a shell in the tmux window, which prints its exit status after it
    local script = os.tmpname()
    local function start_top()
      n = n + 1
      sock = base .. "-" .. n
      local cwd = process.run("pwd"):gsub("%s+$", "")
      local f = io.open(script, "w")
      f:write(("cd %s && env %s %s top 127.0.0.1:7001; echo top-exit=$?\n"):format(cwd, ENV, BIN))
      f:close()
      tmux("new-session -d -s top -x 150 -y 30 sh")
      tmux(("send-keys -t top 'sh %s' Enter"):format(script))
      local seen = procs.wait_until(function()
        local s = screen()
        return s:find("THREAD%s+ACTORS") and calls_in(s, 2) and s
      end, 15)
      assert.is_truthy(seen, "top showed no threads:\n" .. screen())
      return seen
    end
    local function wait_exit()
      return procs.wait_until(function() return screen():find("top%-exit=0") end, 5)
    end

    it("shows the node's threads live, changing as calls are made, and quits on q", function()
      local first = start_top()
      assert.truthy(first:find("luact top %- 127%.0%.0%.1:7001"), first)
      assert.truthy(first:find("cluster: leader 127%.0%.0%.%d:700%d, members 3 %(alive 3"), first)
      assert.truthy(calls_in(first, 1), first)
      -- calls from thread 1 to thread 2 of the node for a while: thread 2's calls in per second
      -- goes above 0 in the view
      assert.is_true(procs.value(1, "start_pinger", 8, 0.01))
      local busy = procs.wait_until(function()
        local s = screen()
        local v = calls_in(s, 2)
        return v and v > 0 and s
      end, 10)
      assert.is_truthy(busy, "thread 2's calls in never moved:\n" .. screen())
      tmux("send-keys -t top q")
      assert.is_truthy(wait_exit(), "top did not quit on q:\n" .. screen())
    end)

    it("quits on Ctrl-C and gives the terminal back as it was", function()
      start_top()
      tmux("send-keys -t top C-c")
      assert.is_truthy(wait_exit(), "top did not quit on Ctrl-C:\n" .. screen())
      -- the shell's terminal has its line editing, echo and signals again
      tmux([[send-keys -t top "stty -a | tr ' ;' '\n\n' | grep -x -e icanon -e isig -e echo | sort | tr '\n' ,; echo" Enter]])
      assert.is_truthy(procs.wait_until(function() return screen():find("echo,icanon,isig,") end, 5),
        "the terminal was not restored:\n" .. screen())
      os.remove(script)
    end)
  end)
end)
