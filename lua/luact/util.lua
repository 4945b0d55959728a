-- luact.util: small helpers from C: formatting, a blocking sleep, the process id, CPU count.
local C = require("luact.ffi").C

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

return util
