local helpers = require "helpers.runtime"

describe("luact.clock", function()
  it("wakes a sleeping tentacle after the deadline, on every thread", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local loop = require "luact.loop"
      local t0 = luact.clock.get()
      luact.clock.sleep(0.05)
      local slept = luact.clock.get() - t0
      if luact.thread_id == 2 then
        loop.send(1, { "slept", slept })
      else
        local ev = luact.event.new()
        loop.on("slept", function(m) ev:emit("slept", m[2]) end)
        local _, _, other = luact.event.wait(nil, ev)
        luact.stop({ slept, other })
      end
    end)
    for _, s in ipairs(r) do
      assert.is_true(s >= 0.05, tostring(s))
      assert.is_true(s < 1, tostring(s))
    end
  end)

  it("keeps thousands of sleeps waiting at once; each sleeps at least its duration", function()
    local woke, short, took = helpers.run(function()
      local luact = require "luact"
      local ts, short, woke = {}, 0, 0
      local t0 = luact.clock.get()
      for i = 1, 3000 do
        local d = ((i * 7919) % 3000) / 3000 * 0.2      -- a shuffled set of durations
        ts[i] = luact.tentacle(function()
          local start = luact.clock.get()
          luact.clock.sleep(d)
          if luact.clock.get() - start < d then short = short + 1 end
          woke = woke + 1
        end)
      end
      luact.event.join(nil, unpack(ts))
      luact.stop(woke, short, luact.clock.get() - t0)
    end)
    assert.equal(3000, woke)
    assert.equal(0, short)
    assert.is_true(took >= 0.2 * 2999 / 3000)
  end)

  it("fires an alarm event once, and not when cancelled", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local a = luact.clock.alarm(0.02)
      local tp, ev = luact.event.wait(nil, a)
      local c = luact.clock.alarm(0.01)
      c.cancel()
      luact.clock.sleep(0.05)
      luact.stop({ tp, ev == a, c:ready() })
    end)
    assert.same({ "alarm", true, false }, r)
  end)

  it("repeats a timer until its function returns false", function()
    local n = helpers.run(function()
      local luact = require "luact"
      local n = 0
      luact.clock.timer(0.01, function(step) n = n + step; if n >= 5 then return false end end, 1)
      luact.clock.sleep(0.2)
      luact.stop(n)
    end)
    assert.equal(5, n)
  end)

  it("ticks a ticker until stopped", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local ticker = luact.clock.ticker(0.01)
      local seen = {}
      for i = 1, 3 do
        local tp, _, n = luact.event.wait(nil, ticker)
        seen[i] = tp .. n
      end
      ticker:stop()
      luact.clock.sleep(0.05)
      luact.stop(seen, ticker:ready())
    end)
    assert.same({ "tick1", "tick2", "tick3" }, r)
  end)

  it("refuses bad durations", function()
    local errs = helpers.run(function()
      local luact = require "luact"
      local e = {}
      e[1] = select(2, pcall(luact.clock.sleep, -1))
      e[2] = select(2, pcall(luact.clock.alarm, "1"))
      e[3] = select(2, pcall(luact.clock.timer, 0, function() end))
      e[4] = select(2, pcall(luact.clock.sleep, 0 / 0))
      luact.stop(e)
    end)
    assert.truthy(errs[1]:find("bad 'sec' argument to clock.sleep (non-negative number expected, got -1)", 1, true))
    assert.truthy(errs[2]:find("bad 'sec' argument to clock.alarm (non-negative number expected, got string)", 1, true))
    assert.truthy(errs[3]:find("bad 'interval' argument to clock.timer (must be > 0)", 1, true))
    assert.truthy(errs[4]:find("bad 'sec' argument to clock.sleep", 1, true))
  end)
end)
