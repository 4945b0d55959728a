local helpers = require "helpers.runtime"

describe("luact.scheduler tasks", function()
  it("keeps running queued tasks after one raises, and reports the error", function()
    local path = os.tmpname()
    local ran = helpers.start({ n_core = 1, log = path }, function()
      local luact = require "luact"
      local scheduler = require "luact.scheduler"
      luact.logger.redirect(luact.opts.log)
      local ran = {}
      scheduler.task(function() ran[#ran + 1] = 1 end)
      scheduler.task(function() error("task two broke") end)
      scheduler.task(function() ran[#ran + 1] = 3 end)
      -- a task that waits, then raises: reported as well (the report is written in the same
      -- resume as the error, before the tentacle woken by `raised` runs)
      local raised = luact.event.new()
      scheduler.task(function()
        luact.clock.sleep(0.01)
        raised:emit("raising")
        error("task four broke after waiting")
      end)
      scheduler.task(function(a, b, c) ran[#ran + 1] = select("#", a, b, c) end, nil, nil, nil)
      luact.event.wait(nil, raised)
      luact.logger.redirect()
      luact.stop(ran)
    end)
    local f = assert(io.open(path))
    local log = f:read("*a")
    f:close()
    os.remove(path)
    assert.same({ 1, 3, 3 }, ran)
    assert.truthy(log:find("task failed: .*task two broke"), log)
    assert.truthy(log:find("task failed: .*task four broke after waiting"), log)
  end)

  it("lets timers and other tentacles run while actors keep notifying each other", function()
    -- two actors on one thread passing notify_ back and forth: the task queue never runs dry
    local r = helpers.start({ n_core = 1, timeout = 30 }, function()
      local luact = require "luact"
      local clock = luact.clock
      local t0 = clock.get()
      local done_at
      local a, b
      local function player(name)
        return { hops = 0, count = function(self) return self.hops end, pass = function(self, left)
          self.hops = self.hops + 1
          if left == 0 then done_at = clock.get() - t0; return end
          local other = name == "a" and b or a
          other:notify_pass(left - 1)
        end }
      end
      a, b = luact(player("a")), luact(player("b"))
      a:notify_pass(3000000)                       -- several seconds' worth of hops
      clock.sleep(0.05)                            -- must wake while the hops go on
      local woke_at = clock.get() - t0
      local ok, n = pcall(function() return a:timed_count(1) end)  -- a call gets its turn too
      while not done_at do clock.sleep(0.01) end
      luact.stop({ woke_at = woke_at, done_at = done_at, call_ok = ok and n > 0 })
    end)
    assert.is_true(r.woke_at < r.done_at, ("slept until %.3fs, the hops ended at %.3fs"):format(r.woke_at, r.done_at))
    assert.is_true(r.woke_at < 0.5, "a 50 ms sleep took " .. r.woke_at .. " s")
    assert.is_true(r.call_ok)
  end)
  it("runs at most 1024 tasks per loop turn: a 10 ms timer fires while 64 tentacles flood one thread", function()
    -- 64 tentacles each queue 1024 notify_ to one actor, and each message queues the next until
    -- the timer fires: 64 x 1024 tasks stay queued while the run queue holds only the task
    -- runner. A timer due 10 ms after the first message runs must fire in the first turn after
    -- its deadline: after at most 1024 tasks (a turn's budget) have run past the deadline.
    local r = helpers.start({ n_core = 1, timeout = 60 }, function()
      local luact = require "luact"
      local loop = require "luact.loop"
      local clock = luact.clock
      local CAP = 20000000          -- messages at most (a bound if the timer never fires)
      local deadline, fired, fired_after = nil, false, nil
      local handled, late = 0, 0
      local turn, in_turn, max_in_turn = -1, 0, 0
      local ended = luact.event.new()
      local sink
      sink = luact({ hit = function()
        handled = handled + 1
        local t = loop.stats.turns
        if t ~= turn then turn, in_turn = t, 0 end
        in_turn = in_turn + 1
        if in_turn > max_in_turn then max_in_turn = in_turn end
        if deadline == nil then      -- the flood reached the actor: the timer starts now
          deadline = clock.get() + 0.01
          clock.at(deadline, function() fired = true; fired_after = handled; ended:emit("fired") end)
        elseif not fired and clock.get() >= deadline then
          late = late + 1
        end
        if not fired and handled < CAP then sink:notify_hit() end
      end })
      local flooders = {}
      for i = 1, 64 do
        flooders[i] = luact.tentacle(function()
          for _ = 1, 1024 do sink:notify_hit() end
        end)
      end
      for i = 1, 64 do luact.event.wait(nil, flooders[i]) end
      if not fired then luact.event.wait(nil, ended) end
      luact.stop({ fired = fired, fired_after = fired_after, handled = handled, late = late,
                   max_in_turn = max_in_turn, cap = CAP })
    end)
    assert.is_true(r.fired, "the timer never fired while the flood went on")
    assert.is_true(r.fired_after < r.cap, "the flood ran to its end before the timer fired")
    assert.is_true(r.max_in_turn <= 1024, r.max_in_turn .. " tasks ran in one loop turn")
    assert.is_true(r.late <= 1024, r.late .. " tasks ran after the timer's deadline before it fired")
  end)

  it("queues a task of more values than it keeps inline without a per-task blow-up", function()
    -- 7 values spill into a table; built as `{ ... }` from a call site with fixed arguments,
    -- LuaJIT's compiled code made that table 13-26 KB
    local per_task = helpers.run(function()
      local luact = require "luact"
      local scheduler = require "luact.scheduler"
      local got = 0
      local function fn(a, b, c, d, e, f, g) got = got + g end
      local function queue(i) scheduler.task(fn, 1, 2, 3, 4, 5, 6, i) end    -- a fixed call site
      for i = 1, 2000 do queue(i); if i % 4 == 0 then luact.clock.sleep(0) end end
      luact.clock.sleep(0)
      collectgarbage("stop")
      local b0 = collectgarbage("count")
      got = 0
      for i = 1, 20000 do queue(1); if i % 4 == 0 then luact.clock.sleep(0) end end
      luact.clock.sleep(0)
      local bytes = (collectgarbage("count") - b0) * 1024 / 20000
      collectgarbage("restart")
      assert(got == 20000, "every task ran with its 7 values")
      luact.stop(bytes)
    end)
    assert.is_true(per_task < 1024, ("%.0f bytes per task"):format(per_task))
  end)
end)
