-- luact.cluster.registry: the cluster's replicated state machine, applied identically on every
-- node (Raft voters from their committed log, other members from a voter's feed). Pure: no
-- clock, socket or randomness; a command is a plain table, the state is plain tables, and a
-- snapshot is the state encoded with string.buffer.
--
-- State: `kv` (key -> value: the key/value store of luact.db, guarded keys included), `guards`
-- (key -> { owner = boot id of the node holding it, addr = its address }), and `done`
-- (request id -> result of the commands applied lately: a command retried after a leader change
-- returns the first result instead of being applied twice), and `vids` (virtual actors:
-- luact.cluster.registry_vactors, whose commands vreg, vunreg, vdrop, vplace, vmoves, vactive ... are
-- applied here too), and `voters` (the Raft configuration as of `applied`: the list of voter
-- addresses of the last configuration entry applied, nil before the first; luact.cluster.voters).
--
-- Commands ({ op = ..., req = request id, ... }):
--   set  k v          -> true
--   del  k            -> true when the key existed
--   cas  k old new    -> true when the value was `old` (nil: absent) and is now `new` (nil: deleted)
--   reg  k v owner addr -> true, or false when another owner's guard holds k
--   release k owner   -> true when that owner's guard held k (the key is removed)
--   drop_owner owner  -> number of guards of that owner removed (with their keys)
local buffer = require "string.buffer"

local registry = {}
local Registry = {}
Registry.__index = Registry

local DONE_KEEP = 4096      -- request results remembered for retries

function registry.new()
  return setmetatable({ kv = {}, guards = {}, vids = {}, n_names = 0, hosted = {}, ctors = {}, ctor_ids = {}, ctor_seq = 0, condemned = {},
                        touched = {}, done = {}, done_order = {}, done_head = 1, applied = 0 }, Registry)
end

-- Deep equality for plain data (cas compares values this way: tables compare by content).
local function equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
registry.equal = equal

local apply = {}

function apply.set(s, c)
  if s.guards[c.k] then return false end      -- a guarded key changes only through its guard
  s.kv[c.k] = c.v
  return true
end

function apply.del(s, c)
  if s.guards[c.k] then return false end
  local had = s.kv[c.k] ~= nil
  s.kv[c.k] = nil
  return had
end

function apply.cas(s, c)
  if s.guards[c.k] then return false end
  if not equal(s.kv[c.k], c.old) then return false end
  s.kv[c.k] = c.new
  return true
end

function apply.reg(s, c)
  local g = s.guards[c.k]
  if g and g.owner ~= c.owner then return false end
  if not g and s.kv[c.k] ~= nil then return false end     -- an unguarded key is not taken over
  s.guards[c.k] = { owner = c.owner, addr = c.addr }
  s.kv[c.k] = c.v
  return true
end

function apply.release(s, c)
  local g = s.guards[c.k]
  if not g or g.owner ~= c.owner then return false end
  s.guards[c.k] = nil
  s.kv[c.k] = nil
  return true
end

function apply.drop_owner(s, c)
  local n = 0
  for k, g in pairs(s.guards) do
    if g.owner == c.owner then
      s.guards[k] = nil
      s.kv[k] = nil
      n = n + 1
    end
  end
  return n
end

local vactors = require "luact.cluster.registry_vactors"
for name, f in pairs(vactors) do if name:match("^v") and type(f) == "function" then apply[name] = f end end

local function remember(s, req, result)
  local order = s.done_order
  order[#order + 1] = req
  s.done[req] = result
  local extra = #order - s.done_head + 1 - DONE_KEEP
  while extra > 0 do
    s.done[order[s.done_head]] = nil
    order[s.done_head] = nil
    s.done_head = s.done_head + 1
    extra = extra - 1
  end
end

-- Applies a command (a table) at log index `index`; returns its result. An unknown or malformed
-- command changes nothing and returns nil, "why" (every node rejects it the same way).
function Registry:apply(index, c)
  self.applied = index
  if type(c) ~= "table" then return nil, "not a command" end
  local req = c.req
  if req ~= nil and self.done[req] ~= nil then return self.done[req] end
  local f = apply[c.op]
  if not f then return nil, "unknown command '" .. tostring(c.op) .. "'" end
  local r = f(self, c)
  if req ~= nil then remember(self, req, r) end
  return r
end

-- Applies a Raft configuration entry at log index `index`: `voters` is its list of addresses.
function Registry:apply_conf(index, voters)
  self.applied = index
  local v = {}
  for i, a in ipairs(voters) do v[i] = a end
  self.voters = v
end

-- Applies an encoded command (the data of a Raft entry).
function Registry:apply_data(index, data)
  local ok, c = pcall(buffer.decode, data)
  if not ok then
    self.applied = index
    return nil, "undecodable command"
  end
  return self:apply(index, c)
end

function registry.encode(cmd)
  return buffer.encode(cmd)
end

function Registry:get(k)
  return self.kv[k]
end

-- Keys starting with prefix, sorted.
function Registry:keys(prefix)
  local out = {}
  for k in pairs(self.kv) do
    if k:sub(1, #prefix) == prefix then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

-- How many names (virtual actors) the registry holds.
function Registry:name_count()
  return self.n_names
end

-- The names with an activation placed on a process (vid -> true; not the idle ones): read only.
function Registry:hosted_names()
  return self.hosted
end

-- The virtual actor entry of vid (see luact.cluster.registry_vactors), or nil.
function Registry:vid(vid)
  return self.vids[vid]
end

-- The constructor (bytecode or an encoded body) of a virtual actor entry.
function Registry:ctor(entry)
  local c = self.ctors[entry.ctor]
  return c and c.code
end

-- The vids changed since the last call (and forgets them).
function Registry:take_touched()
  local t = self.touched
  self.touched = {}
  return t
end

-- Owners (boot ids) holding guards, with the address each registered from: { [owner] = addr }.
function Registry:guard_owners()
  local out = {}
  for _, g in pairs(self.guards) do out[g.owner] = g.addr end
  return out
end

-- Snapshots encode these table keys as small numbers (string.buffer's `dict`): a name's entry
-- repeats them, and the snapshot of many names is mostly them otherwise. Append only: a
-- snapshot is decoded with the list it was encoded with (older snapshots used none).
local SNAP_KEYS = { "ctor", "args", "opts", "multi", "persist", "idle", "seq", "acts", "key", "state", "node",
                    "boot", "t", "e", "l", "handoff", "placed", "saved", "saved_seq", "reminders", "rseq",
                    "code", "refs" }
local snap_buf = buffer.new({ dict = SNAP_KEYS })

-- The state as a string (a Raft snapshot).
function Registry:snapshot()
  local done = {}
  for i = self.done_head, #self.done_order do
    local req = self.done_order[i]
    done[#done + 1] = { req, self.done[req] }
  end
  local s = snap_buf:reset():encode({ kv = self.kv, guards = self.guards, vids = self.vids, ctors = self.ctors,
                         ctor_seq = self.ctor_seq, condemned = self.condemned, done = done, applied = self.applied,
                         voters = self.voters })
    :tostring()
  snap_buf:free()              -- (the buffer would keep a snapshot's worth of memory)
  return s
end

-- Replaces the state with a snapshot's.
function Registry:restore(data, index)
  local s = snap_buf:reset():set(data):decode()
  snap_buf:reset()
  for vid in pairs(self.vids) do self.touched[vid] = true end      -- names that may be gone
  self.kv, self.guards, self.vids, self.done, self.done_order, self.done_head = s.kv, s.guards, s.vids or {}, {}, {}, 1
  self.hosted, self.n_names = {}, 0
  for vid, entry in pairs(self.vids) do
    for key, act in pairs(entry.acts) do
      if act.state == "idle" then entry.acts[key] = vactors.IDLE end     -- (one shared record)
    end
    vactors.touch(self, vid)
    self.n_names = self.n_names + 1
  end
  self.condemned = s.condemned or {}
  self.voters = s.voters or self.voters   -- (a snapshot made before it was kept)
  self.ctors, self.ctor_ids, self.ctor_seq = s.ctors or {}, {}, s.ctor_seq or 0
  for id, c in pairs(self.ctors) do self.ctor_ids[c.code] = id end
  if not s.ctors then
    -- a snapshot from before constructors were kept once: each entry held its code
    for _, entry in pairs(self.vids) do
      if type(entry.ctor) == "string" then entry.ctor = vactors.ctor_ref(self, entry.ctor) end
    end
  end
  for _, d in ipairs(s.done) do remember(self, d[1], d[2]) end
  self.applied = index or s.applied
end

return registry
