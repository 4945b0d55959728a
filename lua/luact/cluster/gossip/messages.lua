-- luact.cluster.gossip.messages: owns the wire shape of gossip messages. Checks every field of
-- an incoming message before the node looks at it (so a malformed or foreign message is
-- dropped whole and never half-applied) and copies what the node keeps, so no table of a
-- message is ever shared with the node's state. Messages are plain tables of strings, numbers,
-- booleans and nested tables:
--
--   { to =, from =, type = "ping"|"ack"|"nack"|"ping_req"|"gossip"|"sync", ...,
--     updates = { update, ... } }                     -- piggybacked updates, optional
--   ping     { seq }            ack { seq }            nack { seq }
--   ping_req { seq, target }    gossip {}              sync { state = { record, ... }, reply = bool }
--   update:  { kind = "alive"|"suspect"|"dead"|"left", id =, inc =, from =, meta = }
--   record:  { id =, state = "alive"|"suspect"|"dead"|"left", inc =, meta = }

local type, next, getmetatable, floor = type, next, getmetatable, math.floor

local M = {}

M.MAX_UPDATES = 256       -- piggybacked updates in one message
M.MAX_RECORDS = 65536     -- members in one sync message
M.MAX_ID = 256            -- bytes in a member id
M.MAX_META_KEYS = 64

local KINDS = { alive = true, suspect = true, dead = true, left = true }
local TYPES = { ping = true, ack = true, nack = true, ping_req = true, gossip = true,
                sync = true }
M.TYPES = TYPES

local function plain(t)
  return type(t) == "table" and getmetatable(t) == nil
end

local function is_id(v)
  return type(v) == "string" and #v > 0 and #v <= M.MAX_ID
end
M.is_id = is_id

local function is_count(v)
  return type(v) == "number" and v >= 0 and v <= 2 ^ 53 and v == floor(v)
end
M.is_count = is_count

-- size of a metadata map in bytes (approximate for numbers), or nil if it is not a valid one:
-- a plain table of at most MAX_META_KEYS string keys with string, number or boolean values
function M.meta_size(m)
  if not plain(m) then return nil end
  local size, keys = 0, 0
  for k, v in next, m do
    if type(k) ~= "string" or #k == 0 or #k > M.MAX_ID then return nil end
    keys = keys + 1
    if keys > M.MAX_META_KEYS then return nil end
    local tv = type(v)
    if tv == "string" then
      size = size + #k + #v
    elseif tv == "number" then
      if v ~= v or v == 1 / 0 or v == -1 / 0 then return nil end
      size = size + #k + 8
    elseif tv == "boolean" then
      size = size + #k + 1
    else
      return nil
    end
  end
  return size
end

function M.copy_meta(m)
  if m == nil then return nil end
  local c = {}
  for k, v in next, m do c[k] = v end
  return c
end

function M.meta_equal(a, b)
  if a == nil or b == nil then return a == b end
  for k, v in next, a do
    if b[k] ~= v then return false end
  end
  for k in next, b do
    if a[k] == nil then return false end
  end
  return true
end

local function valid_meta(m, max_bytes)
  if m == nil then return true end
  local size = M.meta_size(m)
  return size ~= nil and size <= max_bytes
end

local function valid_update(u, max_meta)
  if not plain(u) then return false end
  local kind = u.kind
  if not KINDS[kind] or not is_id(u.id) or not is_count(u.inc) then return false end
  if (kind == "suspect" or kind == "dead") and not is_id(u.from) then return false end
  if u.from ~= nil and not is_id(u.from) then return false end
  if kind == "alive" then
    if not valid_meta(u.meta, max_meta) then return false end
  elseif u.meta ~= nil then
    return false
  end
  return true
end

local function valid_list(t, max, each, arg)
  if not plain(t) then return false end
  local n = #t
  if n > max then return false end
  for i = 1, n do
    if not each(t[i], arg) then return false end
  end
  -- no keys besides 1..n
  local count = 0
  for _ in next, t do
    count = count + 1
    if count > n then return false end
  end
  return true
end

local function valid_record(r, max_meta)
  if not plain(r) then return false end
  if not KINDS[r.state] or not is_id(r.id) or not is_count(r.inc) then return false end
  if r.state == "alive" or r.state == "suspect" then
    return valid_meta(r.meta, max_meta)
  end
  return r.meta == nil
end

-- nil if msg is a well-formed message to `self_id`, else a short reason
function M.check(msg, self_id, max_meta)
  if not plain(msg) then return "not a plain table" end
  if msg.to ~= self_id then return "not addressed to this node" end
  local from = msg.from
  if not is_id(from) or from == self_id then return "bad sender" end
  local t = msg.type
  if not TYPES[t] then return "unknown type" end
  if msg.updates ~= nil and not valid_list(msg.updates, M.MAX_UPDATES, valid_update, max_meta) then
    return "bad piggybacked updates"
  end
  if t == "ping" or t == "ack" or t == "nack" then
    if not is_count(msg.seq) then return "bad seq" end
  elseif t == "ping_req" then
    if not is_count(msg.seq) then return "bad seq" end
    if not is_id(msg.target) or msg.target == from then return "bad target" end
  elseif t == "sync" then
    if msg.reply ~= nil and type(msg.reply) ~= "boolean" then return "bad reply flag" end
    if not valid_list(msg.state, M.MAX_RECORDS, valid_record, max_meta) then
      return "bad state"
    end
  end
  return nil
end

-- fresh copies for the wire
function M.copy_update(u)
  return { kind = u.kind, id = u.id, inc = u.inc, from = u.from, meta = M.copy_meta(u.meta) }
end

return M
