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
    -- the latency histogram's `le` series are cumulative once: +Inf holds every timed call
    local count = m.text:match('luact_call_latency_seconds_count{thread="1"} (%d+)')
    local inf = m.text:match('luact_call_latency_seconds_bucket{le="%+Inf",thread="1"} (%d+)')
    assert.equal(count, inf)
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

  it("times the methods a body marks, wherever they are called from, and no other", function()
    local r = helpers.start({ n_core = 3 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local function room()
        return { __actor_metrics__ = { actor = "room", methods = { "join", "nap" } },
          join = function(self, x) return x end,
          leave = function(self, x) return x end,
          nap = function(self) luact.clock.sleep(0.02) end }
      end
      if luact.thread_id == 2 then
        local rm = luact.register("/spec/room", room())
        luact.register("/spec/room_driver", { run = function()
          for i = 1, 3 do rm:join(i) end               -- same thread, sync
          rm:notify_join(4)                            -- same thread, notify_
          return true
        end })
        return
      end
      if luact.thread_id ~= 1 then return end
      local byname = h.wait_for("/spec/room")
      h.wait_for("/spec/room_driver"):run()
      local direct = luact.resolve("/spec/room")
      for i = 1, 4 do byname:join(i) end                -- by name, from another thread
      for i = 1, 2 do direct:join(i) end                -- by reference
      assert(luact.future(direct:async_join(1)):get())
      for i = 1, 5 do direct:leave(i) end               -- not marked
      byname:nap(); byname:nap()
      local here = luact(room())                         -- same thread as the caller
      here:join(1)
      local m
      for _ = 1, 200 do                                  -- (the notify_ runs as a task)
        m = luact.metrics()
        if m.methods[1] and m.methods[1].count >= 12 then break end
        luact.clock.sleep(0.005)
      end
      luact.stop({ methods = m.methods, bounds = m.method_bounds, text = luact.metrics("text") })
    end)
    assert.equal(2, #r.methods)                          -- leave is not timed
    local join, nap = r.methods[1], r.methods[2]
    assert.same({ "room", "join", 12 }, { join.actor, join.method, join.count })
    assert.same({ "room", "nap", 2 }, { nap.actor, nap.method, nap.count })
    local in_buckets = 0
    for _, n in ipairs(join.buckets) do in_buckets = in_buckets + n end
    assert.equal(12, in_buckets)
    -- each nap slept 20 ms: nothing in the buckets up to 10 ms
    for i, bound in ipairs(r.bounds) do
      if bound <= 0.01 then assert.equal(0, nap.buckets[i]) end
    end
    assert.is_true(nap.sum >= 0.04, tostring(nap.sum))
    assert.truthy(r.text:find('luact_method_duration_seconds_count{actor="room",method="join"} 12\n', 1, true), r.text)
    -- the `le` series are cumulative: 12 joins at or below +Inf, none twice
    assert.truthy(r.text:find('luact_method_duration_seconds_bucket{le="+Inf",actor="room",method="join"} 12\n', 1, true), r.text)
    assert.truthy(r.text:find('luact_method_duration_seconds_bucket{le="+Inf",actor="room",method="nap"} 2\n', 1, true), r.text)
    assert.truthy(r.text:find('luact_method_duration_seconds_bucket{le="0.01",actor="room",method="nap"} 0\n', 1, true), r.text)
    assert.falsy(r.text:find('method="leave"', 1, true))
  end)

  it("refuses a malformed __actor_metrics__ and more than 64 timed pairs, saying why", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local out = {}
      local function try(mark)
        local ok, e = pcall(luact, { __actor_metrics__ = mark, m = function() end })
        return ok and "created" or tostring(e)
      end
      out[1] = try("join")
      out[2] = try({ actor = 7, methods = { "m" } })
      out[3] = try({ actor = "a" })
      out[4] = try({ actor = "a", methods = { "m", 2 } })
      out[5] = try({ methods = { "m" } })            -- no actor: labelled actor=""
      for i = 1, 63 do try({ actor = "many", methods = { "m" .. i } }) end
      out[6] = try({ actor = "many", methods = { "m64" } })
      out[7] = try({ actor = "many", methods = { "m1" } })   -- a pair already marked
      -- a body whose metatable answers every key (here an actor reference registered by name
      -- as a proxy) carries no mark: it is created and forwards
      local target = luact({ echo = function(_, x) return x end })
      local okp, proxy = pcall(luact.register, "/spec/proxy", target)
      out[8] = okp and proxy:echo("through") or tostring(proxy)
      luact.stop(out)
    end)
    assert.truthy(r[1]:find("luact: bad __actor_metrics__ (table expected, got string)", 1, true), r[1])
    assert.truthy(r[2]:find("bad __actor_metrics__.actor (string expected, got number)", 1, true), r[2])
    assert.truthy(r[3]:find("bad __actor_metrics__.methods (a list of method names expected)", 1, true), r[3])
    assert.truthy(r[4]:find("bad __actor_metrics__.methods[2] (string expected, got number)", 1, true), r[4])
    assert.equal("created", r[5])
    assert.truthy(r[6]:find("cannot time method 'm64' of actor 'many': at most 64 (actor, method) pairs are timed per process", 1, true), r[6])
    assert.equal("created", r[7])
    assert.equal("through", r[8])
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
