-- Actors that fail, die, restart and are watched, on one thread and across threads.
local helpers = require "helpers.runtime"

describe("luact actor failures", function()
  it("turn a Lua error in the callee into actor_runtime_error with its traceback; the actor lives", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local body = function()
        return { fail = function() error("callee broke") end, ok = function() return "alive" end }
      end
      if luact.thread_id == 2 then luact.register("/spec/fails", body); return end
      local out = {}
      for _, a in ipairs { luact(body), h.wait_for("/spec/fails") } do
        local name, e = h.failure(a.fail, a)
        out[#out + 1] = { name, e.message, e.traceback:find("actor_failure_spec.lua", 1, true) ~= nil, a:ok() }
      end
      luact.stop(out)
    end)
    for i = 1, 2 do
      assert.equal("actor_runtime_error", r[i][1])
      assert.truthy(r[i][2]:find("callee broke", 1, true))
      assert.is_true(r[i][3])
      assert.equal("alive", r[i][4])
    end
  end)

  it("deliver an error raised as a plain table intact, on this thread, another thread and by name; the actor lives", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local body = function()
        return { fail = function(self, code) error({ code = code, why = { "plain", "data" } }) end,
                 ok = function() return "alive" end }
      end
      if luact.thread_id == 2 then luact.register("/spec/fails_data", body); return end
      local there = h.wait_for("/spec/fails_data")
      local out = {}
      for i, a in ipairs { luact(body), there, luact.ref("/spec/fails_data") } do
        local ok, e = pcall(a.fail, a, i)
        local ok2, e2 = pcall(a.timed_fail, a, 1, i)      -- the same through timed_
        out[i] = { ok, e, ok2, e2, a:ok() }
      end
      luact.stop(out)
    end)
    for i = 1, 3 do
      assert.same({ false, { code = i, why = { "plain", "data" } }, false, { code = i, why = { "plain", "data" } }, "alive" }, r[i])
    end
  end)

  it("kill the actor on a non-recoverable exception, calling __actor_destroy__ once", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local destroyed = {}
      local make = function(log)
        return {
          explode = function() require("luact").exception.raise("actor_error", "bomb!") end,
          hoge = function() return 1 end,
          __actor_destroy__ = function(self, reason) log[#log + 1] = reason and reason.name or "normal" end,
        }
      end
      local a = luact(make, destroyed)
      local out = {}
      out[1] = { h.failure(a.explode, a) }
      out[2] = h.failure(a.hoge, a)
      out[3] = { unpack(destroyed) }
      luact.kill(a)                       -- already dead: destroy is not called again
      out[4] = #destroyed
      local b = luact(make, destroyed)
      luact.kill(b)
      out[5] = destroyed[2]
      luact.stop(out)
    end)
    assert.equal("actor_error", r[1][1])
    assert.equal("actor_no_body", r[2])
    assert.same({ "actor_error" }, r[3])
    assert.equal(1, r[4])
    assert.equal("normal", r[5])
  end)

  it("never lets a stale id reach another actor", function()
    local old, stale, forged, fresh = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/factory", { make = function(self, v)
          return require("luact")({ v = v, get = function(self) return self.v end })
        end })
        return
      end
      local factory = h.wait_for("/spec/factory")
      local first = factory:make("first")
      local old = first:get()
      luact.kill(first)
      luact.clock.sleep(0.01)
      local ids = {}
      for i = 1, 50 do ids[i] = factory:make(i) end   -- new actors on thread 2 never reuse the id
      local stale = h.failure(first.get, first)
      -- an id from an earlier process (other epoch) never names a live actor either
      local ref = require "luact.actor.ref"
      local m, t, e = ref.parts(first)
      local forged = ref.new(m, t, e + 1, select(4, ref.parts(ids[1])))
      luact.stop(old, stale, h.failure(forged.get, forged), ids[1]:get())
    end)
    assert.same({ "first", "actor_no_body", "actor_no_body", 1 }, { old, stale, forged, fresh })
  end)

  it("restarts a supervised actor under the same id, with actor_temporary_fail meanwhile", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local body = function(tag)
        return {
          id = 100, born = require("luact").clock.get(),
          hoge = function(self) return self.id, tag end,
          explode = function() require("luact").exception.raise("actor_error", "bomb!") end,
        }
      end
      if luact.thread_id == 2 then
        luact.register("/spec/phoenix", { restart_pause = 0.05 }, body, "remote")
        return
      end
      local out = {}
      local a = luact.supervise(body, { restart_pause = 0.05 }, "local")
      for i, x in ipairs { a, h.wait_for("/spec/phoenix") } do
        local seen = {}
        seen.explode = h.failure(x.explode, x)
        seen.during = h.failure(x.hoge, x)
        local tries, v, tag = 0
        while true do
          local ok, res, t = pcall(x.hoge, x)
          if ok then v, tag = res, t; break end
          assert(res:is("actor_temporary_fail"), tostring(res))
          tries = tries + 1
          assert(tries < 1000)
          luact.clock.sleep(0.005)
        end
        seen.after, seen.tag, seen.waited = v, tag, tries > 0
        out[i] = seen
      end
      luact.stop(out)
    end)
    for i, tag in ipairs { "local", "remote" } do
      assert.same({ explode = "actor_error", during = "actor_temporary_fail", after = 100, tag = tag, waited = true }, r[i])
    end
  end)

  it("gives up after maxr restarts within maxt: then actor_no_body and monitors fire", function()
    local failures, after, down = helpers.run(function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local a = luact.supervise(function()
        return { explode = function() require("luact").exception.raise("actor_error", "again") end,
                 hoge = function() return "up" end }
      end, { maxr = 3, maxt = 10, restart_pause = 0.001 })
      local down = {}
      luact.monitor(a, function(target, reason) down[#down + 1] = reason.name end)
      local failures = 0
      for i = 1, 20 do
        local name = h.failure(a.explode, a)
        if name == "actor_no_body" then break end
        assert(name == "actor_error", name)
        failures = failures + 1
        while h.failure(a.hoge, a) == "actor_temporary_fail" do luact.clock.sleep(0.002) end
      end
      luact.clock.sleep(0.01)
      luact.stop(failures, h.failure(a.hoge, a), down)
    end)
    assert.equal(4, failures)      -- three restarts; the fourth failure spends the budget
    assert.equal("actor_no_body", after)
    assert.same({ "actor_error" }, down)
  end)

  it("stops a supervised actor with kill, without a restart", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local a = luact.supervise({ hoge = function() return 1 end })
      local before = a:hoge()
      luact.kill(a)
      luact.clock.sleep(0.2)
      luact.stop({ before, (h.failure(a.hoge, a)) })
    end)
    assert.same({ 1, "actor_no_body" }, r)
  end)

  it("fails callers waiting on an actor that is killed, promptly and with actor_no_body", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/slow", { slow = function() require("luact").clock.sleep(3) return "late" end })
        return
      end
      local slow = h.wait_for("/spec/slow")
      local target = luact.ref("/spec/slow")
      local waiters = {}
      for i = 1, 5 do
        waiters[i] = luact.tentacle(function() return h.failure(slow.slow, slow) end)
      end
      luact.clock.sleep(0.05)
      local t0 = luact.clock.get()
      luact.kill(target)
      local results = luact.event.join(nil, unpack(waiters))
      local names = {}
      for i, res in ipairs(results) do names[i] = res[4] end
      luact.stop(names, luact.clock.get() - t0)
    end)
    assert.same({ "actor_no_body", "actor_no_body", "actor_no_body", "actor_no_body", "actor_no_body" }, r)
  end)
end)

describe("luact monitors", function()
  it("fire exactly once with the reason, for local and remote targets", function()
    local fired = helpers.start({ n_core = 3 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local body = { explode = function() require("luact").exception.raise("actor_error", "why") end,
                     hoge = function() return 1 end }
      if luact.thread_id ~= 1 then
        -- a registered actor is supervised: maxr = 0 makes its first failure final
        luact.register("/spec/target/" .. luact.thread_id, { maxr = 0 }, body)
        luact.register("/spec/target/k" .. luact.thread_id, body)
        return
      end
      local fired = {}
      local function watch(name, target)
        luact.monitor(target, function(t, reason)
          fired[name] = (fired[name] and fired[name] .. "+" or "") ..
            (reason == nil and "normal" or (type(reason) == "table" and reason.name or tostring(reason)))
        end)
      end
      local l1, l2 = luact(body), luact(body)
      local r2, k2 = h.wait_for("/spec/target/2"), h.wait_for("/spec/target/k2")
      local r3, k3 = h.wait_for("/spec/target/3"), h.wait_for("/spec/target/k3")
      watch("local_failed", l1); watch("local_killed", l2)
      watch("remote_failed", r2); watch("remote_killed", k3)
      watch("remote_reason", k2)
      local twice = luact(body)
      watch("twice", twice)
      h.failure(l1.explode, l1)
      luact.kill(l2)
      h.failure(r2.explode, r2)
      luact.kill(k3)
      luact.kill(k2, "shutdown")
      luact.kill(twice); luact.kill(twice)
      h.failure(l1.explode, l1)     -- already dead
      watch("already_dead", l2)
      luact.clock.sleep(0.1)
      luact.stop(fired)
    end)
    assert.same({
      local_failed = "actor_error", local_killed = "normal", remote_failed = "actor_error",
      remote_killed = "normal", remote_reason = "shutdown", twice = "normal",
      already_dead = "actor_no_body",
    }, fired)
  end)

  it("notify a watching actor, and kill linked actors on an abnormal death only", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/linked", { hoge = function() return "linked alive" end })
        luact.register("/spec/linked2", { hoge = function() return "linked2 alive" end })
        return
      end
      local log = {}
      local watcher = luact({ down = function(self, target, reason) log[#log + 1] = tostring(reason) end })
      local linked, linked2 = h.wait_for("/spec/linked"), h.wait_for("/spec/linked2")
      local a, b = luact({}), luact({})
      luact.monitor(a, watcher, "down")
      luact.monitor(a, linked)          -- link: dies with a, when a dies with a reason
      luact.monitor(b, linked2)
      luact.kill(b)                     -- normal kill: linked2 survives
      luact.kill(a, "crashed")
      luact.clock.sleep(0.1)
      luact.stop(log, h.failure(linked.hoge, linked), linked2:hoge())
    end)
    assert.same({ "crashed" }, r)
  end)

  it("can be removed before the target dies", function()
    local n = helpers.run(function()
      local luact = require "luact"
      local a = luact({})
      local n = 0
      local m = luact.monitor(a, function() n = n + 1 end)
      assert(luact.unmonitor(m) == true)
      assert(luact.unmonitor(m) == false)
      luact.kill(a)
      luact.clock.sleep(0.05)
      luact.stop(n)
    end)
    assert.equal(0, n)
  end)
end)
