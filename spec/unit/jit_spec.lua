-- The hot paths that involve no coroutine switch stay compiled: LuaJIT records no trace abort
-- for a not-yet-implemented feature (NYI) while they run.
local helpers = require "helpers.runtime"

describe("luact hot paths under the JIT", function()
  it("encode messages, push to and drain an inbox, and send notify_ without NYI trace aborts", function()
    local aborts = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      if luact.thread_id == 2 then
        luact.register("/jit/sink", { tick = function() end })
        return
      end
      local names = require "luact.actor.names"
      while not names.resolve("/jit/sink") do luact.clock.sleep(0.001) end
      local codec = require "luact.actor.codec"
      local loop = require "luact.loop"
      local C = require("luact.ffi").C
      local ref = require "luact.actor.ref"
      local remote = ref.new(names.resolve("/jit/sink"))
      local here = luact({ tick = function() end })
      local vmdef = require "jit.vmdef"
      local aborts = {}
      local function on_trace(what, tr, func, pc, otr, oex)
        if what == "abort" then
          local reason = vmdef.traceerr[otr] or tostring(otr)
          if type(oex) == "string" or type(oex) == "number" then
            reason = reason:gsub("%%(%w)", function() return tostring(oex) end)
          end
          local info = require("jit.util").funcinfo(func, pc)
          aborts[#aborts + 1] = reason .. " at " .. tostring(info.source) .. ":" .. tostring(info.currentline)
        end
      end
      local drained = 0
      loop.on("jit", function() drained = drained + 1 end)
      -- a reference builds (and caches) its caller for a message name on first use: that closure
      -- is set-up, not the hot path, so make it before watching the traces
      local _ = here.notify_tick, remote.notify_tick
      jit.attach(on_trace, "trace")
      for i = 1, 20000 do
        codec.encode({ "c", 1, 2, "tick", true, i, 1, 1.5, 0.5, 1, i })      -- encoding
      end
      for i = 1, 2000 do
        loop.send(1, { "jit", i })                                          -- push to an inbox
        if i % 100 == 0 then luact.clock.sleep(0) end                       -- (drained by the loop)
      end
      for i = 1, 20000 do
        here:notify_tick(i)                                                 -- notify_, same thread
        if i % 1000 == 0 then luact.clock.sleep(0) end
      end
      for i = 1, 5000 do
        while not pcall(remote.notify_tick, remote, i) do luact.clock.sleep(0.001) end  -- other thread
      end
      jit.attach(on_trace)
      luact.clock.sleep(0.05)
      local nyi = {}
      for _, a in ipairs(aborts) do
        -- "return to lower frame" is where a trace happened to start, not code that cannot be
        -- compiled: LuaJIT starts another trace elsewhere; every other NYI is a real one
        if a:find("NYI", 1, true) and a:find("luact/", 1, true) and not a:find("return to lower frame", 1, true) then
          nyi[#nyi + 1] = a
        end
      end
      luact.stop(nyi, drained, #aborts)
    end)
    assert.same({}, aborts)
  end)
end)
