-- luajit hello.lua: four threads, an actor-free hello. Each thread runs main; thread 1 waits
-- for the other three to report through its inbox, then stops the runtime.
local luact = require "luact"

local result = luact.start({ n_core = 4 }, function()
  local luact = require "luact"
  local loop = require "luact.loop"
  luact.logger.info("hello from thread", luact.thread_id, "of", luact.n_core)
  if luact.thread_id == 1 then
    local seen, ev = 0, luact.event.new()
    loop.on("hello", function() seen = seen + 1; ev:emit("hello") end)
    while seen < luact.n_core - 1 do luact.event.wait(nil, ev) end
    luact.stop("all " .. luact.n_core .. " threads said hello")
  else
    loop.send(1, { "hello" })
  end
end)
print(result)
