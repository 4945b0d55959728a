-- luact.cluster.raft.message: the shape of every Raft message, and the check that a message
-- handed to step() is well formed before any state is touched. Never raises.

local floor, type = math.floor, type

local M = {}

local function is_int(v)
  return type(v) == "number" and v >= 0 and v == floor(v) and v < 2^53
end
M.is_int = is_int

local function is_id(v)
  local t = type(v)
  return (t == "number" and v == v and v ~= math.huge and v ~= -math.huge) or
         (t == "string" and #v > 0)
end
M.is_id = is_id

local function opt_str(v)
  return v == nil or (type(v) == "string" and #v > 0)
end

local function valid_conf(c)
  if type(c) ~= "table" or type(c.voters) ~= "table" then return false end
  local n = #c.voters
  for i = 1, n do if not is_id(c.voters[i]) then return false end end
  return true
end
M.valid_conf = valid_conf

local function valid_entry(e, index, max_term)
  if type(e) ~= "table" or e.index ~= index or not is_int(e.term) or e.term > max_term then
    return false
  end
  if e.data ~= nil and type(e.data) ~= "string" then return false end
  if e.conf ~= nil and (e.data ~= nil or not valid_conf(e.conf)) then return false end
  return true
end

-- a piece of a snapshot (raft/pieces.lua): `bytes` at `offset` of `size`, `done` on the last
local function valid_piece(offset, size, bytes, done)
  return is_int(offset) and is_int(size) and type(bytes) == "string" and type(done) == "boolean" and
         offset + #bytes <= size and done == (offset + #bytes == size)
end
M.valid_piece = valid_piece

local function valid_snapshot(s)
  return type(s) == "table" and is_int(s.index) and s.index > 0 and is_int(s.term) and
         valid_conf(s.conf) and (s.data == nil or type(s.data) == "string")
end

local checks = {
  prevote = function(m) return is_int(m.last_index) and is_int(m.last_term) end,
  vote = function(m)
    return is_int(m.last_index) and is_int(m.last_term) and
           (m.force == nil or type(m.force) == "boolean")
  end,
  prevote_resp = function(m) return type(m.reject) == "boolean" end,
  vote_resp = function(m) return type(m.reject) == "boolean" end,
  append = function(m)
    if not (is_int(m.prev_index) and is_int(m.prev_term) and is_int(m.commit)) then return false end
    local ents = m.entries
    if type(ents) ~= "table" then return false end
    local t = m.prev_term
    for k = 1, #ents do
      local e = ents[k]
      if not valid_entry(e, m.prev_index + k, m.term) or e.term < t then return false end
      t = e.term
    end
    return true
  end,
  append_resp = function(m)
    if type(m.reject) ~= "boolean" then return false end
    if m.reject then
      return is_int(m.index) and is_int(m.hint_index) and
             (m.hint_term == nil or is_int(m.hint_term))
    end
    return is_int(m.index)
  end,
  heartbeat = function(m)
    return is_int(m.commit) and (m.ctx == nil or is_int(m.ctx))
  end,
  heartbeat_resp = function(m) return m.ctx == nil or is_int(m.ctx) end,
  snapshot = function(m)
    return valid_snapshot(m.snapshot) and valid_piece(m.offset, m.size, m.data, m.done)
  end,
  snapshot_resp = function(m) return is_int(m.index) and is_int(m.next) end,
  timeout_now = function() return true end,
  read_index = function(m)
    local t = type(m.ctx)
    return t == "string" or t == "number" or t == "boolean" or t == "table"
  end,
  read_index_resp = function(m)
    local t = type(m.ctx)
    return (t == "string" or t == "number" or t == "boolean" or t == "table") and
           (m.index == nil or is_int(m.index)) and (m.err == nil or type(m.err) == "string")
  end,
}

-- is m a well-formed message for node `id`?
function M.valid(m, id)
  if type(m) ~= "table" or m.to ~= id or not is_id(m.from) or m.from == id then return false end
  if not is_int(m.term) then return false end
  -- identity fields (raft/identity.lua): storage id, cluster id, founding proposal, "caught up"
  if not (opt_str(m.sid) and opt_str(m.cid) and opt_str(m.form) and opt_str(m.ok) and
          opt_str(m.to_sid)) or
     (m.rec ~= nil and m.rec ~= true) then
    return false
  end
  local check = checks[m.type]
  if not check then return false end
  return check(m)
end

return M
