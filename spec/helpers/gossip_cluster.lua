-- Shared by the gossip simulation specs and bench/gossip_sim.lua: what "converged" means for a
-- simulated SWIM cluster.
local gossip_cluster = {}

-- True when every live node sees exactly the live nodes as alive (and nothing else alive).
function gossip_cluster.converged(net)
  local live = net:live_ids()
  local set = {}
  for _, id in ipairs(live) do set[id] = true end
  for _, id in ipairs(live) do
    local count = 0
    for other, state in pairs(net:node(id):members()) do
      if state == "alive" then
        if not set[other] then return false end
        count = count + 1
      end
    end
    if count ~= #live then return false end
  end
  return true
end

return gossip_cluster
