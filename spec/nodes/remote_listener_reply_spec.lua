-- A luact process calling another node's tcp:// listener (`luact.ref("tcp://...")`) that answers
-- with bodies it cannot read: each call fails at once with actor_runtime_error (not at its
-- deadline with actor_timeout), and the next good reply is taken. The listener is a stand-in
-- (fake_listener.py); spec/run runs this directory in `unshare -n`.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

describe("a reply from another node's listener", function()
  setup(function()
    process.require_netns()
  end)

  it("that cannot be read fails the call at once, and the connection serves the next call", function()
    local enc = require("string.buffer").encode
    local bodies = {
      "\255\254\253garbage",            -- not string.buffer data
      enc("a string"),                 -- not a table
      enc({ "yes", 1, 2 }),            -- the first value is not a boolean
      enc({ true, 1e9 }),              -- a count the VM cannot unpack
      enc({ true, -1 }),
      enc({ false, 0 }),               -- a failure without its exception
      enc({ true, 1, "fine" }),        -- and then a good one
    }
    local args = {}
    for i, b in ipairs(bodies) do args[i] = hex(b) end
    local p = process.spawn("python3 spec/nodes/fake_listener.py 127.0.0.1 7531 " .. table.concat(args, " "))
    finally(function() process.cleanup(p) end)
    process.wait_for(p, "ready")
    local results = helpers.start({ n_core = 1, timeout = 60 }, function()
      local luact = require "luact"
      local svc = luact.ref("tcp://127.0.0.1:7531/svc")
      local out = {}
      for i = 1, 7 do
        local ok, r = pcall(svc.timed_get, svc, 3)
        out[i] = ok and { true, r } or { false, type(r) == "table" and r.name or tostring(r), type(r) == "table" and r.message or nil }
      end
      luact.stop(out)
    end)
    for i = 1, 6 do
      assert.same({ false, "actor_runtime_error" }, { results[i][1], results[i][2] }, "reply " .. i)
      assert.matches("a malformed reply from the listener", results[i][3])
    end
    assert.same({ true, "fine" }, results[7])
  end)
end)
