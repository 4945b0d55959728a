-- A sync call's deadline holds wherever the actor lives: the same calls made to an actor on the
-- caller's own thread (n_core 1, and thread 1 of 2) and to one on another thread (thread 2 of 2)
-- end the same way. The method's waits (clock.sleep, event.wait, tentacle.yield, a same-thread
-- call that waits) end with actor_timeout at the call's deadline; timed_ and the default
-- deadline alike.
local helpers = require "helpers.runtime"

-- Runs the cases against an actor on thread `where` of an n_core runtime; returns their results.
local function run_cases(n_core, where)
  return helpers.start({ n_core = n_core }, function()
    local luact = require "luact"
    local h = require "spec.helpers.actors"
    local call = require "luact.actor.call"
    call.DEFAULT_TIMEOUT = 0.3        -- (the default deadline, made short for the spec)
    local where = tonumber(os.getenv("LUACT_SPEC_WHERE"))
    if luact.thread_id == where then
      local helper = luact({
        nap = function(self, s) luact.clock.sleep(s); return "helper slept" end,
      })
      luact.register("/spec/deadline", {
        log = {},
        slow = function(self, s) luact.clock.sleep(s); return "slept" end,
        wait_event = function(self, s)
          local ev = luact.event.new()
          luact.clock.timer(s, function() ev:emit("done"); return false end)
          return (luact.event.wait(nil, ev))
        end,
        yield = function(self) return luact.tentacle.yield() end,
        nested = function(self, s) return helper:nap(s) end,
        -- a method that catches the timeout of its wait, notes it, and returns
        careful = function(self, s)
          local ok, e = pcall(luact.clock.sleep, s)
          self.log[#self.log + 1] = ok and "slept" or e.name
          return "careful"
        end,
        report = function(self) return table.concat(self.log, ",") end,
        fast = function(self, x) return x, nil, nil end,
      })
    end
    if luact.thread_id ~= 1 then return end
    local a = h.wait_for("/spec/deadline")
    local r = {}
    local function try(name, f, ...)
      local ok, e = pcall(f, ...)
      r[name] = ok and ("ok: " .. tostring(e)) or (type(e) == "table" and e.name or tostring(e))
    end
    try("timed_sleep", a.timed_slow, a, 0.1, 0.5)
    try("timed_event", a.timed_wait_event, a, 0.1, 0.5)
    try("timed_yield", a.timed_yield, a, 0.1)
    try("timed_nested", a.timed_nested, a, 0.1, 0.5)
    try("default_sleep", a.slow, a, 1)
    try("default_nested", a.nested, a, 1)
    try("in_time", a.timed_slow, a, 1, 0.01)
    -- a method that catches the end of its wait and returns: the caller still gets
    -- actor_timeout (its results come after the deadline), and the method did go on
    try("timed_careful", a.timed_careful, a, 0.1, 0.5)
    luact.clock.sleep(0.1)
    r.careful_log = a:report()
    r.fast = { a:fast(7) }
    r.fast_n = select("#", a:fast(7))
    call.DEFAULT_TIMEOUT = 5.0         -- (thread 1 is busted's VM: later specs need the default)
    luact.stop(r)
  end)
end

describe("luact actor call deadlines", function()
  local expected = {
    timed_sleep = "actor_timeout",
    timed_event = "actor_timeout",
    timed_yield = "actor_timeout",
    timed_nested = "actor_timeout",
    default_sleep = "actor_timeout",
    default_nested = "actor_timeout",
    in_time = "ok: slept",
    timed_careful = "actor_timeout",
    careful_log = "actor_timeout",
    fast = { 7 }, fast_n = 3,
  }
  local function run(n_core, where)
    -- (main cannot capture upvalues: the actor's thread goes through the environment)
    local env = require("ffi")
    env.cdef "int setenv(const char *name, const char *value, int overwrite);"
    env.C.setenv("LUACT_SPEC_WHERE", tostring(where), 1)
    return run_cases(n_core, where)
  end

  it("end a call to an actor on the caller's thread at its deadline (n_core 1)", function()
    assert.same(expected, run(1, 1))
  end)

  it("end a call to an actor on the caller's thread at its deadline (n_core 2)", function()
    assert.same(expected, run(2, 1))
  end)

  it("end a call to an actor on another thread at its deadline, the same way", function()
    assert.same(expected, run(2, 2))
  end)
end)
