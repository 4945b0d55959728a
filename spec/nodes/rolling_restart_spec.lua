-- A rolling restart (issue 26): every member of a 5-member cluster is stopped the graceful way
-- (luact.stop from a tentacle: its activations and a leader's leadership are handed over
-- first) and started again, one after the other, while 4 clients on a sixth member call
-- virtual actors by name and write to luact.db, with the default timeouts. No call may fail
-- and no acknowledged write may be lost. (With the members stopped by os.exit instead, calls
-- failed with actor_unreachable: the check can fail.) bench/rolling_restart.lua is the same
-- roll, timed. spec/run runs this directory in `unshare -n`.
local procs = require "helpers.cluster_procs"

describe("a rolling restart of every member", function()
  setup(procs.setup)
  teardown(procs.teardown)

  it("fails no call by name and loses no acknowledged write", function()
    local calls, writes, failed, acked, missing, took = procs.roll_under_load(8, 4)
    print(("rolling restart: %d s, %d calls by name, %d writes (%d acknowledged), %d failed, %d lost")
      :format(took, calls, writes, acked, #failed, #missing))
    assert.is_true(calls > 100 and acked > 100, "the clients did not run")
    assert.same({}, failed)
    assert.same({}, missing)
  end)
end)
