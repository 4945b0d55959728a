-- luact.metrics(): every thread's counters, read from any thread.
local helpers = require "spec.helpers.runtime"

describe("luact.metrics", function()
  it("counts calls, notifies, replies and errors on the thread that made or served them", function()
    local m = helpers.start({ n_core = 3, local_call_metrics = true }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id ~= 1 then
        luact.register("/spec/m" .. luact.thread_id, {
          ping = function(self, x) return x end,
          fail = function() error("boom") end,
          note = function() end,
        })
        return
      end
      local a2, a3 = h.wait_for("/spec/m2"), h.wait_for("/spec/m3")
      local here = luact({ ping = function(self, x) return x end })
      for i = 1, 40 do a2:ping(i) end
      for i = 1, 20 do a3:ping(i) end
      for i = 1, 5 do here:ping(i) end
      for _ = 1, 7 do a3:notify_note() end
      local ok, e = pcall(a2.fail, a2)
      assert(not ok and e:is("actor_runtime_error"))
      -- the notifies are run by the time a call sent after them is answered (order per pair)
      a3:ping(0)
      local m = luact.metrics()
      local text = luact.metrics("text")
      luact.stop({ m = m, text = text, threads = luact.metrics().threads })
    end)
    local t1, t2, t3 = m.m.threads[1], m.m.threads[2], m.m.threads[3]
    assert.equal(40 + 21 + 5 + 1, t1.calls_sent)
    assert.equal(7, t1.notifies_sent)
    assert.equal(5, t1.calls_received)         -- the same-thread calls
    assert.equal(41, t2.calls_received)
    assert.equal(21, t3.calls_received)
    assert.equal(7, t3.notifies_received)
    assert.equal(41, t2.replies_sent)
    assert.equal(40 + 21 + 1, t1.replies_received)
    assert.equal(1, t2.errors.actor_runtime_error)  -- counted where the method failed
    assert.equal(0, t1.errors.actor_runtime_error)
    assert.is_true(t1.latency_count >= 3)        -- one remote call in 16 is timed
    assert.is_true(t1.actors >= 1 and t2.actors >= 1)
    assert.is_true(t1.lua_memory_bytes > 0)
    assert.truthy(m.text:find('luact_calls_received_total{thread="2"} 41.0', 1, true), m.text)
    assert.truthy(m.text:find("# EOF\n$"))
  end)

  it("does not count same-thread sync calls unless local_call_metrics is set", function()
    local t1 = helpers.run(function()
      local luact = require "luact"
      local a = luact({ ping = function(self, x) return x end })
      for i = 1, 10 do a:ping(i) end
      a:notify_ping(1)
      luact.clock.sleep(0.01)
      luact.stop(luact.metrics().threads[1])
    end)
    assert.equal(1, t1.notifies_sent)
    assert.equal(1, t1.notifies_received)
    assert.equal(0, t1.calls_sent)
    assert.equal(0, t1.calls_received)
  end)

  it("rejects a bad format and a metrics option on a listener that is not http://", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local ok1, e1 = pcall(luact.metrics, "json")
      local ok2, e2 = pcall(luact.listen, "tcp://127.0.0.1:0", { metrics = true })
      local ok3, e3 = pcall(luact.listen, "http://127.0.0.1:0", { metrics = "yes" })
      luact.stop({ ok1, tostring(e1), ok2, tostring(e2), ok3, tostring(e3) })
    end)
    assert.is_false(r[1])
    assert.truthy(r[2]:find("bad 'format' argument to luact.metrics (nil or 'text' expected, got json)", 1, true), r[2])
    assert.is_false(r[3])
    assert.truthy(r[4]:find("the 'metrics' option needs an http:// listener (got tcp://)", 1, true), r[4])
    assert.is_false(r[5])
    assert.truthy(r[6]:find("bad 'metrics' option to luact.listen (boolean expected, got string)", 1, true), r[6])
  end)
end)
