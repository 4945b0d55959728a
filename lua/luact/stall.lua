-- luact.stall: the report of a stall (src/stall.rs): when a thread's loop has not turned for
-- `stall_warn` seconds (luact.start's option, default 0.1; false: no watchdog), the core makes
-- the stalled VM call this module's report at its next interpreted instruction, in the stalled
-- code's own coroutine. It logs once per stall: the thread, the actor and method being run (the
-- innermost frame of luact.actor.host's method runner on the stack), the time held so far and the traceback; the
-- core has counted it in the thread's metrics (luact_stalls_total).
local lffi = require "luact.ffi"
local C = lffi.C
local host = require "luact.actor.host"
local logger = require "luact.logger"
local metrics = require "luact.metrics"
local thread = require "luact.thread"

local stall = {}

local MAX_LEVELS = 200

-- The actor record and method of the innermost method call on this coroutine's stack.
local function running_method()
  for level = 3, MAX_LEVELS do
    local info = debug.getinfo(level, "f")
    if not info then return nil end
    if info.func == host.invoke_frame or info.func == host.invoke then
      local _, rec = debug.getlocal(level, 1)
      local _, method = debug.getlocal(level, 2)
      return rec, method
    end
  end
end

function stall.report()
  local tid = thread.id or 1
  local since = C.luact_stall_since(tid)
  local held = since > 0 and C.luact_clock_monotonic() - since or 0
  local b = metrics.b
  b[metrics.SLOT.stall_seconds] = b[metrics.SLOT.stall_seconds] + held
  local rec, method = running_method()
  local what = rec and ("%s, method '%s'"):format(tostring(rec.ref), tostring(method)) or "no actor method (a tentacle or main)"
  logger.warn(("stall: thread %d has not turned its loop for %.0f ms (stall_warn): running %s; nothing else runs on " ..
    "this thread meanwhile\n%s"):format(tid, held * 1000, what, debug.traceback("stalled here:", 3)))
end

debug.getregistry()["luact.stall"] = stall.report

return stall
