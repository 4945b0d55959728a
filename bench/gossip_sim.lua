-- bench/gossip_sim.lua: simulated time for luact.cluster.gossip to detect a death and to
-- converge after a join, for clusters of 3, 9, 33 and 129 members. Pure Lua over the seeded
-- network of spec/helpers/simnet.lua (messages take 0 or 1 tick, no loss); one tick is 100 ms
-- with the default options. Prints one JSON line per case:
--   {"case":"gossip_detect_9","impl":"luact","n":9,"ticks":...,"seconds_simulated":...,...}
-- `ticks` is the median over the seeds, `ticks_max` the worst. Run from the repository root:
--   luajit bench/gossip_sim.lua [seeds]      (default 20 seeds; fewer for 129 members)

local common = require "bench.common"

local gossip = require "luact.cluster.gossip"
local simnet = require "helpers.simnet"

local SEEDS = tonumber(arg[1]) or 20
local TICK_SECONDS = 0.1

local converged = require("helpers.gossip_cluster").converged

local function start(seed, n)
  local net = simnet.new({ seed = seed, delay = { 0, 1 } })
  for i = 1, n do
    local id = "n" .. i
    net:add(id, gossip.new({ id = id, seeds = { "n1", "n2" }, random = net:random_for(id) }))
  end
  assert(net:run_until(converged, 2000), "cluster did not converge, seed " .. seed)
  net:run(seed % 40)
  return net
end

local function detect(seed, n)
  local net = start(seed, n)
  local victim = "n" .. (1 + seed % n)
  net:crash(victim)
  return net:run_until(function()
    for _, id in ipairs(net:live_ids()) do
      if net:node(id):members()[victim] ~= "dead" then return false end
    end
    return true
  end, 2000)
end

local function join(seed, n)
  local net = start(seed, n - 1)
  local id = "n" .. n
  net:add(id, gossip.new({ id = id, seeds = { "n" .. (1 + seed % (n - 1)) },
                           random = net:random_for(id) }))
  return net:run_until(converged, 2000)
end

local function summary(kind, n, fn)
  local seeds = n >= 129 and math.max(1, math.floor(SEEDS / 4)) or SEEDS
  local got = {}
  local clock = os.clock()
  for seed = 1, seeds do
    got[#got + 1] = assert(fn(seed, n), kind .. " did not finish, seed " .. seed)
  end
  table.sort(got)
  local med = got[math.floor((#got + 1) / 2)]
  local sum = 0
  for _, t in ipairs(got) do sum = sum + t end
  common.report(("gossip_%s_%d"):format(kind, n), {
    n = n, ticks = med, seconds_simulated = med * TICK_SECONDS, ticks_mean = sum / #got,
    ticks_max = got[#got], seeds = seeds, wall_seconds = os.clock() - clock,
  }, { "n", "ticks", "seconds_simulated", "ticks_mean", "ticks_max", "seeds", "wall_seconds" })
end

for _, n in ipairs({ 3, 9, 33, 129 }) do
  summary("detect", n, detect)
  summary("join", n, join)
end
