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

  it("fires scheduled timers on time whether they were cancelled young, late or never", function()
    -- clock.schedule is what calls use for their deadlines: a timer far enough ahead waits in a
    -- young list first and reaches the heap only if it is still pending a moment later
    local r = helpers.run(function()
      local luact = require "luact"
      local clock = luact.clock
      local fired = {}
      local function fire(e, now) fired[#fired + 1] = { e.name, now - e.at } end
      local function timer(name, after)
        return clock.schedule({ name = name, at = clock.get() + after, fire = fire, seq = 0, pos = 0 })
      end
      clock.sleep(0)                                     -- let the runtime's own timers start first
      local base = clock.pending()
      local soon = timer("soon", 0.001)                  -- too close to be young: straight to the heap
      local later = timer("later", 0.05)
      local young_cancelled = timer("young_cancelled", 0.05)
      local old_cancelled = timer("old_cancelled", 0.06)
      local pending_before = clock.pending() - base
      clock.cancel(young_cancelled)                      -- cancelled while young
      clock.sleep(0.02)                                  -- the young ones are in the heap by now
      clock.cancel(old_cancelled)                        -- cancelled from the heap
      local pending_after = clock.pending() - base
      clock.sleep(0.08)
      luact.stop({ fired = fired, pending_before = pending_before, pending_after = pending_after,
                   left = clock.pending() - base })
    end)
    assert.equal(4, r.pending_before)
    assert.equal(1, r.pending_after)                     -- "later" (soon fired, two cancelled)
    assert.equal(0, r.left)
    assert.equal(2, #r.fired)
    assert.equal("soon", r.fired[1][1])
    assert.equal("later", r.fired[2][1])
    for _, f in ipairs(r.fired) do
      assert.is_true(f[2] >= 0, f[1] .. " fired early by " .. tostring(-f[2]))
      assert.is_true(f[2] < 0.05, f[1] .. " fired late by " .. tostring(f[2]))
    end
  end)

  it("fires an entry scheduled again after it was cancelled or fired, once per scheduling", function()
    -- (a tentacle is the timer entry of every call it makes)
    local r = helpers.run(function()
      local luact = require "luact"
      local clock = luact.clock
      local e, fired, schedule = require("spec.helpers.timer_entry")()
      clock.sleep(0)
      local base = clock.pending()
      schedule("cancelled before settling", 0.05); clock.cancel(e)
      schedule("cancelled while young", 0.05); clock.sleep(0); clock.cancel(e)
      schedule("cancelled in the heap", 0.002); clock.sleep(0); clock.cancel(e)
      schedule("scheduled again before the removal settled", 0.03)
      local pending_once = clock.pending() - base
      clock.sleep(0.06)
      schedule("after firing", 0.01)
      clock.sleep(0.03)
      luact.stop({ fired = fired, pending_once = pending_once, left = clock.pending() - base })
    end)
    assert.equal(1, r.pending_once)
    assert.equal(0, r.left)
    assert.equal(2, #r.fired)
    assert.equal("scheduled again before the removal settled", r.fired[1][1])
    assert.equal("after firing", r.fired[2][1])
    for _, f in ipairs(r.fired) do
      assert.is_true(f[2] >= 0 and f[2] < 0.05, f[1] .. " fired " .. tostring(f[2]) .. " s after its time")
    end
  end)

  it("fires an entry cancelled while young and made young again once, on time", function()
    -- (a tentacle's next call can start within the young age of its last one's deadline: the
    -- entry must not sit in the young list twice, nor reach the heap twice)
    local r = helpers.run(function()
      local luact = require "luact"
      local clock = luact.clock
      local e, fired, schedule = require("spec.helpers.timer_entry")()
      clock.sleep(0)
      local base = clock.pending()
      schedule("first call", 0.05); clock.sleep(0); clock.cancel(e)        -- young, cancelled
      schedule("second call", 0.05); clock.sleep(0)                         -- young again
      clock.sleep(0.01)                                                     -- grown up: in the heap
      local pending_once = clock.pending() - base
      clock.cancel(e)
      schedule("third call", 0.2); clock.sleep(0.01); clock.cancel(e)       -- a later deadline
      schedule("fourth call", 0.02)
      clock.sleep(0.3)
      luact.stop({ fired = fired, pending_once = pending_once, left = clock.pending() - base })
    end)
    assert.equal(1, r.pending_once)
    assert.equal(0, r.left)
    assert.equal(1, #r.fired)
    assert.equal("fourth call", r.fired[1][1])
    assert.is_true(r.fired[1][2] >= 0 and r.fired[1][2] < 0.05, "fired " .. tostring(r.fired[1][2]) .. " s after its time")
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

  it("fires grid timers whose intervals divide one another in the same turn of the loop", function()
    local lone, shared = helpers.run(function()
      local luact = require "luact"
      local loop = require "luact.loop"
      local fast, slow = {}, {}
      local t1 = luact.clock.grid_timer(0.02, function() fast[loop.stats.turns] = true end)
      luact.clock.sleep(0.013)            -- started out of step with the first
      local t2 = luact.clock.grid_timer(0.04, function() slow[#slow + 1] = loop.stats.turns end)
      luact.clock.sleep(0.3)
      t1:stop(); t2:stop()
      local lone = 0
      for _, turn in ipairs(slow) do
        if not fast[turn] then lone = lone + 1 end
      end
      luact.stop(lone, #slow)
    end)
    assert.is_true(shared >= 3, tostring(shared))
    assert.equal(0, lone)
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
      e[5] = select(2, pcall(luact.clock.grid_timer, 0, function() end))
      luact.stop(e)
    end)
    assert.truthy(errs[1]:find("bad 'sec' argument to clock.sleep (non-negative number expected, got -1)", 1, true))
    assert.truthy(errs[2]:find("bad 'sec' argument to clock.alarm (non-negative number expected, got string)", 1, true))
    assert.truthy(errs[3]:find("bad 'interval' argument to clock.timer (must be > 0)", 1, true))
    assert.truthy(errs[4]:find("bad 'sec' argument to clock.sleep", 1, true))
    assert.truthy(errs[5]:find("bad 'interval' argument to clock.grid_timer (must be > 0)", 1, true))
  end)
end)
