-- luact.cluster.moves (thread 1): what this node sees of virtual actors changing host. It counts
-- failovers (activations the registry places on another node because their host was gone: the
-- leader's failover tags those placements) and keeps the last MAX_RECENT of them for
-- luact.inspect.cluster and the dashboard; and it times placements: from when this node learned
-- that a name needs a host (the leader: when it found the host gone; a node whose call woke an
-- idle name: the wake; any other member: when its registry applied the new placement) to when
-- its registry applies the new activation as active. It reads the registry's activations and
-- writes metrics only; it changes nothing.
local metrics = require "luact.metrics"
local clock = require "luact.clock"

local moves = {}

local MAX_RECENT = 50
local MAX_WAITING = 10000       -- names timed at once (past it, the oldest are forgotten)
local FORGET = 60               -- seconds after which a name that never got a host is forgotten

local recent = {}               -- the newest last: { time = unix seconds, name, from, to }
local waiting, nwaiting = {}, 0 -- activation key -> monotonic time it needed a host
local counted = {}              -- activation key -> boot of the failover counted (while pending)

local function forget_old(now)
  for key, t in pairs(waiting) do
    if now - t > FORGET then waiting[key], nwaiting = nil, nwaiting - 1 end
  end
  if nwaiting >= MAX_WAITING then waiting, nwaiting, counted = {}, 0, {} end
end

-- The activation `key` needs a host from now (or `now`); a second call before it has one
-- changes nothing.
function moves.needs(key, now)
  if waiting[key] then return end
  now = now or clock.get()
  if nwaiting >= MAX_WAITING then forget_old(now) end
  waiting[key], nwaiting = now, nwaiting + 1
end

-- luact.cluster.activations.sync shows each activation of a name the registry changed.
function moves.saw(vid, key, act)
  local st = act.state
  if st == "pending" and act.placed then
    if act.why == "failover" and counted[key] ~= act.boot then
      counted[key] = act.boot
      metrics.cluster_count("failovers")
      recent[#recent + 1] = { time = clock.walltime(), name = vid, from = act.from, to = act.node }
      if #recent > MAX_RECENT then table.remove(recent, 1) end
    end
    moves.needs(key)
  elseif st == "active" then
    counted[key] = nil
    local t0 = waiting[key]
    if t0 then
      waiting[key], nwaiting = nil, nwaiting - 1
      metrics.cluster_observe("placement", clock.get() - t0)
    end
  end
end

-- The last failovers this node saw (a copy), oldest first.
function moves.recent()
  local out = {}
  for i, m in ipairs(recent) do out[i] = { time = m.time, name = m.name, from = m.from, to = m.to } end
  return out
end

-- Forgets everything (a new run of luact.start in this VM).
function moves.reset()
  recent, waiting, nwaiting, counted = {}, {}, 0, {}
end

return moves
