-- luact.offload_stats() -> the offload pool's counters (src/offload.rs), for a process that
-- wants to see stuck pool threads: { threads = started so far, max_threads = the most it grows
-- to, busy = running a task, stuck = running one task for 1 s or more, queued = tasks waiting
-- for a thread, grown = threads started past the first offload_threads }. All 0 before the
-- run's first offload.
local lffi = require "luact.ffi"
local C = lffi.C
local loop = require "luact.loop"

local out = lffi.ffi.new("uint64_t[6]")

return function()
  local ctx = loop.context()
  if ctx == nil then error("luact.offload_stats: luact is not running on this thread (call it inside luact.start)", 2) end
  local rc = C.luact_offload_stats(ctx, out)
  if rc < 0 then error("luact.offload_stats: " .. lffi.describe(rc), 2) end
  return { threads = tonumber(out[0]), max_threads = tonumber(out[1]), busy = tonumber(out[2]),
           stuck = tonumber(out[3]), queued = tonumber(out[4]), grown = tonumber(out[5]) }
end
