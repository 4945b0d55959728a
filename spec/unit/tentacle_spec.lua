local helpers = require "helpers.runtime"

describe("luact.tentacle", function()
  it("runs a function with arguments and fires 'end' with its results", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local t = luact.tentacle(function(a, b) return a + b, nil, "x" end, 2, 3)
      local tp, ev, ok, sum, hole, x = luact.event.wait(nil, t)
      luact.stop({ tp = tp, same = ev == t, ok = ok, sum = sum, hole = hole, x = x })
    end)
    assert.same({ tp = "end", same = true, ok = true, sum = 5, x = "x" }, r)
  end)

  it("reports a failure as ('end', false, err) with a traceback", function()
    local ok, err = helpers.run(function()
      local luact = require "luact"
      local t = luact.tentacle(function() error("inner failure") end)
      local _, _, ok, err = luact.event.wait(nil, t)
      luact.stop(ok, err)
    end)
    assert.is_false(ok)
    assert.truthy(err:find("inner failure", 1, true))
    assert.truthy(err:find("stack traceback", 1, true))
  end)

  it("interleaves tentacles only where they wait", function()
    local trace = helpers.run(function()
      local luact = require "luact"
      local trace = {}
      local a = luact.tentacle(function()
        trace[#trace + 1] = "a1"; luact.clock.sleep(0.02); trace[#trace + 1] = "a2"
      end)
      local b = luact.tentacle(function()
        trace[#trace + 1] = "b1"; luact.clock.sleep(0.01); trace[#trace + 1] = "b2"
      end)
      luact.event.join(nil, a, b)
      luact.stop(table.concat(trace, " "))
    end)
    assert.equal("a1 b1 b2 a2", trace)
  end)

  it("yields until resumed with values, and resume returns what was yielded", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local tentacle = luact.tentacle
      local got
      local t = tentacle(function() got = { tentacle.yield("from t") } end)
      luact.clock.sleep(0)          -- let t reach its yield
      local ok, yielded = tentacle.resume(t, 1, 2)
      local again = { tentacle.resume(t, 3) }   -- not suspended any more
      luact.event.wait(nil, t)
      luact.stop({ ok = ok, yielded = yielded, got = got, again_ok = again[1], again_msg = again[2] })
    end)
    assert.same({ ok = true, yielded = "from t", got = { 1, 2 }, again_ok = false,
                  again_msg = "tentacle is not suspended in tentacle.yield" }, r)
  end)

  it("cancels a tentacle at any wait point and never runs it again", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local tentacle = luact.tentacle
      local progress = {}
      local sleeping = tentacle(function() luact.clock.sleep(0.05); progress.sleeper = true end)
      local ev = luact.event.new()
      local waiting = tentacle(function() luact.event.wait(nil, ev); progress.waiter = true end)
      local yielded = tentacle(function() tentacle.yield(); progress.yielder = true end)
      local queued = tentacle(function() progress.queued = true end)
      tentacle.cancel(queued)          -- cancelled before it ever ran
      luact.clock.sleep(0)
      for _, t in ipairs { sleeping, waiting, yielded } do assert(tentacle.cancel(t)) end
      ev:emit("go")
      tentacle.resume(yielded)
      local _, _, ok, err = luact.event.wait(nil, sleeping)
      luact.clock.sleep(0.1)
      local self_t = tentacle(function() tentacle.cancel(tentacle.running()); progress.self = true end)
      local _, _, sok = luact.event.wait(nil, self_t)
      luact.stop({ progress = progress, ok = ok, cancelled = err:is("tentacle_cancelled"),
                   self_ok = sok, twice = tentacle.cancel(sleeping) })
    end)
    assert.same({ progress = {}, ok = false, cancelled = true, self_ok = false, twice = false }, r)
  end)

  it("refuses waits outside a tentacle and bad arguments", function()
    local luact = require "luact"
    assert.has_error(function() luact.clock.sleep(0.1) end,
      "clock.sleep: must be called inside a tentacle (e.g. in luact.start's main)")
    assert.has_error(function() luact.tentacle(42) end,
      "bad 'fn' argument to luact.tentacle (function expected, got number)")
    assert.has_error(function() luact.tentacle.cancel({}) end,
      "bad 't' argument to tentacle.cancel (tentacle expected, got table)")
  end)

  it("spawns and finishes 100 000 tentacles on each of two threads", function()
    local counts = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local loop = require "luact.loop"
      local n = 0
      local last
      local ev = luact.event.new()
      -- registered before the first wait: no message can arrive before it
      loop.on("count", function(msg) ev:emit("count", msg[2]) end)
      for i = 1, 100000 do last = luact.tentacle(function() n = n + 1 end) end
      luact.event.wait(nil, last)
      if luact.thread_id == 2 then
        loop.send(1, { "count", n })
      else
        local _, _, other = luact.event.wait(nil, ev)
        luact.stop({ n, other })
      end
    end)
    assert.same({ 100000, 100000 }, counts)
  end)
end)
