local waiting = require "luact.actor.waiting"

-- A waiter as call.await makes it: its corr field names the call it waits for.
local function open(tag)
  local corr = waiting.new_corr()
  local w = { corr = corr, tag = tag }
  waiting.add(corr, w)
  return w
end

describe("luact.actor.waiting", function()
  before_each(function() waiting.reset() end)

  it("hands each reply to its own call, once", function()
    local ws = {}
    for i = 1, 100 do ws[i] = open(i) end
    for i = 100, 1, -1 do
      assert.equal(ws[i], waiting.take(ws[i].corr))
      assert.is_nil(waiting.take(ws[i].corr), "a second reply to the same call finds nothing")
    end
  end)

  it("keeps a call that outlives 1024 newer ones, and the newer ones (same slot)", function()
    local old = open("old")
    local newer = {}
    for i = 1, 3000 do
      newer[i] = open(i)
      if i % 2 == 0 then assert.equal(newer[i], waiting.take(newer[i].corr)) end
    end
    for i = 1, 3000, 2 do assert.equal(newer[i], waiting.take(newer[i].corr)) end
    assert.equal(old, waiting.take(old.corr))
  end)

  it("does not give a late reply to the call that reuses its slot", function()
    local first = open("first")
    assert.equal(first, waiting.take(first.corr))   -- it ended (say, timed out)
    local later
    for _ = 1, 1024 do later = open("later") end      -- the slot is used again
    assert.is_nil(waiting.take(first.corr))
    assert.equal(later, waiting.take(later.corr))
  end)

  it("ignores corrs that name no call (they come from the wire)", function()
    open("x")
    for _, bad in ipairs { 0, -1, 1.5, 0 / 0, 1 / 0, "1", {}, true } do
      assert.is_nil(waiting.take(bad))
    end
  end)

  it("take_if removes only the given waiter of that call", function()
    local w = open("w")
    assert.is_false(waiting.take_if(w.corr, {}))
    assert.is_true(waiting.take_if(w.corr, w))
    assert.is_false(waiting.take_if(w.corr, w))
  end)

  it("remove_if takes the matching waiters from the slots and the overflow", function()
    local ws = {}
    for i = 1, 2100 do
      local w = open(i)
      w.machine = i % 3
      ws[i] = w
    end
    local lost = waiting.remove_if(function(w) return w.machine == 1 end)
    assert.equal(700, #lost)
    for i = 1, 2100 do
      local got = waiting.take(ws[i].corr)
      if i % 3 == 1 then assert.is_nil(got) else assert.equal(ws[i], got) end
    end
  end)
end)
