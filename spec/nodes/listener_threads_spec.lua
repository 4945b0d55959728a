-- luact.listen(url, { threads = "all" }): every thread listens on the port (SO_REUSEPORT), the
-- kernel spreads connections over them, and each thread's listener answers calls and applies
-- the limits. A client in another process; spec/run runs this directory in `unshare -n`.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

describe("luact.listen with threads = 'all'", function()
  setup(function()
    process.require_netns()
  end)

  it("listens on every thread: connections spread, every call is answered, limits apply per thread", function()
    local answered, closed, stats, listening = helpers.start({ n_core = 2, timeout = 60 }, function()
      local luact = require "luact"
      -- each thread reports its own listener's counts
      luact.register("/stats/" .. luact.thread_id, { get = function() return luact.listen_stats() end })
      if luact.thread_id ~= 1 then return end
      luact.register("/echo", { back = function(_, x) return x end })
      local wait_peer = require("helpers.sockets").wait_peer
      local process = require "helpers.process"
      local l = luact.listen("http://127.0.0.1:0", { threads = "all", header_timeout = 0.3 })
      luact.clock.sleep(0.2)   -- thread 2 opens its socket when it reads thread 1's message
      local ss = process.run("ss -Hltn 'sport = :" .. l.port .. "'")
      local _, listening = ss:gsub("LISTEN", "")
      local p = process.spawn(("python3 spec/nodes/listener_threads_peer.py 127.0.0.1 %d 40"):format(l.port))
      local answered = wait_peer(p, "answered (%d+)")
      local closed, out = wait_peer(p, "closed (%d+)")
      process.cleanup(p)
      local stats = {}
      for tid = 1, 2 do stats[tid] = luact.ref("/stats/" .. tid):get().header_timeouts end
      luact.stop(tonumber(answered), tonumber(closed) or out, stats, listening)
    end)
    assert.equal(2, listening)
    assert.equal(40, answered)
    assert.equal(40, closed)
    assert.equal(40, stats[1] + stats[2])
    assert.is_true(stats[1] > 0, "thread 1 accepted none")
    assert.is_true(stats[2] > 0, "thread 2 accepted none")
  end)

  it("refuses a bad threads option", function()
    local ok, err = helpers.start({ n_core = 1, timeout = 10 }, function()
      local luact = require "luact"
      luact.stop(pcall(luact.listen, "http://127.0.0.1:0", { threads = 2 }))
    end)
    assert.is_false(ok)
    assert.matches("bad 'threads' option to luact.listen %('all' or 'this' expected, got 2%)", err)
  end)
end)
