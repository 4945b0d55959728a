-- luact.cluster.raft.storage_memory: the default, in-memory Raft storage. It survives a
-- simulated crash (keep the object and hand it to raft.new again) but not the process.
-- Every storage implements the same five methods; see README.md ("Storage").

local M = {}
M.__index = M

local function copy_hs(hs)
  return { term = hs.term or 0, vote = hs.vote, commit = hs.commit or 0 }
end

local function copy_id(id)
  return id and { sid = id.sid, cid = id.cid, recovering = id.recovering == true,
                  forms = { unpack(id.forms or {}) } }
end

-- opts.sid: give the storage an identity (a string unique to this storage; see README.md,
-- "Identity"); without it the node behaves as before identities existed. opts.lose_unsynced:
-- a simulated crash (load() again) loses what was written since the last sync(), as a real
-- disk may (the simulator checks that Raft waits for durability where it must).
function M.new(opts)
  local sid = opts and opts.sid
  local self = setmetatable({ hs = { term = 0, commit = 0 }, snap = nil, ents = {}, offset = 0,
                        syncs = 0, identity = sid and { sid = sid, recovering = false, forms = {} } }, M)
  if opts and opts.lose_unsynced then self.durable = self:state() end
  return self
end

-- (lose_unsynced) what is durable: a copy of the state as of the last sync()
function M:state()
  local ents = {}
  for i = 1, #self.ents do ents[i] = self.ents[i] end
  return { hs = copy_hs(self.hs), snap = self.snap, ents = ents, offset = self.offset,
           identity = copy_id(self.identity) }
end

-- { hard_state =, snapshot = nil|{index,term,conf,data}, entries = { after the snapshot },
--   identity = nil|{ sid, cid, recovering, forms } }
function M:load()
  local d = self.durable
  if d then
    self.hs, self.snap, self.offset, self.identity = copy_hs(d.hs), d.snap, d.offset, copy_id(d.identity)
    self.ents = {}
    for i = 1, #d.ents do self.ents[i] = d.ents[i] end
  end
  local ents = {}
  for i = 1, #self.ents do ents[i] = self.ents[i] end
  return { hard_state = copy_hs(self.hs), snapshot = self.snap, entries = ents,
           identity = copy_id(self.identity) }
end

function M:set_identity(id) self.identity = copy_id(id) end

-- replace every stored entry with index >= from by `entries` (which start at `from`)
function M:append(from, entries)
  local ents, off = self.ents, self.offset
  if from <= off then error("storage: append below the snapshot", 2) end
  for k = #ents, from - off, -1 do ents[k] = nil end
  if #ents + off + 1 ~= from then error("storage: append leaves a hole", 2) end
  for i = 1, #entries do ents[#ents + 1] = entries[i] end
end

function M:set_hard_state(hs) self.hs = copy_hs(hs) end

-- keep snap; keep the entries after it only if the log agrees with it at snap.index and
-- `reset` (a snapshot installed from the leader) is not set
function M:save_snapshot(snap, reset)
  local ents, off = self.ents, self.offset
  local at = ents[snap.index - off]
  local keep = {}
  if not reset and at and at.term == snap.term then
    for k = snap.index - off + 1, #ents do keep[#keep + 1] = ents[k] end
  end
  self.ents, self.offset, self.snap = keep, snap.index, snap
end

function M:sync()
  self.syncs = self.syncs + 1
  if self.durable then self.durable = self:state() end
end

return M
