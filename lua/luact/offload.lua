-- luact.offload(fn, ...): runs fn(...) on a pool thread (an extra LuaJIT VM with no loop, for
-- work that blocks) and returns its results to the calling tentacle, which waits while its
-- thread's loop goes on serving. fn travels as bytecode (no upvalues) and its arguments and
-- results as messages (plain data, as between actors). An error in fn raises `offload_error`
-- here, with the pool thread's message and traceback. The pool (src/offload.rs) starts with
-- the first offload of a run: `opts.offload_threads` threads (default: the number of CPUs, at
-- least 4). The pool VMs' side is luact.offload_worker.
local lffi = require "luact.ffi"
local thread = require "luact.thread"
local C = lffi.C
local loop = require "luact.loop"
local codec = require "luact.actor.codec"
local scheduler = require "luact.scheduler"
local exception = require "luact.exception"
local select, unpack = select, unpack

exception.define("offload_error", { message = "the offloaded function failed" })

local pending = {}     -- corr -> { t, token }
local next_corr = 0

-- A pool thread's answer: { "offload_reply", corr, ok, n, values... }.
loop.on("offload_reply", function(msg)
  local corr = msg[2]
  local w = pending[corr]
  if not w then return end
  pending[corr] = nil
  scheduler.wake(w[1], w[2], msg)
end)

-- The pool's threads at first and the most it grows to past stuck ones (src/offload.rs).
local function pool_size()
  local n = thread.opts and thread.opts.offload_threads
  if n == nil then
    n = math.max(4, C.luact_util_n_cpu())
  elseif type(n) ~= "number" or n < 1 or n % 1 ~= 0 or n > 256 then
    error("bad 'offload_threads' option to luact.start (integer 1..256 expected, got " .. tostring(n) .. ")", 4)
  end
  local max = thread.opts and thread.opts.offload_max_threads
  if max == nil then
    max = math.min(2 * n, 256)
  elseif type(max) ~= "number" or max < n or max % 1 ~= 0 or max > 256 then
    error(("bad 'offload_max_threads' option to luact.start (integer %d..256 expected, got %s)"):format(n, tostring(max)), 4)
  end
  return n, max
end

local function offload(fn, ...)
  if type(fn) ~= "function" then
    error("bad 'fn' argument to luact.offload (function expected, got " .. type(fn) .. ")", 2)
  end
  local code, why, upvalue = codec.bytecode(fn)
  if why == "C" then
    error("bad 'fn' argument to luact.offload (a C function cannot be moved to a pool thread)", 2)
  elseif why then
    error(("bad 'fn' argument to luact.offload (fn runs in a pool thread's VM, so it must not capture upvalues; it captures '%s': pass it as an argument, or require modules inside fn)"):format(upvalue), 2)
  end
  local ctx = loop.context()
  if ctx == nil then error("luact.offload: luact is not running on this thread (call it inside luact.start)", 2) end
  if scheduler.running() == nil then error("luact.offload: must be called inside a tentacle", 2) end
  local size, max = pool_size()
  next_corr = next_corr + 1
  local corr = next_corr
  local tid = thread.id
  local ok, p, len = pcall(codec.encode, { "offload", tid, corr, code, select("#", ...), ... }, "luact.offload", 6)
  if not ok then error("luact.offload: " .. tostring(p), 2) end
  local rc = C.luact_offload_submit(ctx, size, max, p, len)
  if rc < 0 then error("luact.offload: " .. lffi.describe(rc), 2) end
  local t, token = scheduler.prepare_wait("luact.offload")
  pending[corr] = { t, token }
  local r = scheduler.suspend()
  if not r[3] then error(r[5], 0) end
  return unpack(r, 5, 4 + r[4])
end

return offload
