local luact = require "luact"
local helpers = require "helpers.runtime"

describe("luact.start", function()
  it("runs main on every thread and returns the values given to stop", function()
    local a, b, c, n = helpers.start({ n_core = 4 }, function()
      local luact = require "luact"
      if luact.thread_id == 1 then
        luact.clock.sleep(0.05)
        luact.stop("done", nil, luact.n_core)
      end
    end)
    assert.equal("done", a)
    assert.is_nil(b)
    assert.equal(4, c)
    assert.is_nil(n)
  end)

  it("gives each thread its id and the same machine id", function()
    -- every thread reports to thread 1 through its inbox; thread 1 stops with what it saw
    local seen = helpers.start({ n_core = 3 }, function()
      local luact = require "luact"
      local loop = require "luact.loop"
      if luact.thread_id == 1 then
        local got, count = {}, 0
        local ev = luact.event.new()
        loop.on("hello", function(msg) got[msg[2]] = msg[3]; count = count + 1; ev:emit("hello") end)
        while count < 2 do luact.event.wait(nil, ev) end
        got[1] = luact.machine_id
        luact.stop(got)
      else
        -- thread 1 may not have registered its handler yet: it registers before its first
        -- wait, and main tentacles run before any inbox message is dispatched
        assert(loop.send(1, { "hello", luact.thread_id, luact.machine_id }) == 0)
      end
    end)
    assert.equal(luact.machine_id, seen[1])
    assert.equal(luact.machine_id, seen[2])
    assert.equal(luact.machine_id, seen[3])
  end)

  it("can be stopped from any thread", function()
    local who = helpers.start({ n_core = 3 }, function()
      local luact = require "luact"
      if luact.thread_id == 3 then
        luact.clock.sleep(0.02)
        luact.stop("stopped by", luact.thread_id)
      end
    end)
    assert.equal("stopped by", who)
  end)

  it("runs many times in one process", function()
    for i = 1, 20 do
      local r = helpers.start({ n_core = 2 }, function()
        local luact = require "luact"
        if luact.thread_id == 2 then luact.stop(luact.thread_id * 10) end
      end)
      assert.equal(20, r, "run " .. i)
    end
  end)

  it("runs a main given as a file path", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write([[
      local luact = require "luact"
      if luact.thread_id == 2 then luact.stop("from file", luact.n_core) end
    ]])
    f:close()
    local a, b = helpers.start({ n_core = 2 }, path)
    os.remove(path)
    assert.equal("from file", a)
    assert.equal(2, b)
  end)

  it("resolves require on every thread and offload pool VM as thread 1 does", function()
    -- a module next to the app, found through the package.path the app set before start
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir) == 0)
    local f = assert(io.open(dir .. "/i24_nextdoor.lua", "w"))
    f:write("return { answer = 42 }\n")
    f:close()
    local old_path, old_cpath = package.path, package.cpath
    package.path = dir .. "/?.lua;" .. package.path
    package.cpath = dir .. "/?.so;" .. package.cpath
    local ok, got = pcall(helpers.start, { n_core = 3 }, function()
      local luact = require "luact"
      local function probe()
        local ok, m = pcall(require, "i24_nextdoor")
        return ok and m.answer or tostring(m), package.cpath
      end
      if luact.thread_id ~= 1 then
        local answer, cpath = probe()
        luact.ref("/spec/report"):report(luact.thread_id, answer, cpath)
        return
      end
      local got, ev = {}, luact.event.new()
      luact.register("/spec/report", { report = function(_, tid, answer, cpath)
        got[tid] = { answer, cpath }
        ev:emit("got")
      end })
      got[1] = { probe() }
      got.offload = { luact.offload(function()
        local ok, m = pcall(require, "i24_nextdoor")
        return ok and m.answer or tostring(m), package.cpath
      end) }
      while not (got[2] and got[3]) do luact.event.wait(nil, ev) end
      luact.stop(got)
    end)
    package.path, package.cpath = old_path, old_cpath
    os.remove(dir .. "/i24_nextdoor.lua")
    os.remove(dir)
    assert(ok, got)
    for _, who in ipairs { 1, 2, 3, "offload" } do
      assert.equal(42, got[who][1], tostring(who))
      assert.equal(dir .. "/?.so;" .. old_cpath, got[who][2], tostring(who))
    end
  end)

  it("refuses a main that captures upvalues, naming the upvalue", function()
    local captured = 1
    assert.has_error(function()
      luact.start({ n_core = 2 }, function() return captured end)
    end, "bad 'main' argument to luact.start (main is moved to every thread as bytecode, so it must not capture upvalues; it captures 'captured': require modules inside main instead)")
  end)

  it("refuses bad options with the option's name", function()
    assert.has_error(function() luact.start({ n_core = "4" }, function() end) end,
      "bad 'n_core' option to luact.start (number expected, got string)")
    assert.has_error(function() luact.start({ n_core = 0 }, function() end) end,
      "bad 'n_core' option to luact.start (integer 1..1024 expected, got 0)")
    assert.has_error(function() luact.start({}, 42) end,
      "bad 'main' argument to luact.start (function or file path expected, got number)")
    -- the cluster's options too, before anything starts (not at the cluster's start, naming a timer)
    local function stops() require("luact").stop() end   -- (were an option let through: no hang)
    assert.has_error(function() luact.start({ raft_tick = 0 }, stops) end,
      "bad 'raft_tick' option to luact.start (seconds above 0 expected, got 0)")
    assert.has_error(function() luact.start({ gossip_tick = "0.1" }, stops) end,
      "bad 'gossip_tick' option to luact.start (number expected, got string)")
    assert.has_error(function() luact.start({ fsync = "no" }, stops) end,
      "bad 'fsync' option to luact.start (boolean expected, got string)")
    assert.has_error(function() luact.start({ snapshot_entries = 0.5 }, stops) end,
      "bad 'snapshot_entries' option to luact.start (positive integer expected, got 0.5)")
    assert.has_error(function() luact.start({ leave_timeout = -1 }, stops) end,
      "bad 'leave_timeout' option to luact.start (seconds expected, got -1)")
    assert.has_error(function() luact.start({ address = "localhost:7000", secret = "s" }, stops) end,
      "bad 'address' option to luact.start (ip:port expected, got 'localhost:7000')")
    assert.has_error(function() luact.start({ address = "127.0.0.1:7000" }, stops) end,
      "bad 'secret' option to luact.start (a node needs a non-empty secret shared by its cluster)")
    assert.has_error(function() luact.start({ secret = "" }, stops) end,
      "bad 'secret' option to luact.start (a non-empty secret shared by the cluster expected)")
    -- raised at the caller's line
    local ok, err = pcall(function() luact.start({ address = "x", secret = "s" }, stops) end)
    assert.is_false(ok)
    assert.matches("^spec/integration/runtime_spec.lua:%d+: bad 'address'", err)
    assert.has_error(function() luact.start({}, "/no/such/file.lua") end)
  end)

  it("raises an error of main on another thread, with its traceback, after shutting down", function()
    local ok, err = pcall(helpers.start, { n_core = 3 }, function()
      local luact = require "luact"
      if luact.thread_id == 2 then
        error("boom on two")
      end
    end)
    assert.is_false(ok)
    assert.truthy(err:find("thread 2: main failed:", 1, true), err)
    assert.truthy(err:find("boom on two", 1, true), err)
    assert.truthy(err:find("stack traceback", 1, true), err)
    -- and the runtime is usable again
    assert.equal("again", helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      if luact.thread_id == 1 then luact.stop("again") end
    end))
  end)

  it("raises an error of main on thread 1", function()
    local ok, err = pcall(helpers.start, { n_core = 2 }, function()
      local luact = require "luact"
      if luact.thread_id == 1 then luact.exception.raise("actor_error", "bad main") end
    end)
    assert.is_false(ok)
    assert.truthy(err:find("thread 1: main failed: actor_error: bad main", 1, true), err)
  end)

  it("refuses start while running and stop outside start", function()
    assert.has_error(function() luact.stop() end, "luact.stop: luact is not running (call it inside luact.start)")
    local msg = helpers.start({ n_core = 1 }, function()
      local luact = require "luact"
      local ok, err = pcall(luact.start, {}, function() end)
      luact.stop(err)
    end)
    assert.truthy(msg:find("luact.start: luact is already running in this VM", 1, true), msg)
  end)

  it("refuses stop values that cannot be copied", function()
    local msg = helpers.run(function()
      local luact = require "luact"
      local ok, err = pcall(luact.stop, function() end)
      luact.stop(err)
    end)
    assert.truthy(msg:find("bad argument to luact.stop (values must be plain data", 1, true), msg)
  end)

  it("stops a run that never calls stop when its timeout passes", function()
    local ok, err = pcall(luact.start, { n_core = 2, timeout = 0.2 }, function() end)
    assert.is_false(ok)
    assert.truthy(err:find("timed out after 0.2s", 1, true), err)
  end)

  it("shuts down even when a thread is busy in a blocking call", function()
    local t0 = os.time()
    local r = helpers.start({ n_core = 2, join_timeout = 3 }, function()
      local luact = require "luact"
      if luact.thread_id == 2 then luact.util.sleep(0.5) end   -- blocks its OS thread
      if luact.thread_id == 1 then luact.stop("ok") end
    end)
    assert.equal("ok", r)
    assert.is_true(os.time() - t0 < 5)
  end)
end)

describe("luact inboxes", function()
  it("carry 20 000 messages from three threads to one, in order per sender, none lost", function()
    local counts = helpers.start({ n_core = 4, inbox_size = 1024 }, function()
      local luact = require "luact"
      local loop = require "luact.loop"
      local N = 20000
      if luact.thread_id == 1 then
        local next_seq, bad, total = {}, 0, 0
        local done = luact.event.new()
        loop.on("seq", function(msg)
          local from, seq = msg[2], msg[3]
          if seq ~= (next_seq[from] or 1) then bad = bad + 1 end
          next_seq[from] = seq + 1
          total = total + 1
          if total == 3 * N then done:emit("done") end
        end)
        luact.event.wait(nil, done)
        luact.stop({ bad = bad, total = total, [2] = next_seq[2], [3] = next_seq[3], [4] = next_seq[4] })
      else
        luact.clock.sleep(0.01)   -- let thread 1 register its handler
        for seq = 1, N do
          -- a full inbox refuses the message; wait a little and retry (bounded)
          local tries = 0
          while loop.send(1, { "seq", luact.thread_id, seq }) ~= 0 do
            tries = tries + 1
            assert(tries < 100000, "inbox stayed full")
            luact.clock.sleep(0.0005)
          end
        end
      end
    end)
    assert.equal(0, counts.bad)
    assert.equal(60000, counts.total)
    assert.equal(20001, counts[2])
    assert.equal(20001, counts[3])
    assert.equal(20001, counts[4])
  end)

  it("refuse a message when full instead of growing", function()
    local statuses = helpers.start({ n_core = 2, inbox_size = 4 }, function()
      local luact = require "luact"
      local loop = require "luact.loop"
      if luact.thread_id == 2 then
        luact.util.sleep(0.2)          -- thread 2 is busy: its inbox fills up
      else
        luact.clock.sleep(0.05)
        local s = {}
        for i = 1, 10 do s[i] = loop.send(2, { "nothing" }) end
        luact.stop(s)
      end
    end)
    -- 4 fill the inbox, 4 more wait in thread 1's batch for it (luact.outbox), the rest are refused
    assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, -1, -1 }, statuses)
  end)
end)
