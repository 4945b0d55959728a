-- luajit hello.lua: four threads, each with its own LuaJIT VM. Thread 1 registers a named actor;
-- every other thread calls it like an object (each call is a message between threads), and the
-- greeter stops the runtime once every thread has said goodbye.
local luact = require "luact"

local result = luact.start({ n_core = 4 }, function()
  local luact = require "luact"
  if luact.thread_id == 1 then
    luact.register("/hello/greeter", function(n)
      local left = n - 1
      return {
        hello = function(self, tid)
          return ("hello, thread %d (from thread %d)"):format(tid, require("luact").thread_id)
        end,
        bye = function(self)
          left = left - 1
          if left == 0 then require("luact").stop("all " .. (n - 1) .. " threads were greeted") end
        end,
      }
    end, luact.n_core)
  else
    while not luact.resolve("/hello/greeter") do luact.clock.sleep(0.001) end
    local greeter = luact.ref("/hello/greeter")
    luact.logger.info(greeter:hello(luact.thread_id))
    greeter:notify_bye()
  end
end)
print(result)
