-- luact.util: small helpers from C: formatting, a blocking sleep, the process id, CPU count,
-- random identities.
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C

local util = {}

util.sprintf = string.format

-- Blocks the whole OS thread (every tentacle of this VM) for `sec` seconds; use clock.sleep to
-- pause one tentacle.
function util.sleep(sec)
  if type(sec) ~= "number" or sec < 0 then
    error("bad 'sec' argument to util.sleep (non-negative number expected, got " .. tostring(sec) .. ")", 2)
  end
  C.luact_util_sleep(sec)
end

function util.getpid()
  return C.luact_util_getpid()
end

function util.n_cpu()
  return C.luact_util_n_cpu()
end

-- A new random uuid (v4, 36 characters): an identity unique across machines and restarts (a
-- Raft storage directory, a process's boot id).
local uuid_buf = ffi.new("uint8_t[36]")
function util.uuid()
  if C.luact_uuid_v4(uuid_buf) ~= 0 then error("luact.util.uuid: the core could not make a uuid", 2) end
  return ffi.string(uuid_buf, 36)
end

return util
