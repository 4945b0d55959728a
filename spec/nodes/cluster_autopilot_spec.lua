-- The autopilot (`replace_dead_voters`): 3 seeds and one member with a datadir (127.0.0.4), as
-- real processes in the spec's network namespace, every one started with
-- replace_dead_voters = 2. A voter killed with kill -9 is replaced by the member with a
-- datadir (added first, then the dead one removed), while a client writes through luact.db;
-- its history must be linearizable. The dead voter, restarted with its datadir, is a member
-- that follows the registry without voting.
local procs = require "helpers.cluster_procs"
local lin = require "helpers.linearizability"

local AUTOPILOT = "LUACT_SPEC_AUTOPILOT=2 "

local function index_of(a) return tonumber(a:match("^127%.0%.0%.(%d+)")) end

describe("luact.cluster autopilot", function()
  setup(function()
    procs.setup()
    procs.give_datadir(4)
    for i = 1, 4 do procs.start(i, AUTOPILOT) end
  end)
  teardown(function() procs.teardown() end)

  it("replaces a voter dead for replace_dead_voters seconds by a live member with a datadir", function()
    assert.is_truthy(procs.settle(40), "the cluster did not settle")
    assert.is_true(procs.value(1, "set", "lin/1", 0))
    local leader = index_of(procs.value(4, "leader"))
    local dead = leader == 1 and 2 or 1
    assert.is_true(procs.value(4, "start_history", 1, 1, 150, 7919))
    assert.is_true(procs.value(leader, { "start_history", thread = 2 }, 2, 1, 150, 2 * 7919))
    os.execute("sleep 0.5")
    procs.kill(dead)
    local want = {}
    for i = 1, 4 do if i ~= dead then want[#want + 1] = procs.addr(i) end end
    local got
    assert.is_truthy(procs.wait_until(function()
      got = procs.value(4, "voters")
      return table.concat(got, ",") == table.concat(want, ",")
    end, 40), "voters: " .. table.concat(got or {}, ","))
    assert.truthy(procs.output(leader):find(("voter %s has been dead for %%d+ s: replacing it with %s"):format(
      procs.addr(dead):gsub("%p", "%%%0"), procs.addr(4):gsub("%p", "%%%0"))), procs.output(leader))
    local ops = {}
    for _, c in ipairs({ { 4, 1, 1 }, { leader, 2, 2 } }) do
      assert.is_truthy(procs.wait_until(function()
        local done, o = procs.value(c[1], { "history", thread = c[2] }, c[3])
        if done then for _, op in ipairs(o) do ops[#ops + 1] = op end end
        return done
      end, 120))
    end
    local ok, why = lin.check(ops, 0)
    assert(ok, "lin/1: " .. tostring(why))
    -- back with its datadir: no voter, it follows the registry
    procs.start(dead, AUTOPILOT)
    assert.is_true(procs.value(4, "set", "after/autopilot", 1))
    assert.is_truthy(procs.wait_until(function()
      return procs.value(dead, "local_get", "after/autopilot") == 1
    end, 20), "the old voter does not follow the registry")
    assert.same(want, procs.value(dead, "voters"))
  end)
end)
