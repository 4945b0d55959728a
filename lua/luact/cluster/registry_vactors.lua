-- luact.cluster.registry_vactors: the virtual actor entries of the registry (part of its
-- replicated state machine, applied identically on every node; pure). An entry is
--   vids[vid] = { ctor = constructor id, args = encoded arguments, opts = supervise
--                 options (nil: none), multi = true or nil, seq = n, acts = { [key] = activation } }
-- Each distinct constructor (bytecode or an encoded body) is kept once, in
-- ctors[id] = { code =, refs = number of names using it } (ctor_ids: code -> id; ids are given
-- in apply order, so every node gives the same), and goes with the last name using it.
-- and an activation { key =, node = "ip:port", boot = that process's boot id,
--   (an idle activation is the shared table V.IDLE, read-only: nothing else to keep per name)
--   state = "active" (t, e, l: its thread, epoch and local id there) | "pending" (placed on
--   node, not created yet; `handoff` = state handed over by its previous activation) |
--   "idle" (no node: deactivated for idleness, woken by the next call) }.
-- Every change marks the vid in `touched` (the node mirrors it into its name table).
-- `condemned[boot]` lists processes that may host nothing any more (see luact.cluster.lease).
-- A persistent name (`persist = true`) also keeps `saved`: the state its activation saved last
-- (codec-encoded, at most MAX_STATE bytes), which every next activation starts from; saves are
-- applied only from the activation the registry places the name on now (vsaves below).
local V = {}

V.MAX_STATE = 64 * 1024       -- bytes of encoded state per persistent name

-- Every change of a name goes through here: it is marked touched, and kept in `hosted` (vid ->
-- true: the names with an activation placed on a process, not idle) or out of it, so that
-- what looks at activations (failover, several times a second) need not visit idle names.
-- The record of every idle activation (no node, no key: the acts table's key is its key).
-- Never changed in place: an idle activation is replaced when it is placed.
V.IDLE = setmetatable({ state = "idle" }, { __newindex = function()
  error("registry: the shared idle activation is read-only", 2)
end })

local function touch(s, vid)
  s.touched[vid] = true
  local entry, placed = s.vids[vid], nil
  if entry then
    for _, act in pairs(entry.acts) do
      if act.boot ~= nil then placed = true; break end
    end
  end
  s.hosted[vid] = placed
end
V.touch = touch

-- the id of constructor `code`, one more name using it
local function ctor_ref(s, code)
  local id = s.ctor_ids[code]
  if id then
    local c = s.ctors[id]
    c.refs = c.refs + 1
    return id
  end
  id = s.ctor_seq + 1
  s.ctor_seq = id
  s.ctors[id], s.ctor_ids[code] = { code = code, refs = 1 }, id
  return id
end
V.ctor_ref = ctor_ref

-- name vid goes (with its constructor, if it was the last name using it)
local function drop_name(s, vid)
  local c = s.ctors[s.vids[vid].ctor]
  s.vids[vid] = nil
  s.n_names = s.n_names - 1
  if c then
    c.refs = c.refs - 1
    if c.refs <= 0 then s.ctors[s.ctor_ids[c.code]], s.ctor_ids[c.code] = nil, nil end
  end
end

local function new_act(entry, c, state)
  entry.seq = entry.seq + 1
  local key = c.vid .. "#" .. entry.seq
  entry.acts[key] = { key = key, node = c.node, boot = c.boot, state = state,
                      t = c.t, e = c.e, l = c.l }
  return key
end

-- vreg vid ctor args opts multi node boot t e l -> the activation's key, or false when the name
-- is taken (by a name that is not multi_actor on both sides). With `lazy` (no node ...): the
-- activation is filed idle, created by the first call that wakes it.
function V.vreg(s, c)
  if type(c.vid) ~= "string" or type(c.ctor) ~= "string" then return nil end
  local entry = s.vids[c.vid]
  if entry then
    if not (entry.multi and c.multi) then return false end
  else
    -- (nil rather than an empty table or false: an entry is kept on every node for every name)
    entry = { ctor = ctor_ref(s, c.ctor), args = c.args, opts = type(c.opts) == "table" and next(c.opts) ~= nil and c.opts or nil,
              multi = c.multi and true or nil,
              persist = (c.persist and not c.multi) and true or nil,
              idle = (type(c.idle) == "number" and not c.multi) and c.idle or nil, seq = 0, acts = {} }
    s.vids[c.vid] = entry
    s.n_names = s.n_names + 1
  end
  local key
  if c.lazy and not entry.multi then
    -- registered without an activation: idle until the first call by name wakes it (vwake)
    entry.seq = entry.seq + 1
    key = c.vid .. "#" .. entry.seq
    entry.acts[key] = V.IDLE
  else
    key = new_act(entry, c, "active")
  end
  touch(s, c.vid)
  return key
end

-- vunreg vid [key | where = { node, t, e, l }] -> the activations removed (the whole name
-- without key or where); a name left with no activation is removed
local function matches(c, key, act)
  if c.key ~= nil then return c.key == key end
  local w = c.where
  if w == nil then return true end
  return act.node == w.node and act.t == w.t and act.e == w.e and act.l == w.l
end

function V.vunreg(s, c)
  local entry = s.vids[c.vid]
  if not entry then return {} end
  local removed = {}
  for key, act in pairs(entry.acts) do
    if matches(c, key, act) then
      removed[#removed + 1] = act
      entry.acts[key] = nil
    end
  end
  if next(entry.acts) == nil then drop_name(s, c.vid) end
  touch(s, c.vid)
  return removed
end

-- vdrop vid key boot -> true when that activation (still of that process) was removed: it died
-- for good; the name goes with its last activation
function V.vdrop(s, c)
  local entry = s.vids[c.vid]
  local act = entry and entry.acts[c.key]
  if not act or act.boot ~= c.boot then return false end
  entry.acts[c.key] = nil
  if next(entry.acts) == nil then drop_name(s, c.vid) end
  touch(s, c.vid)
  return true
end

-- vplace vid key from_boot node boot [handoff] [why] -> true when the activation, still held by
-- the process from_boot, now waits for `node` to create it (it keeps `from`, the node it left,
-- and `why`: "failover" when its host was gone)
function V.vplace(s, c)
  local entry = s.vids[c.vid]
  local act = entry and entry.acts[c.key]
  if not act or act.boot ~= c.from_boot then return false end
  entry.acts[c.key] = { key = c.key, node = c.node, boot = c.boot, state = "pending", handoff = c.handoff,
                        placed = true, from = act.node, why = c.why }   -- (why: "failover" or nil)
  touch(s, c.vid)
  return true
end

-- vmoves moves -> a list of results, one per move, applied in order: each move is a vplace's
-- arguments (one Raft entry for the activations a leader moves away from a gone process in one
-- look, instead of one each)
function V.vmoves(s, c)
  local out = {}
  if type(c.moves) ~= "table" then return out end
  for i, m in ipairs(c.moves) do
    out[i] = type(m) == "table" and V.vplace(s, m) or false
  end
  return out
end

-- vupgrade vid ctor args -> true when the name's constructor and arguments are now `ctor`,
-- `args` (its other options stay); every activation placed on a process is marked `stale`: its
-- host re-creates it in place with the new code (a vplace to itself, which clears the mark;
-- luact.cluster.activations). An idle activation needs nothing: its next one runs the new code.
-- "no_name" when vid is not registered.
function V.vupgrade(s, c)
  local entry = s.vids[c.vid]
  if not entry then return "no_name" end
  if type(c.ctor) ~= "string" or type(c.args) ~= "string" then return false end
  local old = s.ctors[entry.ctor]
  entry.ctor, entry.args = ctor_ref(s, c.ctor), c.args
  if old then
    old.refs = old.refs - 1
    if old.refs <= 0 then s.ctors[s.ctor_ids[old.code]], s.ctor_ids[old.code] = nil, nil end
  end
  for _, act in pairs(entry.acts) do
    if act.boot ~= nil then act.stale = true end
  end
  touch(s, c.vid)
  return true
end

-- vactive vid key boot t e l -> true when the pending activation placed on process boot is now
-- the actor (t, e, l) there
function V.vactive(s, c)
  local entry = s.vids[c.vid]
  local act = entry and entry.acts[c.key]
  if not act or act.state ~= "pending" or act.boot ~= c.boot then return false end
  act.state, act.t, act.e, act.l, act.handoff = "active", c.t, c.e, c.l, nil
  touch(s, c.vid)
  return true
end

-- vcondemn boot -> true: the process with that boot id may host no activation any more (no
-- leader extends its lease again; its activations are re-placed once its lease ran out)
function V.vcondemn(s, c)
  if type(c.boot) ~= "string" then return false end
  s.condemned[c.boot] = true
  return true
end

-- vsleep vid key boot t e l -> true when that activation (active, of that process) went away
-- for idleness: the name keeps its entry (constructor, arguments, saved state) with the
-- activation `idle` (no node) until a call wakes it (vwake). A name with reminders stays.
function V.vsleep(s, c)
  local entry = s.vids[c.vid]
  local act = entry and entry.acts[c.key]
  if not act or act.state ~= "active" or act.boot ~= c.boot or act.t ~= c.t or act.e ~= c.e or act.l ~= c.l
     or entry.reminders then
    return false
  end
  entry.acts[c.key] = V.IDLE
  touch(s, c.vid)
  return true
end

-- vwake vid node boot -> true when the name's idle activation now waits for `node` (process
-- boot) to create it; false when it was not idle (another call woke it first)
function V.vwake(s, c)
  local entry = s.vids[c.vid]
  if not entry then return false end
  for key, act in pairs(entry.acts) do
    if act.state == "idle" then
      entry.acts[key] = { key = key, node = c.node, boot = c.boot, state = "pending", placed = true }
      touch(s, c.vid)
      return true
    end
  end
  return false
end

V.MAX_REMINDERS = 1000        -- per name

-- vremind vid name [spec] [rev] -> true when the reminder `name` of vid was set to spec ({ every
-- =, at =, method =, data = }; it gets a revision number `rev`) or, without spec, removed (only
-- if its revision is `rev`, when given: the removal of a one-shot that fired never removes a
-- newer one); false when there was nothing to remove; "no_name" (no such name, or multi_actor),
-- "too_many".
function V.vremind(s, c)
  local entry = s.vids[c.vid]
  if not entry or entry.multi or type(c.name) ~= "string" then return "no_name" end
  local rs = entry.reminders
  if c.spec == nil then
    local old = rs and rs[c.name]
    if not old or (c.rev ~= nil and old.rev ~= c.rev) then return false end
    rs[c.name] = nil
    if next(rs) == nil then entry.reminders = nil end
  else
    if type(c.spec) ~= "table" then return false end
    rs = rs or {}
    if rs[c.name] == nil then
      local n = 0
      for _ in pairs(rs) do n = n + 1 end
      if n >= V.MAX_REMINDERS then return "too_many" end
    end
    entry.reminders = rs
    entry.rseq = (entry.rseq or 0) + 1
    c.spec.rev = entry.rseq
    rs[c.name] = c.spec
  end
  touch(s, c.vid)
  return true
end

-- One save: true when applied (or superseded by a later save of the same activation, already
-- applied: saves of one activation never go backwards), else why it was refused: "gone" (the
-- name was unregistered), "moved" (the name is not placed on that activation now: its process
-- was condemned, or it moved), "too_large", "bad".
local function save_one(s, it)
  if type(it) ~= "table" or type(it.data) ~= "string" or type(it.seq) ~= "number" then return "bad" end
  local entry = s.vids[it.vid]
  if not entry then return "gone" end
  if not entry.persist then return "bad" end
  local act = entry.acts[it.key]
  if not act or act.boot ~= it.boot or act.state ~= "active" or act.t ~= it.t or act.e ~= it.e or act.l ~= it.l
     or s.condemned[it.boot] then
    return "moved"
  end
  if #it.data > V.MAX_STATE then return "too_large" end
  if act.saved_seq and it.seq <= act.saved_seq then return true end
  act.saved_seq = it.seq
  entry.saved = it.data
  return true
end

-- vsaves items -> a list of results, one per item, applied in order (one Raft entry carries
-- the saves a node batched). item: { vid, key, boot, t, e, l (the activation), seq (its
-- saves' order), data (the encoded state) }. A save changes no name: nothing is touched.
function V.vsaves(s, c)
  local out = {}
  if type(c.items) ~= "table" then return out end
  for i, it in ipairs(c.items) do out[i] = save_one(s, it) end
  return out
end

return V
