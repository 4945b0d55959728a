local helpers = require "helpers.runtime"
local logger = require "luact.logger"

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

describe("luact.logger", function()
  local path
  before_each(function()
    path = os.tmpname()
    assert(logger.redirect(path))
    logger.level("debug")
  end)
  after_each(function()
    logger.redirect()
    logger.level("info")
    os.remove(path)
  end)

  it("writes levelled lines without colours to a file", function()
    logger.info("hello", 42, nil)
    logger.error("bad thing")
    local text = read(path)
    assert.truthy(text:find("INFO   %[t%-%] hello 42 nil\n"))
    assert.truthy(text:find("ERROR  %[t%-%] bad thing\n"))
    assert.falsy(text:find("\27", 1, true))
  end)

  it("writes one JSON object per line with log_format = 'json', fields included", function()
    local r = helpers.start({ n_core = 2, log_format = "json" }, function()
      local luact = require "luact"
      if luact.thread_id == 2 then
        luact.logger.warn('say "hi"\n', 7, { user = "ann", n = 3, ok = true })
        return
      end
      luact.clock.sleep(0.1)
      luact.stop(luact.logger.format())
    end)
    logger.format("text")
    assert.equal("json", r)
    local text = read(path)
    local line = text:match("[^\n]*say[^\n]*")
    assert.truthy(line, text)
    assert.truthy(line:find('^{"time":"%d+%-%d+%-%d+T%d+:%d+:%d+%.%d+Z","level":"warn","thread":2,"node":null,'), line)
    assert.truthy(line:find('"message":"say \\"hi\\"\\n 7","fields":{"n":3,"ok":true,"user":"ann"}}$'), line)
    local ok, e = pcall(helpers.start, { log_format = "xml" }, function() end)
    assert.is_false(ok)
    assert.truthy(tostring(e):find("bad 'log_format' option to luact.start ('text' or 'json' expected, got xml)", 1, true))
  end)

  it("starts at level info in a fresh process", function()
    local p = assert(io.popen([[luajit -e 'package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path;
      package.cpath = "./target/lua/?.so;" .. package.cpath; io.write(require("luact").logger.level())' 2>&1]]))
    local out = p:read("*a")
    p:close()
    assert.equal("info", out)
  end)

  it("drops lines below the level", function()
    logger.level("warn")
    assert.equal("warn", logger.level())
    logger.info("hidden")
    logger.warn("shown")
    local text = read(path)
    assert.falsy(text:find("hidden", 1, true))
    assert.truthy(text:find("shown", 1, true))
    assert.has_error(function() logger.level("loud") end,
      "bad 'level' argument to logger.level (one of debug, info, notice, warn, error, fatal expected, got loud)")
  end)

  it("never interleaves lines from four threads and tags each with its thread", function()
    -- (stall_warn off: on a busy machine 500 lines can hold a thread past 100 ms, and the
    -- watchdog's warning would be a line of another shape in the same log)
    helpers.start({ n_core = 4, stall_warn = false }, function()
      local luact = require "luact"
      for i = 1, 500 do luact.logger.info(("line %d %s"):format(i, ("x"):rep(300))) end
      if luact.thread_id == 1 then luact.clock.sleep(0.05); luact.stop() end
    end)
    local per_thread, n = {}, 0
    for line in read(path):gmatch("[^\n]+") do
      local tid, i, xs = line:match("INFO   %[t(%d)%] line (%d+) (x+)$")
      assert.truthy(tid, line)
      assert.equal(300, #xs)
      per_thread[tid] = (per_thread[tid] or 0) + 1
      n = n + 1
    end
    assert.equal(2000, n)
    assert.same({ ["1"] = 500, ["2"] = 500, ["3"] = 500, ["4"] = 500 }, per_thread)
  end)
end)
