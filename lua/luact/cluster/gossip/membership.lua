-- luact.cluster.gossip.membership: owns the member list of one node. Records are kept in an
-- insertion-ordered array next to the id -> record map, so every decision iterates in a fixed
-- order (never `pairs`, whose order for string keys changes between processes). Also owns the
-- randomly permuted round-robin order of probes and gossip targets and the seeded choice of k random members. Randomness comes
-- only from the `random(lo, hi)` function passed in.
--
-- A record: { id =, state = "alive"|"suspect"|"dead"|"left", inc =, meta =, since =, timer = }

local List = {}
List.__index = List

local M = {}

function M.new(self_id)
  return setmetatable({
    self_id = self_id,
    list = {},       -- records, insertion order
    by_id = {},      -- id -> record
    order = {},      -- probe order: ids in a random permutation
    pos = 0,         -- last probed index in `order`
    gpos = 0,        -- last gossip target's index in `order`
    live = 0,        -- records in state alive or suspect (self included)
    suspects = 0,    -- records in state suspect
  }, List)
end

local function is_live(state) return state == "alive" or state == "suspect" end
M.is_live = is_live

function List:get(id) return self.by_id[id] end

function List:records() return self.list end

-- live members, self included
function List:live_count() return self.live end

function List:suspect_count() return self.suspects end

function List:add(rec, random)
  self.list[#self.list + 1] = rec
  self.by_id[rec.id] = rec
  if is_live(rec.state) then self.live = self.live + 1 end
  if rec.state == "suspect" then self.suspects = self.suspects + 1 end
  if rec.id ~= self.self_id then
    -- a random place in the probe order, so a newcomer is not always probed last
    local order = self.order
    local at = random(1, #order + 1)
    table.insert(order, at, rec.id)
    if at <= self.pos then self.pos = self.pos + 1 end
    if at <= self.gpos then self.gpos = self.gpos + 1 end
  end
  return rec
end

function List:set_state(rec, state)
  local was, now = is_live(rec.state), is_live(state)
  if was and not now then self.live = self.live - 1 end
  if now and not was then self.live = self.live + 1 end
  if rec.state == "suspect" then self.suspects = self.suspects - 1 end
  if state == "suspect" then self.suspects = self.suspects + 1 end
  rec.state = state
end

-- forget records for which drop(rec) is true (reaping long-dead members)
function List:reap(drop)
  local keep, gone = {}, {}
  for _, rec in ipairs(self.list) do
    if rec.id ~= self.self_id and drop(rec) then
      gone[rec.id] = true
      self.by_id[rec.id] = nil
      if is_live(rec.state) then self.live = self.live - 1 end
      if rec.state == "suspect" then self.suspects = self.suspects - 1 end
    else
      keep[#keep + 1] = rec
    end
  end
  if #keep == #self.list then return 0 end
  local n = #self.list - #keep
  self.list = keep
  local order, pos, gpos = {}, self.pos, self.gpos
  for i, id in ipairs(self.order) do
    if gone[id] then
      if i <= self.pos then pos = pos - 1 end
      if i <= self.gpos then gpos = gpos - 1 end
    else
      order[#order + 1] = id
    end
  end
  self.order, self.pos, self.gpos = order, pos, gpos
  return n
end

-- next member to probe in round-robin order: ok(rec) says whether it may be probed now.
-- Returns the record or nil. The order is a random permutation (every member is inserted at a
-- random place) that is kept from round to round rather than reshuffled: then the gap between
-- two probes of one member by this node is never more than one round, where a reshuffle
-- would allow up to two, and the time until somebody first probes a failed member has a
-- shorter tail.
local function walk(self, cursor, ok)
  local order = self.order
  local n = #order
  for _ = 1, n do
    local i = self[cursor]
    if i >= n then i = 0 end
    i = i + 1
    self[cursor] = i
    local rec = self.by_id[order[i]]
    if rec and ok(rec) then return rec end
  end
  return nil
end

function List:next_probe(ok) return walk(self, "pos", ok) end

-- up to k distinct gossip targets for which ok(rec) is true, walking the same permutation
-- with a cursor of its own: k per round, every member is reached within ceil(n / k) rounds,
-- where k random picks per round would leave some member out for a long while now and then
function List:next_gossip(k, ok)
  local out, seen = {}, {}
  for _ = 1, k do
    local rec = walk(self, "gpos", ok)
    if not rec or seen[rec] then break end
    seen[rec] = true
    out[#out + 1] = rec
  end
  return out
end

-- up to k distinct records, chosen at random among those for which ok(rec) is true
function List:pick(random, k, ok)
  local cand = {}
  for _, rec in ipairs(self.list) do
    if rec.id ~= self.self_id and ok(rec) then cand[#cand + 1] = rec end
  end
  local n = #cand
  if k > n then k = n end
  for i = 1, k do
    local j = random(i, n)
    cand[i], cand[j] = cand[j], cand[i]
  end
  for i = n, k + 1, -1 do cand[i] = nil end
  return cand
end

return M
