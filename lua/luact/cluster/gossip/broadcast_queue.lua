-- luact.cluster.gossip.broadcast_queue: owns the membership updates waiting to be piggybacked
-- on outgoing messages. One entry per key (a member id): a newer update about the same member
-- replaces the older one. Each entry is handed out at most `limit` times, least-sent first and,
-- among equals, newest first (memberlist's TransmitLimitedQueue). Pure data, no randomness.

local sort = table.sort

local Queue = {}
Queue.__index = Queue

local M = {}

function M.new()
  return setmetatable({ items = {}, seq = 0 }, Queue)
end

local function find(items, key)
  for i = 1, #items do
    if items[i].key == key then return i end
  end
  return nil
end

-- queue `update` under `key`, replacing whatever was queued for that key
function Queue:push(key, update)
  local items = self.items
  local i = find(items, key)
  if i then table.remove(items, i) end
  self.seq = self.seq + 1
  items[#items + 1] = { key = key, update = update, transmits = 0, seq = self.seq }
end

function Queue:has(key) return find(self.items, key) ~= nil end

function Queue:remove(key)
  local i = find(self.items, key)
  if i then table.remove(self.items, i) end
end

function Queue:len() return #self.items end

local function before(a, b)
  if a.transmits ~= b.transmits then return a.transmits < b.transmits end
  return a.seq > b.seq
end

-- take up to `max` updates for one message (appended to `out`, which is returned). Every
-- update taken counts one transmission; an update sent `limit` times leaves the queue.
-- `skip` names a key not to take (the caller sends its own version of it).
function Queue:take(max, limit, out, skip)
  out = out or {}
  local items = self.items
  local n = #items
  if n == 0 or max <= 0 then return out end
  sort(items, before)
  local taken, spent = 0, false
  for i = 1, n do
    if taken >= max then break end
    local it = items[i]
    if it.key ~= skip then
      out[#out + 1] = it.update
      it.transmits = it.transmits + 1
      if it.transmits >= limit then spent = true end
      taken = taken + 1
    end
  end
  if spent then
    local keep = {}
    for i = 1, n do
      if items[i].transmits < limit then keep[#keep + 1] = items[i] end
    end
    self.items = keep
  end
  return out
end

-- how many times each key may be sent in a cluster of n members
function M.limit(mult, n)
  if n < 1 then n = 1 end
  local scale = math.ceil(math.log10(n + 1))
  if scale < 1 then scale = 1 end
  return mult * scale
end

return M
