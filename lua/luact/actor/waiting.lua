-- luact.actor.waiting: the calls of this VM that wait for a reply, by correlation id (corr).
-- A corr is a number that never repeats in a VM (a counter), so a late reply cannot be taken
-- for a newer call. A waiter lives in the array slot `corr % SLOTS + 1`: finding it is an array
-- index, where a table keyed by the corr itself would get a new key on every call (a hash
-- insert, and a rehash every few dozen calls: many times the cost). A call whose slot
-- is still held by an older call that has not ended goes to a small hash table instead.
-- Every waiter is a table whose `corr` field is its call's corr while it waits.
local waiting = {}

local SLOTS = 1024
local slots = {}            -- slot -> waiter, or false
local overflow = {}         -- corr -> waiter, for calls whose slot was taken
local last_corr = 0

local function clear()
  for i = 1, SLOTS do slots[i] = false end
  overflow = {}
end
clear()

-- A corr for a new call (register its waiter with `add` before the reply can arrive).
function waiting.new_corr()
  last_corr = last_corr + 1
  return last_corr
end

-- Registers w (w.corr == corr) as the waiter of corr.
function waiting.add(corr, w)
  local s = corr % SLOTS + 1
  if slots[s] then overflow[corr] = w else slots[s] = w end
end

-- The waiter of corr, now removed; nil when there is none (the call ended already, or corr
-- came from the wire and names no call: any value is safe here).
function waiting.take(corr)
  if type(corr) ~= "number" then return nil end
  local s = corr % SLOTS + 1
  local w = slots[s]
  if w and w.corr == corr then
    slots[s] = false
    return w
  end
  if corr ~= corr then return nil end      -- NaN: no table key
  w = overflow[corr]
  if w then overflow[corr] = nil end
  return w
end

-- Removes w if it still waits for corr; true when it did.
function waiting.take_if(corr, w)
  local s = corr % SLOTS + 1
  if slots[s] == w and w.corr == corr then
    slots[s] = false
    return true
  end
  if overflow[corr] == w then
    overflow[corr] = nil
    return true
  end
  return false
end

-- Removes every waiter for which drop(w) is true; returns them as a list.
function waiting.remove_if(drop)
  local out = {}
  for s = 1, SLOTS do
    local w = slots[s]
    if w and drop(w) then
      slots[s] = false
      out[#out + 1] = w
    end
  end
  for corr, w in pairs(overflow) do
    if drop(w) then
      overflow[corr] = nil
      out[#out + 1] = w
    end
  end
  return out
end

-- Forgets every waiter (between two runs of luact.start in one VM).
waiting.reset = clear

return waiting
