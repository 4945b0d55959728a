-- luact.cluster.raft.log: the in-memory Raft log of one node: entries after the last snapshot,
-- indexed by Raft index, plus the index and term of that snapshot. Entries are plain tables
-- { index =, term =, data = string|nil, conf = { voters = {...} }|nil } and are never mutated
-- after they are created, so storage and messages may share them.

local Log = {}
Log.__index = Log

local function new(snap_index, snap_term)
  return setmetatable({ offset = snap_index or 0, snap_term = snap_term or 0, ents = {} }, Log)
end

function Log:last_index() return self.offset + #self.ents end
function Log:first_index() return self.offset + 1 end

function Log:last_term()
  local n = #self.ents
  if n == 0 then return self.snap_term end
  return self.ents[n].term
end

-- term of entry i, or nil if i is compacted away or beyond the end
function Log:term(i)
  local off = self.offset
  if i == off then return self.snap_term end
  if i < off then return nil end
  local e = self.ents[i - off]
  return e and e.term
end

function Log:entry(i)
  return self.ents[i - self.offset]
end

function Log:append(e)
  local ents = self.ents
  if e.index ~= self.offset + #ents + 1 then
    error(("raft log: append index %d after %d"):format(e.index, self.offset + #ents), 2)
  end
  ents[#ents + 1] = e
end

-- drop every entry after index i
function Log:truncate_after(i)
  local ents = self.ents
  for k = #ents, i - self.offset + 1, -1 do ents[k] = nil end
end

-- entries lo..hi (inclusive) as a new list; lo must be > offset
function Log:slice(lo, hi)
  local out, ents, off = {}, self.ents, self.offset
  for i = lo, hi do out[#out + 1] = ents[i - off] end
  return out
end

-- forget entries up to and including i (i <= last_index), keeping the term of i
function Log:compact(i)
  if i <= self.offset then return end
  local t = self:term(i)
  local ents, off = self.ents, self.offset
  local keep = {}
  for k = i - off + 1, #ents do keep[#keep + 1] = ents[k] end
  self.ents, self.offset, self.snap_term = keep, i, t
end

-- replace the whole log by a snapshot point
function Log:restore(index, term)
  self.ents, self.offset, self.snap_term = {}, index, term
end

-- the largest j <= index whose term is <= term (the snapshot point at worst): where a
-- follower's log and a leader's log can possibly agree (etcd's findConflictByTerm)
function Log:find_conflict_by_term(index, term)
  local last = self:last_index()
  if index > last then index = last end
  local off = self.offset
  while index > off do
    local e = self.ents[index - off]
    if e.term <= term then return index end
    index = index - 1
  end
  return off
end

-- is a log ending at (last_index, last_term) at least as up to date as this one?
function Log:is_up_to_date(last_index, last_term)
  local lt = self:last_term()
  return last_term > lt or (last_term == lt and last_index >= self:last_index())
end

return { new = new }
