-- bench/raft_sim.lua: Raft proposals committed per second of CPU in a simulated 3- and 5-node
-- cluster (luact.cluster.raft over spec/helpers/simnet.lua, in-memory storage, no loss,
-- messages delivered within the tick). The leader gets a batch of proposals every tick; the
-- clock (os.clock, CPU seconds) runs from the first proposal until the leader has applied the
-- last. Every node applies every entry, so the figure covers the whole cluster's work.
-- Prints one JSON line per case:
--   {"case":"raft_commit_3","impl":"luact","n":...,"seconds":...,"rate":...}
-- Run from the repository root:  luajit bench/raft_sim.lua [proposals]   (default 200000)

local common = require "bench.common"

local raft = require "luact.cluster.raft"
local simnet = require "helpers.simnet"

local N = tonumber(arg[1]) or 200000
local BATCH = 256

local function run(nodes, total)
  local applied = 0
  local leader_id
  local net = simnet.new({ seed = 1, on_ready = function(id, rd)
    if id == leader_id then
      for _, e in ipairs(rd.committed) do if e.data then applied = applied + 1 end end
    end
  end })
  local ids = {}
  for i = 1, nodes do ids[i] = i end
  for _, id in ipairs(ids) do
    net:add(id, raft.new({ id = id, peers = ids, random = net:random_for(id) }))
  end
  local function find_leader()
    for _, id in ipairs(ids) do
      if net:node(id):status().role == "leader" then return id end
    end
  end
  net:run_until(find_leader, 1000)
  leader_id = find_leader()
  net:run(5)
  local node = net:node(leader_id)
  local payload = string.rep("x", 64)
  local proposed = 0
  collectgarbage()
  local t0 = os.clock()
  while applied < total do
    local k = math.min(BATCH, total - proposed)
    for _ = 1, k do
      assert(node:propose(payload))
    end
    proposed = proposed + k
    net:tick()
  end
  local seconds = os.clock() - t0
  assert(find_leader() == leader_id, "leadership changed during the run")
  return seconds
end

for _, nodes in ipairs({ 3, 5 }) do
  local seconds = run(nodes, N)
  common.report("raft_commit_" .. nodes, { n = N, seconds = seconds, rate = math.floor(N / seconds) },
    { "n", "seconds", "rate" })
end
