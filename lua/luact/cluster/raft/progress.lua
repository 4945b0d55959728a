-- luact.cluster.raft.progress: what a leader knows about one peer's log: the highest index known
-- to match (`match`), the next index to send (`next`) and the replication state:
--   "probe"     one append per heartbeat until the follower's position is found
--   "replicate" stream appends optimistically, advancing `next` as they are sent
--   "snapshot"  an InstallSnapshot is in flight, in pieces (`out`: raft/pieces.lua's sender,
--               `out_meta`: the snapshot's index, term and conf); wait for it to be installed

local Progress = {}
Progress.__index = Progress

local function new(next_index)
  return setmetatable({ match = 0, next = next_index, state = "probe", paused = false,
                        pending_snapshot = 0, recent_active = false }, Progress)
end

function Progress:become_probe()
  if self.state == "snapshot" then
    local ps = self.pending_snapshot
    self.next = math.max(self.match + 1, ps + 1)
  else
    self.next = self.match + 1
  end
  self.state, self.paused, self.pending_snapshot = "probe", false, 0
  self.out, self.out_meta = nil, nil
end

function Progress:become_replicate()
  self.state, self.paused, self.pending_snapshot = "replicate", false, 0
  self.out, self.out_meta = nil, nil
  self.next = self.match + 1
end

function Progress:become_snapshot(index)
  self.state, self.paused, self.pending_snapshot = "snapshot", false, index
  self.out, self.out_meta = nil, nil
end

-- an acknowledgement up to index n; returns true if it told us something new
function Progress:maybe_update(n)
  local updated = false
  if self.match < n then
    self.match = n
    updated = true
    self.paused = false
  end
  if self.next < n + 1 then self.next = n + 1 end
  return updated
end

return { new = new }
