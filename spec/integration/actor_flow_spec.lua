-- Deadlines, re-entrancy and back-pressure of actor calls.
local helpers = require "helpers.runtime"

describe("luact actor calls", function()
  it("time out with actor_timeout: timed_ sets the deadline, the default is 5 s", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/sleepy", { nap = function(self, s) require("luact").clock.sleep(s); return "woke after " .. s end })
        return
      end
      local a = h.wait_for("/spec/sleepy")
      local t0 = luact.clock.get()
      local name = h.failure(a.timed_nap, a, 0.05, 0.1)
      local took = luact.clock.get() - t0
      -- the same tentacle calls again; the late reply to the first call (at 0.1 s) comes while
      -- it waits for this one and must not be taken for its answer
      local second = a:timed_nap(1, 0.2)
      local f = luact.future(a:async_nap(0.5))
      local fok, fe = f:get(0.05)
      luact.stop({ name, took < 0.1, second, fok, fe.name })
    end)
    assert.same({ "actor_timeout", true, "woke after 0.2", false, "actor_timeout" }, r)
  end)

  it("counts the default timeout from the turn the call is made in, not from before a wait", function()
    -- the default deadline is taken from the loop's time, which must be the time after the
    -- loop's last wait: a call made right after a sleep gets its whole timeout
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/sleepy2", { nap = function(self, s) require("luact").clock.sleep(s); return "woke" end })
        return
      end
      local call = require "luact.actor.call"
      local a = h.wait_for("/spec/sleepy2")
      call.DEFAULT_TIMEOUT = 0.4
      luact.clock.sleep(0.3)                        -- the thread waits 0.3 s in the kernel
      local ok, v = pcall(a.nap, a, 0.2)            -- needs 0.2 s of the 0.4 s default
      local ok2, e2 = pcall(a.nap, a, 0.6)          -- and the default still bounds a call
      call.DEFAULT_TIMEOUT = 5.0
      luact.stop({ ok, v, ok2, e2.name })
    end)
    assert.same({ true, "woke", false, "actor_timeout" }, r)
  end)

  it("gives a nested call the caller's remaining deadline", function()
    local name, took, outer = helpers.start({ n_core = 3 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/middle", {
          relay = function(self, s)
            local luact = require "luact"
            local inner = luact.ref("/spec/inner")
            local t0 = luact.clock.get()
            local ok, e = pcall(inner.nap, inner, s)  -- default 5 s, but the caller gave 0.3 s
            self.name, self.took = e.name, luact.clock.get() - t0
          end,
          report = function(self) return self.name, self.took end,
        })
        return
      elseif luact.thread_id == 3 then
        luact.register("/spec/inner", { nap = function(self, s) require("luact").clock.sleep(s) end })
        return
      end
      local m = h.wait_for("/spec/middle")
      h.wait_for("/spec/inner")
      local outer = h.failure(m.timed_relay, m, 0.3, 2)
      -- (the middle's own call ends at about the same deadline; on a busy machine its timer
      -- may fire a little after the outer one: look again, bounded, until it has)
      local name, took
      for _ = 1, 100 do
        name, took = m:report()
        if name then break end
        luact.clock.sleep(0.02)
      end
      luact.stop(name, took, outer)
    end)
    assert.equal("actor_timeout", name)
    assert.is_true(took < 1.0, tostring(took))   -- bounded by 0.3 s, not by its own 5 s
    assert.equal("actor_timeout", outer)
  end)

  it("answers actor_timeout when a nested call ran out of the caller's deadline and the method caught it", function()
    -- a method whose nested call timed out at the deadline of the call it serves, and that
    -- catches the error and returns, answers too late: its caller is told actor_timeout, on
    -- its own thread as on another (there, the middle's deadline is counted from its loop's
    -- time, which can be a little before the caller's: its answer may arrive before the
    -- caller's own timer fires, and must not count as a reply in time)
    local outers, caught = helpers.start({ n_core = 3 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local function middle()
        return {
          relay = function(self, s)
            local luact = require "luact"
            local inner = luact.ref("/spec/slow_inner")
            local ok, e = pcall(inner.nap, inner, s)
            self.n_caught = (self.n_caught or 0) + ((not ok and e.name == "actor_timeout") and 1 or 0)
            return "returned after catching"
          end,
          relay_async = function(self, s)            -- the same through a future
            local luact = require "luact"
            local inner = luact.ref("/spec/slow_inner")
            local ok, e = luact.future(inner:async_nap(s)):get()
            self.n_caught = (self.n_caught or 0) + ((not ok and e.name == "actor_timeout") and 1 or 0)
            return "returned after catching"
          end,
          caught = function(self) return self.n_caught end,
        }
      end
      if luact.thread_id == 2 then
        luact.register("/spec/middle_elsewhere", middle())
        return
      elseif luact.thread_id == 3 then
        luact.register("/spec/slow_inner", { nap = function(self, s) require("luact").clock.sleep(s) end })
        return
      end
      luact.register("/spec/middle_here", middle())
      h.wait_for("/spec/slow_inner")
      local outers, caught = {}, {}
      for _, vid in ipairs({ "/spec/middle_here", "/spec/middle_elsewhere" }) do
        local m = h.wait_for(vid)
        for i = 1, 4 do
          local relay = i % 2 == 1 and m.timed_relay or m.timed_relay_async
          local ok, v = pcall(relay, m, 0.1, 1)
          outers[#outers + 1] = ok and tostring(v) or v.name
        end
        -- (the middle elsewhere catches its error about when this thread's timer fires: look
        -- again, bounded, until it has)
        local n
        for _ = 1, 100 do
          n = m:caught()
          if n == 4 then break end
          luact.clock.sleep(0.02)
        end
        caught[#caught + 1] = n
      end
      luact.stop(outers, caught)
    end)
    for i = 1, 8 do assert.equal("actor_timeout", outers[i], "call " .. i) end
    assert.same({ 4, 4 }, caught)
  end)

  it("lets an actor that waits take other calls meanwhile (each call is its own tentacle)", function()
    local sent, signalled_ok, signalled = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/reentrant", function()
          local ev = require("luact").event.new()
          return {
            wait_for_signal = function() require("luact").event.wait(nil, ev); return "signalled" end,
            signal = function() ev:emit("go"); return "sent" end,
          }
        end)
        return
      end
      local a = h.wait_for("/spec/reentrant")
      local waiting = luact.future(a:async_wait_for_signal())
      luact.clock.sleep(0.02)
      local sent = a:signal()
      luact.stop(sent, waiting:get(1))
    end)
    assert.equal("sent", sent)
    assert.is_true(signalled_ok)
    assert.equal("signalled", signalled)
  end)

  it("bounds inboxes: notify_ to a full inbox raises actor_overload, a sync call waits within its deadline", function()
    local sent, overload, pong = helpers.start({ n_core = 2, inbox_size = 8 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/busy", {
          block = function() require("luact").util.sleep(0.3) end,   -- blocks thread 2
          ping = function() return "pong" end,
          sink = function() end,
        })
        return
      end
      local a = h.wait_for("/spec/busy")
      a:notify_block()
      luact.clock.sleep(0.02)
      local sent, overload = 0, nil
      for _ = 1, 100 do
        local ok, e = pcall(a.notify_sink, a)
        if not ok then overload = e.name; break end
        sent = sent + 1
      end
      -- the sync call waits until thread 2 drains its inbox, within its deadline
      local pong = a:timed_ping(2)
      luact.stop(sent, overload, pong)
    end)
    -- thread 2 drained notify_block, then its 8 slots filled, then thread 1's batch for it
    -- (at most inbox_size messages, held by the sender while the inbox is full) filled too
    assert.equal(16, sent)
    assert.equal("actor_overload", overload)
    assert.equal("pong", pong)
  end)
end)
