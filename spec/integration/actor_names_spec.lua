-- Named (virtual) actors on one node: register, unregister, luact.ref, multi_actor.
local helpers = require "helpers.runtime"

describe("luact.register", function()
  it("makes a supervised actor reachable by name from every thread", function()
    local r = helpers.start({ n_core = 3 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 1 then
        local a = luact.register("/system/frontend", function(id)
          return { id = id, hoge = function(self) return self.id, require("luact").thread_id end }
        end, 100)
        assert(a:hoge() == 100)
        local done = luact.event.new()
        local answers = {}
        luact.register("/spec/collect", { put = function(self, tid, v, where) answers[tid] = { v, where }; done:emit("put") end })
        while not (answers[2] and answers[3]) do luact.event.wait(nil, done) end
        luact.stop(answers)
      else
        local ref = h.wait_for("/system/frontend")
        local v, where = ref:hoge()
        h.wait_for("/spec/collect"):put(luact.thread_id, v, where)
      end
    end)
    assert.same({ [2] = { 100, 1 }, [3] = { 100, 1 } }, r)
  end)

  it("refuses a taken name with vid_registered, and takes it again after unregister", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local out = {}
      local first = luact.register("/spec/once", { v = function() return 1 end })
      out[1] = h.failure(luact.register, "/spec/once", { v = function() return 2 end })
      out[2] = h.failure(luact.register, "/spec/once", { multi_actor = true }, { v = function() return 2 end })
      local ref = luact.ref("/spec/once")
      out[3] = ref:v()
      assert(luact.unregister("/spec/once") == true)
      out[4] = h.failure(ref.v, ref)           -- name gone
      out[5] = h.failure(first.v, first)       -- and its actor was killed
      luact.register("/spec/once", { v = function() return 3 end })
      out[6] = ref:v()                         -- the same reference follows the new actor
      out[7] = select(2, pcall(luact.register, 42, {}))
      out[8] = select(2, pcall(luact.register, "/spec/x", 42))
      out[9] = select(2, pcall(luact.register, "/spec/p", { persist = true }, { v = function() end }))
      out[10] = select(2, pcall(luact.register, "/spec/i", { idle_timeout = 1 }, { v = function() end }))
      out[11] = select(2, pcall(luact.save, { n = 1 }))
      luact.stop(out)
    end)
    assert.truthy(r[9]:find("bad 'persist' option to luact.register (durable state is kept by the cluster's registry", 1, true))
    assert.truthy(r[10]:find("bad 'idle_timeout' option to luact.register (only a name registered in the cluster", 1, true))
    assert.truthy(r[11]:find("luact.save: not called from a method of a persistent virtual actor", 1, true))
    assert.same({ "vid_registered", "vid_registered", 1, "actor_no_body", "actor_no_body", 3 },
      { r[1], r[2], r[3], r[4], r[5], r[6] })
    assert.truthy(r[7]:find("bad 'vid' argument to luact.register (non-empty string expected, got number)", 1, true))
    assert.truthy(r[8]:find("bad 'ctor' argument to luact.register (function, table or cdata expected, got number)", 1, true))
  end)

  it("follows a registered actor through its restarts", function()
    local before, after = helpers.run(function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local gen = 0
      luact.register("/spec/restarting", { restart_pause = 0.01 }, function()
        gen = gen + 1
        return { gen = function() return gen end,
                 explode = function() require("luact").exception.raise("actor_error", "x") end }
      end)
      local ref = luact.ref("/spec/restarting")
      local before = ref:gen()
      h.failure(ref.explode, ref)
      luact.clock.sleep(0.05)
      luact.stop(before, ref:gen())
    end)
    assert.equal(1, before)
    assert.equal(2, after)
  end)

  it("spreads calls to a multi_actor name round robin over the threads that registered it", function()
    local counts = helpers.start({ n_core = 4 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      luact.register("/spec/pool", { multi_actor = true }, function()
        return { where = function() return require("luact").thread_id end }
      end)
      if luact.thread_id ~= 1 then return end
      -- wait until all four registered
      local names = require "luact.actor.names"
      local ffi = require "ffi"
      local list = ffi.new("luact_address_t[8]")
      local C = require("luact.ffi").C
      while C.luact_names_list("/spec/pool", 10, list, 8) < 4 do luact.clock.sleep(0.001) end
      local pool = luact.ref("/spec/pool")
      local counts = {}
      for _ = 1, 400 do
        local w = pool:where()
        counts[w] = (counts[w] or 0) + 1
      end
      luact.stop(counts)
    end)
    assert.same({ 100, 100, 100, 100 }, counts)
  end)

  it("removes one actor of a multi_actor name with unregister(vid, actor)", function()
    local r = helpers.run(function()
      local luact = require "luact"
      local a = luact.register("/spec/two", { multi_actor = true }, { who = function() return "a" end })
      local b = luact.register("/spec/two", { multi_actor = true }, { who = function() return "b" end })
      luact.unregister("/spec/two", a)
      local ref = luact.ref("/spec/two")
      luact.stop({ ref:who(), ref:who(), ref:who() })
    end)
    assert.same({ "b", "b", "b" }, r)
  end)

  it("explains a URL reference whose scheme has no transport", function()
    local luact = require "luact"
    assert.has_error(function() luact.ref("foo://127.0.0.1:8080/system/frontend") end,
      "luact.ref: no transport for 'foo://' references (known: ssl, tcp, tls)")
  end)

  it("refuses a call through a tcp:// reference outside luact.start, as luact.stop does", function()
    local luact = require "luact"
    local r = luact.ref("tcp://127.0.0.1:8080/system/frontend")
    assert.has_error(function() r:hoge() end,
      "'hoge' to 127.0.0.1:8080/system/frontend: luact is not running (call it inside luact.start)")
    assert.has_error(function() r:timed_hoge(1) end,
      "'hoge' to 127.0.0.1:8080/system/frontend: luact is not running (call it inside luact.start)")
  end)
end)
