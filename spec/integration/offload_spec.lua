-- luact.offload: blocking work on the offload pool (extra VMs, crossbeam-deque work stealing),
-- results and errors back to the calling tentacle while its thread's loop keeps serving.
local helpers = require "helpers.runtime"

describe("luact.offload", function()
  it("runs fn with its arguments on a pool thread and returns every result", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local r = { luact.offload(function(a, b, t) return a + b, nil, t.x, require("luact").offload_thread end, 2, 3, { x = "y" }) }
      luact.stop(r)
    end)
    assert.equal(5, r[1])
    assert.is_nil(r[2])
    assert.equal("y", r[3])
    assert.is_number(r[4])
  end)

  it("raises offload_error with the pool thread's message and traceback", function()
    local name, msg, tb, cause = helpers.run(function()
      local luact = require "luact"
      local ok, e = pcall(luact.offload, function()
        local function inner() error("boom in the pool") end
        inner()
      end)
      local ok2, e2 = pcall(luact.offload, function() require("luact").exception.raise("actor_error", "raised there") end)
      luact.stop(e.name, e.message, e.traceback, e2.message)
    end)
    assert.equal("offload_error", name)
    assert.matches("^pool thread %d+: .*boom in the pool$", msg)
    assert.matches("in function 'inner'", tb, 1, true)
    assert.matches("actor_error: raised there", cause, 1, true)
  end)

  it("refuses a function with upvalues, a C function and arguments that cannot travel, naming them", function()
    local errs = helpers.run(function()
      local luact = require "luact"
      local errs = {}
      local captured = 42
      for _, f in ipairs {
        function() return luact.offload(function() return captured end) end,
        function() return luact.offload(print) end,
        function() return luact.offload(function(f) return f() end, function() return captured end) end,
        function() return luact.offload("not a function") end,
      } do
        local ok, e = pcall(f)
        errs[#errs + 1] = ok and "no error" or tostring(e)
      end
      luact.stop(errs)
    end)
    assert.matches("must not capture upvalues; it captures 'captured'", errs[1], 1, true)
    assert.matches("a C function cannot be moved to a pool thread", errs[2], 1, true)
    assert.matches("argument #1 to 'luact.offload' is a function with upvalues ('captured')", errs[3], 1, true)
    assert.matches("bad 'fn' argument to luact.offload (function expected, got string)", errs[4], 1, true)
  end)

  it("gives a pool VM util, memory, logger and exception, and a clear error for actors and sleeping", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local a = luact({ ping = function() return "pong" end })
      local have = luact.offload(function()
        local l = require "luact"
        return type(l.util.getpid) == "function" and type(l.memory) == "table" and type(l.logger.info) == "function"
          and type(l.exception.raise) == "function" and l.util.n_cpu() > 0
      end)
      local _, e1 = pcall(luact.offload, function(actor) return actor:ping() end, a)
      local _, e2 = pcall(luact.offload, function() require("luact").clock.sleep(0.1) end)
      local _, e3 = pcall(luact.offload, function() return require("luact").tentacle end)
      luact.stop({ have, e1.message, e2.message, e3.message })
    end)
    assert.is_true(r[1])
    assert.matches("an actor cannot be called from an offload pool thread", r[2], 1, true)
    assert.matches("luact.clock.sleep is not available in an offload pool thread", r[3], 1, true)
    assert.matches("luact.tentacle is not available in an offload pool thread", r[4], 1, true)
  end)

  it("keeps the calling thread's loop serving (a ticker keeps its beat) while pool threads block", function()
    local during, blocked = helpers.run(function()
      local luact = require "luact"
      local function count_ticks_while(work)
        local ticks, stop = 0, false
        local tk = luact.clock.ticker(0.01)
        local counter = luact.tentacle(function()
          while not stop do luact.event.wait(nil, tk); ticks = ticks + 1 end
        end)
        work()
        stop = true
        tk:stop()
        return ticks
      end
      -- four tentacles each block a pool thread for 0.3 s: 30 beats of the ticker pass
      local during = count_ticks_while(function()
        local ts = {}
        for i = 1, 4 do ts[i] = luact.tentacle(function() return luact.offload(function() require("luact").util.sleep(0.3); return true end) end) end
        for i = 1, 4 do assert(select(4, luact.event.wait(nil, ts[i]))) end
      end)
      -- the same block on the loop's own thread: the ticker cannot beat meanwhile
      local blocked = count_ticks_while(function() luact.util.sleep(0.3); luact.clock.sleep(0.02) end)
      luact.stop(during, blocked)
    end)
    assert.is_true(during >= 15, "ticks while the pool blocked: " .. during)
    assert.is_true(blocked <= 5, "ticks while the loop blocked: " .. blocked)
  end)

  it("serves many tasks from every thread through a small pool (queueing and stealing)", function()
    local sums = helpers.start({ n_core = 3, offload_threads = 2 }, function()
      local luact = require "luact"
      local got = {}
      if luact.thread_id == 1 then
        luact.register("sums", { put = function(_, tid, s) got[tid] = s end })
      else
        while not luact.resolve("sums") do luact.clock.sleep(0.01) end
      end
      local sum = 0
      local ts = {}
      for i = 1, 40 do
        ts[i] = luact.tentacle(function()
          return luact.offload(function(x) require("luact").util.sleep(0.001); return x * x end, i + 100 * luact.thread_id)
        end)
      end
      for i = 1, 40 do sum = sum + select(4, luact.event.wait(nil, ts[i])) end
      if luact.thread_id ~= 1 then
        luact.ref("sums"):put(luact.thread_id, sum)
        return
      end
      got[1] = sum
      for _ = 1, 500 do
        if got[2] and got[3] then break end
        luact.clock.sleep(0.01)
      end
      luact.stop(got)
    end)
    for tid = 1, 3 do
      local want = 0
      for i = 1, 40 do want = want + (i + 100 * tid) ^ 2 end
      assert.equal(want, sums[tid], "thread " .. tid)
    end
  end)

  it("keeps no more than a bounded amount of dead data in a pool VM between tasks", function()
    -- 6 tasks with a 32 MiB argument on a one-thread pool (one VM): each reports the VM's heap
    -- when it starts, i.e. what the tasks before it left behind
    local heaps = helpers.start({ n_core = 1, offload_threads = 1, timeout = 60 }, function()
      local luact = require "luact"
      local big = string.rep("x", 32 * 1024 * 1024)
      local heaps = {}
      for i = 1, 6 do
        heaps[i] = luact.offload(function(s)
          local before = collectgarbage("count") * 1024
          return before + #s * 0    -- (s is this task's own live argument, counted in `before`)
        end, big .. i)
      end
      luact.stop(heaps)
    end)
    for i = 2, 6 do
      -- the live argument (32 MiB) plus at most the 16 MiB bound and the VM's own few MiB
      assert.is_true(heaps[i] < (32 + 16 + 8) * 1024 * 1024, ("task %d started with %.0f MiB in the VM"):format(i, heaps[i] / 2^20))
    end
  end)

  it("grows past stuck pool threads up to offload_max_threads, and counts them", function()
    -- 3 tasks that block for 3 s on a pool of 2 (max 4): after 1.3 s two are stuck, one queued;
    -- a plain offload then gets a new thread and returns before any stuck task ends
    local r = helpers.start({ n_core = 1, offload_threads = 2, offload_max_threads = 4, timeout = 60 }, function()
      local luact = require "luact"
      local ended, r = {}, {}
      local stuck = {}
      for i = 1, 3 do
        stuck[i] = luact.tentacle(function()
          luact.offload(function() require("luact").util.sleep(3) end)
          ended[#ended + 1] = "stuck"
        end)
      end
      r.before = luact.offload_stats()
      luact.clock.sleep(1.3)
      r.stuck = luact.offload_stats()
      r.plain = luact.offload(function(x) return x * 2 end, 21)
      ended[#ended + 1] = "plain"
      r.after = luact.offload_stats()
      for i = 1, 3 do luact.event.wait(nil, stuck[i]) end
      r.ended = ended
      luact.stop(r)
    end)
    assert.same({ threads = 0, max_threads = 0, busy = 0, stuck = 0, queued = 0, grown = 0 }, r.before)
    assert.same({ threads = 2, max_threads = 4, busy = 2, stuck = 2, queued = 1, grown = 0 }, r.stuck)
    assert.equal(42, r.plain)
    assert.equal("plain", r.ended[1])
    assert.is_true(r.after.grown >= 1 and r.after.threads == 2 + r.after.grown and r.after.threads <= 4)
  end)

  it("raises outside luact.start and for a bad offload_threads option", function()
    local luact = require "luact"
    assert.has_error(function() luact.offload(function() end) end,
      "luact.offload: luact is not running on this thread (call it inside luact.start)")
    local ok, err = helpers.start({ n_core = 1, offload_threads = 0 }, function()
      local luact = require "luact"
      luact.stop(pcall(luact.offload, function() end))
    end)
    assert.equal(false, ok)
    assert.matches("bad 'offload_threads' option to luact.start (integer 1..256 expected, got 0)", err, 1, true)
  end)
end)
