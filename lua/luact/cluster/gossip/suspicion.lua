-- luact.cluster.gossip.suspicion: owns one suspicion timer (Lifeguard's dynamic suspicion).
-- It starts at `max` ticks and shrinks toward `min` on a log scale as independent
-- confirmations (suspect messages from other members) arrive, up to `k` of them:
--   timeout = max(min, max - (max - min) * log(c + 1) / log(k + 1))
-- Time is whatever the caller passes in (ticks); the timer never reads a clock.

local log, floor = math.log, math.floor

local Timer = {}
Timer.__index = Timer

local M = {}

local function compute(t)
  if t.k < 1 or t.n >= t.k then return t.min end
  local frac = log(t.n + 1) / log(t.k + 1)
  local v = t.max - (t.max - t.min) * frac
  if v < t.min then v = t.min end
  return v
end

-- from: the member whose suspicion started the timer (not a confirmation)
function M.new(from, k, min, max, now)
  if max < min then max = min end
  local t = setmetatable({ k = k, min = min, max = max, start = now, n = 0,
                           seen = { [from] = true } }, Timer)
  t.timeout = compute(t)
  return t
end

-- record a confirmation from `from`; true if it was new and counted (the caller then
-- re-broadcasts it), false for a repeat or once k confirmations are in
function Timer:confirm(from)
  if self.n >= self.k or self.seen[from] then return false end
  self.seen[from] = true
  self.n = self.n + 1
  self.timeout = compute(self)
  return true
end

function Timer:confirmations() return self.n end

-- tick at which the suspicion expires (fires when now >= deadline)
function Timer:deadline() return self.start + floor(self.timeout + 0.5) end

function Timer:expired(now) return now >= self:deadline() end

return M
