-- luact.timer_heap: a binary min-heap of deadlines (pure: it never reads a clock). Entries are
-- tables with `at` (seconds); removal is lazy (`entry.cancelled = true`).
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

function Heap:push(entry)
  local n = self.n + 1
  self.n = n
  self.seq = self.seq + 1
  entry.seq = self.seq
  local i = n
  while i > 1 do
    local p = math.floor(i / 2)
    if before(entry, self[p]) then
      self[i] = self[p]
      i = p
    else
      break
    end
  end
  self[i] = entry
  return entry
end

function Heap:pop()
  local n = self.n
  if n == 0 then return nil end
  local top = self[1]
  local last = self[n]
  self[n] = nil
  n = n - 1
  self.n = n
  if n > 0 then
    local i = 1
    while true do
      local l = i * 2
      if l > n then break end
      local c = l
      if l + 1 <= n and before(self[l + 1], self[l]) then c = l + 1 end
      if before(self[c], last) then
        self[i] = self[c]
        i = c
      else
        break
      end
    end
    self[i] = last
  end
  return top
end

-- The earliest live deadline, or nil (drops cancelled entries on the way).
function Heap:next_deadline()
  while self.n > 0 and self[1].cancelled do self:pop() end
  return self.n > 0 and self[1].at or nil
end

-- Pops the next live entry due at `now`, or nil.
function Heap:pop_due(now)
  while self.n > 0 do
    local top = self[1]
    if top.cancelled then
      self:pop()
    elseif top.at <= now then
      return self:pop()
    else
      return nil
    end
  end
  return nil
end

function Heap:size()
  return self.n
end

return timer_heap
