local helpers = require "helpers.runtime"

describe("luact.event", function()
  it("returns the first event that fires, with its type and values", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local a, b = luact.event.new(), luact.event.new()
      luact.tentacle(function() luact.clock.sleep(0.01); b:emit("ready", 1, nil, 3) end)
      local tp, ev, x, y, z = luact.event.wait(nil, a, b)
      luact.stop({ tp = tp, is_b = ev == b, x = x, y = y, z = z })
    end)
    assert.same({ tp = "ready", is_b = true, x = 1, z = 3 }, r)
  end)

  it("lets a filter skip emissions", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local ev = luact.event.new()
      luact.tentacle(function()
        for i = 1, 5 do ev:emit("n", i); luact.clock.sleep(0) end
      end)
      local _, _, v = luact.event.wait(function(tp, _, v) return v >= 4 end, ev)
      luact.stop(v)
    end)
    assert.equal(4, r)
  end)

  it("keeps emissions nobody waited for, and a one-shot stays fired", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local stream = luact.event.new()
      stream:emit("x", 1); stream:emit("x", 2)
      local _, _, first = luact.event.wait(nil, stream)
      local _, _, second = luact.event.wait(nil, stream)
      local once = luact.event.new_oneshot()
      once:emit("done", "v")
      local _, _, v1 = luact.event.wait(nil, once)
      local _, _, v2 = luact.event.wait(nil, once)
      local ok, err = pcall(once.emit, once, "again")
      luact.stop({ first, second, v1, v2, ok, err })
    end)
    assert.same({ 1, 2, "v", "v", false,
                  "luact.event: a one-shot event fires once (already fired with 'done')" }, r)
  end)

  it("wakes every waiting tentacle on one emission", function()
    local n = helpers.run(function()
      local luact = require "luact"
      local ev = luact.event.new()
      local woke = 0
      local ts = {}
      for i = 1, 10 do ts[i] = luact.tentacle(function() luact.event.wait(nil, ev); woke = woke + 1 end) end
      luact.clock.sleep(0)
      ev:emit("go")
      luact.event.join(nil, unpack(ts))
      luact.stop(woke)
    end)
    assert.equal(10, n)
  end)

  it("bounds what a stream keeps and counts what it dropped", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local ev = luact.event.new({ max_pending = 2 })
      for i = 1, 5 do ev:emit("n", i) end
      local _, _, a = luact.event.wait(nil, ev)
      local _, _, b = luact.event.wait(nil, ev)
      luact.stop({ a, b, ev.dropped, ev:ready() })
    end)
    assert.same({ 4, 5, 3, false }, r)
  end)

  it("joins events, marking those that did not fire before the timeout", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local fast = luact.tentacle(function() luact.clock.sleep(0.01); return "fast" end)
      local never = luact.event.new()
      local results = luact.event.join(luact.clock.alarm(0.1), fast, never)
      luact.stop({ results[1][1], results[1][3], results[1][4], results[2][1], results[2][2] == never })
    end)
    assert.same({ "end", true, "fast", "timeout", true }, r)
  end)

  it("runs a select loop until a handler returns false", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local ticks = luact.clock.ticker(0.01)
      local stop = luact.clock.alarm(0.2)
      local n = 0
      local result = luact.event.select({
        [ticks] = function() n = n + 1; if n == 3 then return false, "three" end end,
        [stop] = function() return false, "alarm" end,
      })
      ticks:stop()
      luact.stop(result, n)
    end)
    assert.equal("three", r)
  end)

  it("refuses bad arguments", function()
    local errs = helpers.run(function()
      local luact = require "luact"
      local e = {}
      e[1] = select(2, pcall(luact.event.wait, 42, luact.event.new()))
      e[2] = select(2, pcall(luact.event.wait, nil, {}))
      e[3] = select(2, pcall(luact.event.wait, nil))
      e[4] = select(2, pcall(luact.event.select, nil))
      luact.stop(e)
    end)
    assert.truthy(errs[1]:find("bad 'filter' argument to event.wait (function or nil expected, got number)", 1, true))
    assert.truthy(errs[2]:find("bad argument #2 to event.wait (event expected, got table)", 1, true))
    assert.truthy(errs[3]:find("event.wait: no event to wait for", 1, true))
    assert.truthy(errs[4]:find("bad 'selector' argument to event.select (table expected, got nil)", 1, true))
  end)
end)
