-- luact: the public facade. `local luact = require "luact"` gives the runtime (start/stop), the
-- tentacle, event, clock, exception, memory, util and logger modules, and the identity of the
-- calling thread (`luact.thread_id`, `luact.machine_id`, `luact.n_core`, nil outside start
-- except machine_id).
local runtime = require "luact.runtime"

local luact = {
  start = runtime.start,
  stop = runtime.stop,
  tentacle = require "luact.tentacle",
  event = require "luact.event",
  clock = require "luact.clock",
  exception = require "luact.exception",
  memory = require "luact.memory",
  util = require "luact.util",
  logger = require "luact.logger",
  version = require("luact.ffi").version,
}

local dynamic = {
  thread_id = function() return runtime.thread_id end,
  n_core = function() return runtime.n_core end,
  machine_id = function() return runtime.machine_id end,
}

return setmetatable(luact, {
  __index = function(_, k)
    local f = dynamic[k]
    if f then return f() end
    return nil
  end,
})
