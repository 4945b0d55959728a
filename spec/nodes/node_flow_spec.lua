-- Flow control between nodes (src/node_flow.rs): a thread of a node that stops taking messages
-- holds up only what is sent to it. Nodes on 127.0.0.x in the network namespace that spec/run
-- makes (`unshare -n`); every spawned process is killed in after_each.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

local SECRET = "s3cret"
local B = { addr = "127.0.0.2:7201", tcp = "tcp://127.0.0.2:8080", http = "http://127.0.0.2:8081" }

describe("node flow control", function()
  local b
  setup(function()
    process.require_netns()
    os.execute("ip link set lo up")
  end)
  before_each(function()
    b = process.spawn(("luajit spec/nodes/serve.lua %s %s %s %s"):format(B.addr, SECRET, B.tcp, B.http))
    process.wait_for(b, "ready")
  end)
  after_each(function()
    process.cleanup(b)
    b = nil
  end)

  it("answer calls to a node's other thread during a notify_ flood to a blocked thread, and lose none of the flood", function()
    -- one sender thread: the flood, the calls and their replies share one node connection
    local out = helpers.start({ n_core = 1, address = "127.0.0.1:7111", secret = SECRET, peer = B.tcp, timeout = 60 }, function()
      local luact = require "luact"
      local gate = luact.ref(luact.opts.peer .. "/svc/gates"):make()    -- on B's thread 2
      local other = luact.ref(luact.opts.peer .. "/svc/gates1"):make()  -- on B's thread 1
      local r = {}
      gate:notify_block(6)                                  -- B's thread 2 takes nothing for 6 s
      luact.clock.sleep(0.1)
      local n = 0
      while n < 2000000 do                                  -- bounded: refused long before
        local ok, e = pcall(gate.notify_note, gate, n)
        if not ok then r.flood_err = e.name; break end
        n = n + 1
        if n % 1000 == 0 then luact.clock.sleep(0) end
      end
      r.accepted = n
      -- while thread 2 is still blocked: thread 1 takes notifies and answers calls (a 2 s
      -- deadline, well inside the 6 s block: it must not wait for thread 2)
      r.other_notify = pcall(other.notify_note, other, "beside the flood")
      local ok, seen = pcall(other.timed_list, other, 2)
      r.other_call = ok and seen[1] or (seen.name .. ": " .. seen.message)
      -- after the block: every notify_ the flood got accepted arrives, in order
      local ok2, list = pcall(gate.timed_list, gate, 30)
      if not ok2 then r.gate = list.name .. ": " .. list.message else
        r.got, r.in_order = #list, true
        for i = 1, #list do if list[i] ~= i - 1 then r.in_order = false; break end end
      end
      r.send_pauses = luact.metrics().threads[1].flow_send_pauses   -- (the refusal that ended the flood)
      luact.stop(r)
    end)
    assert.equal("actor_overload", out.flood_err)
    assert.is_true(out.send_pauses >= 1, tostring(out.send_pauses))
    assert.is_true(out.accepted > 1000 and out.accepted < 100000, ("%d accepted"):format(out.accepted))
    assert.is_true(out.other_notify)
    assert.equal("beside the flood", out.other_call)
    assert.is_nil(out.gate)
    assert.equal(out.accepted, out.got)
    assert.is_true(out.in_order)
  end)

  it("accept a flood again once the blocked thread has taken it", function()
    local out = helpers.start({ n_core = 1, address = "127.0.0.1:7111", secret = SECRET, peer = B.tcp, timeout = 60 }, function()
      local luact = require "luact"
      local gate = luact.ref(luact.opts.peer .. "/svc/gates"):make()
      local function flood(limit)
        local n = 0
        while n < limit do
          local ok, e = pcall(gate.notify_note, gate, n)
          if not ok then return n, e.name end
          n = n + 1
          if n % 1000 == 0 then luact.clock.sleep(0) end
        end
        return n
      end
      local r = {}
      gate:notify_block(2)
      luact.clock.sleep(0.1)
      r.first, r.first_err = flood(2000000)
      gate:timed_list(30)                                   -- thread 2 has taken everything
      -- the window came back with the acknowledgements: the same again is accepted
      r.second, r.second_err = flood(r.first)
      r.total = #gate:timed_list(30)
      luact.stop(r)
    end)
    assert.equal("actor_overload", out.first_err)
    assert.is_nil(out.second_err)
    assert.equal(out.first, out.second)
    assert.equal(2 * out.first, out.total)
  end)
end)
