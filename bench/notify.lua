-- notify_ messages per second to an actor on the same thread or on another thread
-- (`luajit bench/notify.lua same|cross`); a final sync call (ordered after every notify_ of the
-- same sender) marks the end.
local common = require "bench.common"
local luact = require "luact"

local where = arg[1] or "same"
local N = where == "same" and 2000000 or 1000000
local seconds = luact.start({ n_core = 2, timeout = 120, where = where, total = N }, function()
  local luact = require "luact"
  local body = { n = 0, tick = function(self) self.n = self.n + 1 end, count = function(self) return self.n end }
  local cross = luact.opts.where == "cross"
  if cross and luact.thread_id == 2 then luact.register("/bench/sink", body); return end
  if luact.thread_id ~= 1 then return end
  local a
  if cross then
    local names = require "luact.actor.names"
    while not names.resolve("/bench/sink") do luact.clock.sleep(0.001) end
    a = require("luact.actor.ref").new(names.resolve("/bench/sink"))
  else
    a = luact(body)
  end
  local total = luact.opts.total
  local t0 = luact.clock.get()
  local sent = 0
  -- Sends in bursts from inside one protected function: a hot loop that pcalls each send
  -- separately does not compile on LuaJIT 2.1 (a pcall'd vararg function aborts the trace).
  local function burst(k)
    for _ = 1, k do
      a:notify_tick()
      sent = sent + 1
    end
  end
  while sent < total do
    local ok, e = pcall(burst, math.min(1000, total - sent))
    if not ok then assert(e:is("actor_overload"), tostring(e)) end
    luact.clock.sleep(0)        -- let the receiver drain, the tentacles run
  end
  local n = a:count()
  while n < total do luact.clock.sleep(0.001); n = a:count() end
  luact.stop(luact.clock.get() - t0)
end)
common.report("notify_" .. where .. "_thread", { n = N, seconds = seconds, rate = N / seconds }, { "n", "seconds", "rate" })
