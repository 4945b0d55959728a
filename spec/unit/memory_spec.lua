local memory = require "luact.memory"
local ffi = require "ffi"

describe("luact.memory", function()
  it("allocates, fills, compares, moves and frees", function()
    local before = memory.live_allocations()
    local p = ffi.cast("uint8_t*", memory.alloc(16))
    local q = ffi.cast("uint8_t*", memory.alloc(16))
    memory.fill(p, 16, 7)
    memory.fill(q, 16, 7)
    assert.is_true(memory.cmp(p, q, 16))
    q[15] = 8
    assert.is_false(memory.cmp(p, q, 16))
    assert.equal(before + 2, memory.live_allocations())
    memory.free(p); memory.free(q)
    assert.equal(before, memory.live_allocations())
  end)

  it("moves overlapping regions correctly", function()
    local p = memory.alloc_typed("uint8_t", 8)
    for i = 0, 7 do p[i] = i end
    memory.move(p + 2, p, 6)
    local got = {}
    for i = 0, 7 do got[i + 1] = p[i] end
    assert.same({ 0, 1, 0, 1, 2, 3, 4, 5 }, got)
    memory.free(p)
  end)

  it("allocates typed arrays and grows them", function()
    local p = memory.alloc_typed("int32_t", 4)
    for i = 0, 3 do p[i] = i * 10 end
    p = memory.realloc_typed("int32_t", p, 1000)
    p[999] = 42
    assert.equal(30, p[3])
    assert.equal(42, p[999])
    memory.free(p)
  end)

  it("frees managed memory when the GC collects it", function()
    collectgarbage(); collectgarbage()
    local before = memory.live_allocations()
    do
      for _ = 1, 100 do memory.managed_alloc_typed("double", 16) end
    end
    collectgarbage(); collectgarbage()
    assert.equal(before, memory.live_allocations())
  end)

  it("copies strings with strdup", function()
    local p = memory.strdup("hello")
    assert.equal("hello", ffi.string(p))
    memory.free(p)
  end)

  it("refuses bad sizes", function()
    assert.has_error(function() memory.alloc(-1) end,
      "bad 'sz' argument to memory.alloc (non-negative integer expected, got -1)")
    assert.has_error(function() memory.alloc("x") end,
      "bad 'sz' argument to memory.alloc (non-negative integer expected, got x)")
    assert.has_error(function() memory.strdup(nil) end,
      "bad 's' argument to memory.strdup (string expected, got nil)")
  end)
end)
