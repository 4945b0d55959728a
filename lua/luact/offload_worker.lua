-- luact.offload_worker: the loop of an offload pool thread's VM (made by src/offload.rs): take
-- a task, run it, push the reply into the caller's inbox, until the pool stops. In this VM
-- `require "luact"` gives what makes sense without a loop (util, memory, logger, exception,
-- clock.get/walltime); anything else, calling an actor or sleeping on the clock raises a clear
-- error. The callers' side is luact.offload.
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C
local select, unpack = select, unpack

local worker = {}

-- Bytes of arguments and results a pool VM moves before it runs a full collection between two
-- tasks. LuaJIT's collector lets a heap grow to twice what survived its last cycle, so a VM
-- idle after a task with a 32 MiB argument kept that garbage (12 such calls: 462 MB of RSS);
-- this bounds the dead data a pool VM holds between tasks to about GC_AFTER_BYTES.
local GC_AFTER_BYTES = 16 * 1024 * 1024

local NO_LOOP = "(an offload pool thread has no loop: actors, tentacles, sockets and timers live on luact's threads; return what they need to the caller)"

local function facade(id)
  local clock = setmetatable({
    get = function() return C.luact_clock_monotonic() end,
    walltime = function() return C.luact_clock_wall() end,
    sleep = function() error("luact.clock.sleep is not available in an offload pool thread " .. NO_LOOP .. "; luact.util.sleep blocks this pool thread", 2) end,
  }, { __index = function(_, k) error(("luact.clock.%s is not available in an offload pool thread %s"):format(tostring(k), NO_LOOP), 2) end })
  return setmetatable({
    util = require "luact.util",
    memory = require "luact.memory",
    logger = require "luact.logger",
    exception = require "luact.exception",
    clock = clock,
    version = lffi.version,
    offload_thread = id,
  }, {
    __index = function(_, k)
      error(("luact.%s is not available in an offload pool thread %s"):format(tostring(k), NO_LOOP), 2)
    end,
    __call = function() error("luact(...): actors cannot be created in an offload pool thread " .. NO_LOOP, 2) end,
  })
end

local function no_actor()
  error("an actor cannot be called from an offload pool thread " .. NO_LOOP, 0)
end

local function traceback(err)
  local exception = require "luact.exception"
  if exception.is_exception(err) then return err end
  return debug.traceback(tostring(err), 2)
end

-- Entry point of pool thread `id` (called by the core in a fresh VM); `start_payload`: what
-- luact.start gave the core (luact.runtime), for thread 1's package.path and cpath.
function worker.main(id, start_payload)
  if start_payload and #start_payload > 0 then
    local payload = require("string.buffer").decode(start_payload)
    package.path, package.cpath = payload.path, payload.cpath
  end
  package.loaded["luact"] = facade(id)
  local ref = require "luact.actor.ref"
  ref.set_dispatch(no_actor, no_actor)
  ref.set_url_dispatch(no_actor)
  local exception = require "luact.exception"
  exception.define("offload_error", { message = "the offloaded function failed" })
  local codec = require "luact.actor.codec"
  local out = ffi.new("const uint8_t*[1]")
  local r
  local function collect(ok, ...) r = { ok = ok, n = select("#", ...), ... } end
  local moved = 0     -- argument and result bytes since the last full collection
  while true do
    local n = C.luact_offload_take(out)
    if n == -1 then break end
    if n < 0 then error("luact: offload pool thread " .. id .. ": " .. lffi.describe(n), 0) end
    codec.begin(out[0], n)
    local msg = codec.decode_next()
    local tid, corr, code, nargs = msg[2], msg[3], msg[4], msg[5]
    local fn, err = loadstring(code, "=offloaded function")
    if fn then
      collect(xpcall(fn, traceback, unpack(msg, 6, 5 + nargs)))
    else
      r = { ok = false, n = 1, err }
    end
    msg, fn = nil, nil
    local reply
    if r.ok then
      reply = { "offload_reply", corr, true, r.n, unpack(r, 1, r.n) }
    else
      local e = r[1]
      local text = exception.is_exception(e) and (e.name .. ": " .. e.message) or tostring(e)
      local tb = not exception.is_exception(e) and text:match("\nstack traceback:\n(.*)$")
      local x = exception.new("offload_error", ("pool thread %d: %s"):format(id, tb and text:gsub("\nstack traceback:.*$", "") or text))
      x.traceback = exception.is_exception(e) and e.traceback or tb or x.traceback
      x.cause = exception.is_exception(e) and exception.to_table(e) or nil
      reply = { "offload_reply", corr, false, 1, x }
    end
    local ok, p, len = pcall(codec.encode, reply, "luact.offload's result", 5)
    if not ok then
      local x = exception.new("offload_error", ("pool thread %d: the result cannot travel back: %s"):format(id, tostring(p)))
      p, len = codec.encode({ "offload_reply", corr, false, 1, x })
    end
    r = nil
    -- a full inbox makes this pool thread wait (never the caller's loop); a finished run drops it
    while C.luact_offload_reply(tid, p, len) == lffi.status.full do
      C.luact_util_sleep(0.0005)
    end
    moved = moved + n + len
    if moved >= GC_AFTER_BYTES then
      p = nil
      collectgarbage()
      moved = 0
    end
  end
end

return worker
