-- Every public options table refuses a key it does not know, naming it and the closest known
-- option (luact.util.check_options); luact.start refuses only keys that look like a typo of one
-- of its options (other keys are the application's, in luact.opts).
local helpers = require "helpers.runtime"

describe("options", function()
  it("luact.start raises on a typo of one of its options", function()
    local luact = require "luact"
    assert.has_error(function() luact.start({ n_cores = 3, timeout = 5 }, function() end) end,
      "bad 'n_cores' option to luact.start (unknown option; did you mean 'n_core'?)")
    assert.has_error(function() luact.start({ log_levle = "debug", timeout = 5 }, function() end) end,
      "bad 'log_levle' option to luact.start (unknown option; did you mean 'log_level'?)")
    assert.has_error(function() luact.start({ offload_thread = 2, timeout = 5 }, function() end) end,
      "bad 'offload_thread' option to luact.start (unknown option; did you mean 'offload_threads'?)")
    -- the application's own keys still reach every thread, also one near an option's name
    -- whose value is not of that option's type (seeds: a table)
    local got, seed = helpers.start({ n_core = 2, callers = 64, seed = 42 }, function()
      local luact = require "luact"
      if luact.thread_id == 2 then luact.stop(luact.opts.callers, luact.opts.seed) end
    end)
    assert.equal(64, got)
    assert.equal(42, seed)
  end)

  it("every other options table raises on an unknown key", function()
    local errs = helpers.run(function()
      local luact = require "luact"
      local errs = {}
      local function try(name, fn)
        local ok, e = pcall(fn)
        errs[name] = ok and "no error" or tostring(e)
      end
      local body = { hi = function() return "hi" end }
      try("listen", function() luact.listen("tcp://127.0.0.1:0", { max_conections = 5 }) end)
      try("register", function() luact.register("/opt/a", { multi_actr = true }, body) end)
      try("connect", function() luact.socket.connect("tcp://127.0.0.1:1", { timout = 1 }) end)
      try("socket.listen", function() luact.socket.listen("tcp://127.0.0.1:0", function() end, { backlg = 5 }) end)
      try("udp", function() luact.socket.udp("udp://127.0.0.1:0", { read_timeout = 1 }) end)
      try("supervise", function() luact.supervise(body, { max_r = 3 }) end)
      try("ref", function() luact.ref("tls://127.0.0.1:1/x", { cafile = "x" }) end)
      try("event", function() luact.event.new({ max_pendng = 1 }) end)
      try("define", function() luact.exception.define("my_error", { recoverabel = true }) end)
      try("reminder", function() luact.reminder("/opt/a", "tick", { evry = 1 }) end)
      try("persist", function() luact.register("/opt/p", { persit = true }, body) end)
      -- known options still work
      local l = luact.listen("tcp://127.0.0.1:0", { max_connections = 5 })
      errs.known = l.port > 0 and luact.register("/opt/b", { multi_actor = true }, body):hi()
      luact.stop(errs)
    end)
    assert.equal("bad 'max_conections' option to luact.listen (unknown option; did you mean 'max_connections'?)", errs.listen:match("bad .*"))
    assert.equal("bad 'multi_actr' option to luact.register (unknown option; did you mean 'multi_actor'?)", errs.register:match("bad .*"))
    assert.equal("bad 'timout' option to luact.socket.connect (unknown option; did you mean 'timeout'?)", errs.connect:match("bad .*"))
    assert.equal("bad 'backlg' option to luact.socket.listen (unknown option; did you mean 'backlog'?)", errs["socket.listen"]:match("bad .*"))
    assert.equal("bad 'read_timeout' option to luact.socket.udp (unknown option; did you mean 'timeout'?)", errs.udp:match("bad .*"))
    assert.equal("bad 'max_r' option to luact.supervise (unknown option; did you mean 'maxr'?)", errs.supervise:match("bad .*"))
    assert.equal("bad 'cafile' option to luact.ref (unknown option; did you mean 'ca'?)", errs.ref:match("bad .*"))
    assert.equal("bad 'max_pendng' option to event.new (unknown option; did you mean 'max_pending'?)", errs.event:match("bad .*"))
    assert.equal("bad 'recoverabel' option to exception.define (unknown option; did you mean 'recoverable'?)", errs.define:match("bad .*"))
    assert.equal("bad 'evry' option to luact.reminder (unknown option; did you mean 'every'?)", errs.reminder:match("bad .*"))
    assert.equal("bad 'persit' option to luact.register (unknown option; did you mean 'persist'?)", errs.persist:match("bad .*"))
    assert.equal("hi", errs.known)
  end)

  it("blames the caller's line", function()
    local ok, err = pcall(function() require("luact").event.new({ max_pendng = 1 }) end)
    assert.is_false(ok)
    assert.matches("^spec/integration/options_spec.lua:%d+: bad 'max_pendng'", err)
  end)
end)
