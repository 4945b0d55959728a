-- luact.timer_heap: a binary min-heap of deadlines (pure: it never reads a clock). Entries are
-- tables with `at` (seconds); each knows its position (`pos`), so `remove` is O(log n) and a
-- cancelled timer does not linger until its deadline.
local timer_heap = {}
local Heap = {}
Heap.__index = Heap

function timer_heap.new()
  return setmetatable({ n = 0, seq = 0 }, Heap)
end

local function before(a, b)
  if a.at ~= b.at then return a.at < b.at end
  return a.seq < b.seq      -- equal deadlines fire in insertion order
end

local function up(h, i)
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

local function down(h, i)
  local n = h.n
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
  self[n] = entry
  up(self, n)
  return entry
end

-- Removes `entry` (pushed earlier, not popped yet); returns true if it was in the heap.
function Heap:remove(entry)
  local i = entry.pos
  if i == nil or self[i] ~= entry then return false end
  local n = self.n
  local last = self[n]
  self[n] = nil
  self.n = n - 1
  entry.pos = 0
  if i < n then
    self[i] = last
    last.pos = i
    if i > 1 and before(last, self[(i - i % 2) / 2]) then up(self, i) else down(self, i) end
  end
  return true
end

function Heap:pop()
  if self.n == 0 then return nil end
  local top = self[1]
  self:remove(top)
  return top
end

function Heap:peek()
  return self[1]
end

-- The earliest deadline, or nil.
function Heap:next_deadline()
  local top = self[1]
  return top and top.at or nil
end

-- Pops the next entry due at `now`, or nil.
function Heap:pop_due(now)
  local top = self[1]
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
