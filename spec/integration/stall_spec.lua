-- The stall watchdog: a method that holds its thread beyond stall_warn is logged once (thread,
-- actor, method, time held, traceback) and counted in the metrics.
local helpers = require "spec.helpers.runtime"

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

describe("luact stall watchdog", function()
  local log
  before_each(function()
    log = os.tmpname()
    require("luact").logger.redirect(log)
  end)
  after_each(function()
    require("luact").logger.redirect()
    os.remove(log)
  end)

  -- Thread 2 hosts an actor whose `hog` blocks the thread 0.6 s; thread 1 calls it (after both
  -- threads sat idle for 0.5 s when `idle_first`), then 50 short calls. Returns thread 2's stalls.
  local function run_staller(idle_first)
    return helpers.start({ n_core = 2, stall_warn = 0.2, idle_first = idle_first }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/staller", {
          hog = function(self, s) require("luact").util.sleep(s) end,   -- blocks the whole thread
          quick = function() return 1 end,
        })
        return
      end
      local a = h.wait_for("/spec/staller")
      if luact.opts.idle_first then luact.clock.sleep(0.5) end
      a:hog(0.6)
      for _ = 1, 50 do a:quick() end       -- short calls: no stall
      luact.clock.sleep(0.2)
      luact.stop(luact.metrics().threads[2].stalls)
    end)
  end

  it("logs a method that holds its thread once, with the method and where it was, and counts it", function()
    local stalls = run_staller(false)
    -- (at least: a process starved of CPU by the machine may stall between two calls too)
    assert.is_true(stalls >= 1)
    local text = read(log)
    local _, n = text:gsub("method 'hog'", "")
    assert.equal(1, n, text)
    assert.truthy(text:find("stall: thread 2 has not turned its loop for %d+ ms %(stall_warn%): running actor%(.-%), method 'hog'"), text)
    assert.truthy(text:find("stall_spec.lua:%d+: in function 'hog'") or text:find("in function <spec/integration/stall_spec.lua:%d+>"), text)
  end)

  it("reports a stall that starts on a node where every thread was waiting for work", function()
    -- (while every thread waits the watchdog sleeps; the thread leaving its wait must wake it)
    local stalls = run_staller(true)
    assert.is_true(stalls >= 1)
    local _, n = read(log):gsub("method 'hog'", "")
    assert.equal(1, n, read(log))
  end)

  it("can be turned off, and refuses a bad stall_warn", function()
    local stalls = helpers.start({ n_core = 1, stall_warn = false }, function()
      local luact = require "luact"
      luact.util.sleep(0.2)
      luact.clock.sleep(0.01)
      luact.stop(luact.metrics().threads[1].stalls)
    end)
    assert.equal(0, stalls)
    assert.falsy(read(log):find("stall:"))
    local ok, e = pcall(helpers.start, { n_core = 1, stall_warn = -1 }, function() end)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("bad 'stall_warn' option to luact.start (seconds above 0, or false, expected, got -1)", 1, true), tostring(e))
  end)
end)
