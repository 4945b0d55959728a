local timer_heap = require "luact.timer_heap"

describe("luact.timer_heap", function()
  it("pops entries in deadline order, ties in insertion order", function()
    local h = timer_heap.new()
    local order = {}
    for i, at in ipairs { 5, 1, 3, 3, 2, 9, 0.5 } do h:push({ at = at, id = i }) end
    while true do
      local e = h:pop_due(100)
      if not e then break end
      order[#order + 1] = e.id
    end
    assert.same({ 7, 2, 5, 3, 4, 1, 6 }, order)
  end)

  it("removes an entry from anywhere and reports the next deadline", function()
    local h = timer_heap.new()
    local a = h:push({ at = 1 })
    local b = h:push({ at = 2 })
    local c = h:push({ at = 3 })
    assert.is_true(h:remove(a))
    assert.is_false(h:remove(a))
    assert.equal(2, h:next_deadline())
    assert.is_nil(h:pop_due(1.5))
    assert.equal(b, h:pop_due(2))
    assert.is_true(h:remove(c))
    assert.is_nil(h:next_deadline())
    assert.equal(0, h:size())
  end)

  it("stays ordered under many random operations", function()
    local h = timer_heap.new()
    local seed = 12345
    local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 end
    local entries = {}
    for i = 1, 5000 do entries[i] = h:push({ at = rnd() * 1000 }) end
    for i = 1, 5000, 3 do assert.is_true(h:remove(entries[i])) end   -- remove a third
    local last, popped = -1, 0
    while h:size() > 0 do
      local e = h:pop()
      assert.is_true(e.at >= last)
      last = e.at
      popped = popped + 1
    end
    assert.equal(5000 - 1667, popped)
  end)
end)
