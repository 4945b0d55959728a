local helpers = require "helpers.runtime"

describe("luact.scheduler tasks", function()
  it("keeps running queued tasks after one raises, and reports the error", function()
    local path = os.tmpname()
    local ran = helpers.start({ n_core = 1, log = path }, function()
      local luact = require "luact"
      local scheduler = require "luact.scheduler"
      luact.logger.redirect(luact.opts.log)
      local ran = {}
      scheduler.task(function() ran[#ran + 1] = 1 end)
      scheduler.task(function() error("task two broke") end)
      scheduler.task(function() ran[#ran + 1] = 3 end)
      -- a task that waits, then raises: reported as well
      scheduler.task(function() luact.clock.sleep(0.01); error("task four broke after waiting") end)
      scheduler.task(function(a, b, c) ran[#ran + 1] = select("#", a, b, c) end, nil, nil, nil)
      luact.clock.sleep(0.05)
      luact.logger.redirect()
      luact.stop(ran)
    end)
    local f = assert(io.open(path))
    local log = f:read("*a")
    f:close()
    os.remove(path)
    assert.same({ 1, 3, 3 }, ran)
    assert.truthy(log:find("task failed: .*task two broke"), log)
    assert.truthy(log:find("task failed: .*task four broke after waiting"), log)
  end)
end)
