-- The nemesis soak's checkers (spec/helpers/nemesis_checks.lua) on made-up records: each
-- passes a good history and fails a bad one.
local checks = require "helpers.nemesis_checks"

local function call(vid, token, send, recv)
  return { vid = vid, token = token, host = "h-" .. token, send = send, recv = recv, ok = true, callee = send }
end

describe("nemesis checks", function()
  describe("single_activation", function()
    it("passes a handover: the old activation's last answer came back before the new one's first call", function()
      local va = { call("/a", "A", 0, 1), call("/a", "A", 2, 3), call("/a", "B", 5, 6), call("/a", "B", 7, 8) }
      assert.same({}, checks.single_activation(va))
    end)

    it("passes answers whose intervals overlap but can be ordered", function()
      -- A answered somewhere in (0, 4), B somewhere in (1, 5): A before B is possible
      local va = { call("/a", "A", 0, 4), call("/a", "B", 1, 5) }
      assert.same({}, checks.single_activation(va))
    end)

    it("fails when each activation answered after the other had answered", function()
      local va = { call("/a", "A", 0, 1), call("/a", "B", 2, 3), call("/a", "A", 4, 5), call("/a", "B", 6, 7) }
      local f = checks.single_activation(va)
      assert.equal(1, #f)
      assert.matches("two activations of /a answered at overlapping times", f[1], 1, true)
    end)

    it("fails an old activation answering again after the new one (A, B, A)", function()
      local va = { call("/a", "A", 0, 1), call("/a", "B", 2, 3), call("/a", "A", 4, 5) }
      assert.equal(1, #checks.single_activation(va))
    end)

    it("looks at one name at a time, and at answered calls only", function()
      local va = { call("/a", "A", 0, 1), call("/b", "B", 2, 3), call("/a", "A", 4, 5),
                   { vid = "/a", token = "-", send = 2, recv = 3, ok = false, err = "actor_timeout" } }
      assert.same({}, checks.single_activation(va))
    end)
  end)

  describe("available", function()
    local heals = { { t = 10, label = "round 1" } }
    it("passes a name that answered a call sent after the heal within the window", function()
      local f, worst = checks.available({ call("/a", "A", 9, 9.5), call("/a", "A", 12, 14.9) }, heals, { "/a" }, 5)
      assert.same({}, f)
      assert.near(4.9, worst, 1e-9)     -- the longest wait for a first answer after a heal
    end)

    it("fails a name that answered late, or never, after the heal", function()
      local f = checks.available({ call("/a", "A", 9, 10.5), call("/a", "A", 14, 15.5) }, heals, { "/a", "/b" }, 5)
      assert.equal(2, #f)
      assert.matches("/a did not answer within 5 s", f[1], 1, true)
      assert.matches("/b did not answer within 5 s", f[2], 1, true)
      assert.matches("no answer at all", f[2], 1, true)
    end)
  end)

  describe("linearizable", function()
    local function op(key, o, a, b, call, ret, result)
      return { key = key, op = o, a = a, b = b, call = call, ret = ret, result = result }
    end
    it("passes a history a register can give, with an unknown write read later", function()
      local db = { op("k", "set", 1, nil, 0, 1, true), op("k", "set", 2, nil, 2, nil, "actor_timeout"),
                   op("k", "get", nil, nil, 3, 4, 2), op("k", "cas", 2, 3, 5, 6, true), op("k", "get", nil, nil, 7, 8, 3) }
      assert.same({}, checks.linearizable(db, 0))
    end)

    it("fails a read of an acknowledged write's old value", function()
      local db = { op("k", "set", 1, nil, 0, 1, true), op("k", "get", nil, nil, 2, 3, 0) }
      local f = checks.linearizable(db, 0)
      assert.equal(1, #f)
      assert.matches("linearizability: k", f[1], 1, true)
    end)
  end)

  describe("bad_lines", function()
    it("finds logged errors, Lua errors at the top and panics, not warnings with a traceback", function()
      local text = "2026-12-07 10:00:00.000 WARN   [t1] condemning failed: cluster_unavailable\n" ..
                   "    stack traceback:\n    \t./lua/luact/cluster/requests.lua:44: in function 'unavailable'\n" ..
                   "2026-12-07 10:00:00.000 ERROR  [t1] raft: boom\n" ..
                   "thread '<unnamed>' panicked at src/x.rs:1:1\n" ..
                   "luajit: ./lua/luact/x.lua:1: attempt to index a nil value\n"
      assert.equal(3, #checks.bad_lines(text))
    end)
  end)

  describe("memory", function()
    local function samples(f)
      local s = {}
      for i = 1, 40 do s[i] = { member = 1, pid = 7, t = i, rss_kb = f(i) } end
      return s
    end
    it("passes a flat RSS", function()
      assert.same({}, checks.memory(samples(function() return 20000 end), 256, 1.5, 16))
    end)
    it("fails an RSS that keeps growing, and one over the limit", function()
      local f = checks.memory(samples(function(i) return 20000 + i * 4000 end), 256, 1.5, 16)
      assert.equal(1, #f)
      assert.matches("grew from", f[1], 1, true)
      f = checks.memory(samples(function() return 300 * 1024 end), 256, 1.5, 16)
      assert.equal(1, #f)
      assert.matches("over 256 MB", f[1], 1, true)
    end)
  end)
end)
