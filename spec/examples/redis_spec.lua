-- The Redis client example (spec/examples/redis.lua) against a real redis-server started for
-- this spec inside the network namespace spec/run makes (unshare -n), on 127.0.0.1.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

local function free_port()
  return tonumber(process.run([[python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"]]))
end

describe("examples.redis (on luact.socket)", function()
  local server, port
  setup(function()
    process.require_netns()
    port = free_port()
    server = process.spawn(("redis-server --bind 127.0.0.1 --port %d --save '' --appendonly no"):format(port))
    process.wait_for(server, "Ready to accept connections", 10)
  end)
  teardown(function()
    process.cleanup(server)
  end)

  it("sets, gets, counts and reports errors and missing keys", function()
    local r = helpers.start({ n_core = 1, timeout = 20, redis_port = port }, function()
      package.path = "./spec/?.lua;" .. package.path
      local luact = require "luact"
      local redis = require "examples.redis"
      local c = assert(redis.connect("tcp://127.0.0.1:" .. luact.opts.redis_port))
      local r = {}
      r[1] = c:call("PING")
      r[2] = c:call("SET", "greeting", "hello\r\nworld")   -- a value with CRLF inside
      r[3] = c:call("GET", "greeting")
      r[4] = c:call("GET", "no such key") == redis.null
      r[5] = c:call("INCRBY", "n", 41)
      r[6] = { c:call("NO_SUCH_COMMAND") }
      r[7] = c:call("DEL", "greeting", "n")
      c:close()
      luact.stop(r)
    end)
    assert.equal("PONG", r[1])
    assert.equal("OK", r[2])
    assert.equal("hello\r\nworld", r[3])
    assert.is_true(r[4])
    assert.equal(41, r[5])
    assert.is_nil(r[6][1])
    assert.matches("^ERR unknown command", r[6][2])
    assert.equal(2, r[7])
  end)

  it("pipelines 500 commands in one write and reads the replies in order", function()
    local results = helpers.start({ n_core = 1, timeout = 20, redis_port = port }, function()
      package.path = "./spec/?.lua;" .. package.path
      local luact = require "luact"
      local redis = require "examples.redis"
      local c = assert(redis.connect("tcp://127.0.0.1:" .. luact.opts.redis_port))
      local cmds = {}
      for i = 1, 250 do
        cmds[#cmds + 1] = { "RPUSH", "list", ("item %d"):format(i) }
        cmds[#cmds + 1] = { "LINDEX", "list", i - 1 }
      end
      cmds[#cmds + 1] = { "HGET", "list", "x" }    -- a wrong-type error in the middle of a pipeline
      cmds[#cmds + 1] = { "LRANGE", "list", 0, 2 }
      local res = assert(c:pipeline(cmds))
      c:call("DEL", "list")
      c:close()
      luact.stop(res)
    end)
    assert.equal(502, #results)
    for i = 1, 250 do
      assert.equal(i, results[2 * i - 1])
      assert.equal(("item %d"):format(i), results[2 * i])
    end
    assert.matches("^WRONGTYPE", results[501].err)
    assert.same({ "item 1", "item 2", "item 3" }, results[502])
  end)

  it("is used from actors on three threads at once, each with its own connection", function()
    local total, per_thread = helpers.start({ n_core = 3, timeout = 30, redis_port = port }, function()
      package.path = "./spec/?.lua;" .. package.path
      local luact = require "luact"
      local N = 200
      -- a counter actor per thread: it owns one Redis connection
      local counter = luact({
        bump = function(self, n)
          local redis = require "examples.redis"
          self.c = self.c or assert(redis.connect("tcp://127.0.0.1:" .. require("luact").opts.redis_port))
          for _ = 1, n do assert(self.c:call("INCR", "shared")) end
          return assert(self.c:call("INCRBY", "thread:" .. require("luact").thread_id, n))
        end,
      })
      luact.register("counter:" .. luact.thread_id, counter)
      if luact.thread_id ~= 1 then return end
      for tid = 2, 3 do while not luact.resolve("counter:" .. tid) do luact.clock.sleep(0.01) end end
      -- thread 1 calls every thread's actor concurrently (two of them across threads)
      local ts = {}
      for tid = 1, 3 do
        ts[tid] = luact.tentacle(function() return luact.ref("counter:" .. tid):bump(N) end)
      end
      local per = {}
      for tid = 1, 3 do per[tid] = select(4, luact.event.wait(nil, ts[tid])) end
      local redis = require "examples.redis"
      local c = assert(redis.connect("tcp://127.0.0.1:" .. luact.opts.redis_port))
      local total = tonumber(c:call("GET", "shared"))
      c:call("DEL", "shared", "thread:1", "thread:2", "thread:3")
      c:close()
      luact.stop(total, per)
    end)
    assert.equal(600, total)
    assert.same({ 200, 200, 200 }, per_thread)
  end)
end)
