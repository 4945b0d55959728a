-- A ring of 1000 actors on one thread passing a token 1 000 000 hops (each hop a notify_).
local common = require "bench.common"
local luact = require "luact"

local ACTORS, HOPS = 1000, 1000000
local seconds = luact.start({ n_core = 1, timeout = 120, actors = ACTORS, hops = HOPS }, function()
  local luact = require "luact"
  local done = luact.event.new()
  local ring = {}
  for i = 1, luact.opts.actors do
    ring[i] = luact({ set_next = function(self, n) self.next = n end, pass = function(self, left)
      if left == 0 then done:emit("done") else self.next:notify_pass(left - 1) end
    end })
  end
  -- each actor learns its successor through a call, as a user would wire them
  for i = 1, #ring do
    ring[i]:set_next(ring[i % #ring + 1])
  end
  local t0 = luact.clock.get()
  ring[1]:notify_pass(luact.opts.hops)
  luact.event.wait(nil, done)
  luact.stop(luact.clock.get() - t0)
end)
common.report("ring", { n = HOPS, actors = ACTORS, seconds = seconds, rate = HOPS / seconds }, { "n", "actors", "seconds", "rate" })
