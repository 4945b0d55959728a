-- luact.cluster.gossip.health: owns the local health multiplier (Lifeguard's LHM, memberlist's
-- "awareness"). A score in [0, max - 1]: raised when this node shows signs of being the slow
-- one (probes that failed without the relays' nacks coming back, having to refute a suspicion
-- about itself), lowered by every timely direct ack. Probe intervals and timeouts are
-- multiplied by score + 1, so a struggling node slows down before it accuses others.

local Health = {}
Health.__index = Health

local M = {}

function M.new(max)
  return setmetatable({ max = max or 8, score = 0 }, Health)
end

function Health:apply(delta)
  local s = self.score + delta
  if s < 0 then s = 0 end
  if s > self.max - 1 then s = self.max - 1 end
  self.score = s
end

function Health:get() return self.score end

-- scale a timeout or interval (in ticks) by the current health
function Health:scale(t) return t * (self.score + 1) end

return M
