-- luact.timer_heap: a binary min-heap of deadlines (pure: it never reads a clock). Entries are
-- tables with `at` (seconds); each knows its position (`pos`), so `remove` is O(log n) and a
-- cancelled timer does not linger until its deadline.
local table_new = require "table.new"

local timer_heap = {}
local Heap = {}
Heap.__index = Heap

-- The entries live in an array table of their own (`a`, room for PREALLOC from the start), not
-- in the heap table beside `n` and `seq`: there, an integer key past the array part lands in the
-- hash part next to string keys, and traces abort on it ("NYI: mixed sparse/dense table" in
-- `remove`, which gets the clock's settle loop blacklisted).
local PREALLOC = 256

function timer_heap.new()
  return setmetatable({ n = 0, seq = 0, a = table_new(PREALLOC, 0) }, Heap)
end

local function before(a, b)
  if a.at ~= b.at then return a.at < b.at end
  return a.seq < b.seq      -- equal deadlines fire in insertion order
end

local function up(h, i)      -- h: the entry array
  local e = h[i]
  while i > 1 do
    local p = (i - i % 2) / 2
    local pe = h[p]
    if not before(e, pe) then break end
    h[i] = pe
    pe.pos = i
    i = p
  end
  h[i] = e
  e.pos = i
end

local function down(h, n, i)   -- h: the entry array of n entries
  local e = h[i]
  while true do
    local c = i * 2
    if c > n then break end
    if c + 1 <= n and before(h[c + 1], h[c]) then c = c + 1 end
    local ce = h[c]
    if not before(ce, e) then break end
    h[i] = ce
    ce.pos = i
    i = c
  end
  h[i] = e
  e.pos = i
end

function Heap:push(entry)
  local n = self.n + 1
  self.n = n
  self.seq = self.seq + 1
  entry.seq = self.seq
  local a = self.a
  a[n] = entry
  up(a, n)
  return entry
end

-- Removes `entry` (pushed earlier, not popped yet); returns true if it was in the heap.
function Heap:remove(entry)
  local i = entry.pos
  local a = self.a
  if i == nil or i < 1 or a[i] ~= entry then return false end
  local n = self.n
  local last = a[n]
  a[n] = nil
  self.n = n - 1
  entry.pos = 0
  if i < n then
    a[i] = last
    last.pos = i
    if i > 1 and before(last, a[(i - i % 2) / 2]) then up(a, i) else down(a, n - 1, i) end
  end
  return true
end

function Heap:pop()
  if self.n == 0 then return nil end
  local top = self.a[1]
  self:remove(top)
  return top
end

-- The earliest deadline, or nil.
function Heap:next_deadline()
  local top = self.a[1]
  return top and top.at or nil
end

-- True when the earliest entry is due at `now`.
function Heap:due(now)
  local top = self.a[1]
  return top ~= nil and top.at <= now
end

-- Pops the next entry due at `now`, or nil.
function Heap:pop_due(now)
  local top = self.a[1]
  if top and top.at <= now then
    self:remove(top)
    return top
  end
  return nil
end

function Heap:size()
  return self.n
end

return timer_heap
