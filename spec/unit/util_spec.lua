local util = require "luact.util"
local clock = require "luact.clock"

describe("luact.util", function()
  it("formats like sprintf", function()
    assert.equal("x=  42 y=ab", util.sprintf("x=%4d y=%s", 42, "ab"))
  end)

  it("sleeps the whole thread", function()
    local t0 = clock.get()
    util.sleep(0.03)
    assert.is_true(clock.get() - t0 >= 0.03)
    assert.has_error(function() util.sleep(-1) end,
      "bad 'sec' argument to util.sleep (non-negative number expected, got -1)")
  end)

  it("knows the process id and the CPU count", function()
    local f = assert(io.open("/proc/self/stat"))
    local pid = tonumber(f:read("*l"):match("^(%d+)"))
    f:close()
    assert.equal(pid, util.getpid())
    assert.is_true(util.n_cpu() >= 1)
  end)
end)
