-- A slow disk delays commits, not failure detection: 3 voters (127.0.0.1-3, with datadirs) and a
-- follower (127.0.0.4) as real processes in the spec's network namespace, every voter with the
-- slow-fsync shim (spec/helpers/slow_fsync.c: each fsync first sleeps for the milliseconds its
-- file names). While every voter's fsyncs take 800 ms and a client keeps writing, no member
-- suspects or declares another dead, no member's lease runs out (luact.cluster.lease logs it
-- when one does), the writes go on (slower), and every acknowledged write is there afterwards.
-- Before Raft's storage work left thread 1's loop (issue 29) this failed: each fsync stopped
-- the loop that runs SWIM and renews leases.
local procs = require "helpers.cluster_procs"

local DELAY_MS = 800
local HOLD = 8              -- seconds of slow disks

local dir, shim

local function set_delay(i, ms)
  local f = assert(io.open(("%s/fsync_delay%d"):format(dir, i), "w"))
  f:write(tostring(ms))
  f:close()
end

-- thread 1 of member i: the membership events it saw (type, about whom, wall time)
local function events(i) return procs.value(i, "seen") end

describe("luact.cluster with slow disks", function()
  setup(function()
    procs.setup()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir) == 0)
    shim = dir .. "/slow_fsync.so"
    assert(os.execute(("cc -shared -fPIC -O2 -o %s spec/helpers/slow_fsync.c -ldl"):format(shim)) == 0,
      "could not build spec/helpers/slow_fsync.c (cc)")
    for i = 1, 4 do
      set_delay(i, 0)
      procs.start(i, ("LD_PRELOAD=%s LUACT_TEST_FSYNC_DELAY_FILE=%s/fsync_delay%d "):format(shim, dir, i))
    end
  end)
  teardown(function()
    procs.teardown()
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("keeps every member alive and every lease held while each voter's fsync takes 800 ms; writes go on, none lost", function()
    assert.is_truthy(procs.settle(40), "the cluster did not settle")
    local seen_before, out_before = {}, {}
    for i = 1, 4 do
      seen_before[i] = #events(i)
      out_before[i] = #procs.output(i)
    end
    for i = 1, 3 do set_delay(i, DELAY_MS) end
    assert.is_true(procs.value(4, "start_writer", "slow/", 200, 0))
    os.execute("sleep " .. HOLD)
    for i = 1, 3 do set_delay(i, 0) end
    -- what every member saw meanwhile: nobody suspected, nobody dead, no lease run out
    local bad = {}
    for i = 1, 4 do
      local ev = events(i)
      for k = seen_before[i] + 1, #ev do
        local e = ev[k]
        if e[1] == "suspect" or e[1] == "dead" then
          bad[#bad + 1] = ("member %d saw %s %s"):format(i, tostring(e[2]), e[1])
        end
      end
      local out = procs.output(i):sub(out_before[i] + 1)
      for line in out:gmatch("[^\n]*lease ran out[^\n]*") do
        bad[#bad + 1] = ("member %d: %s"):format(i, line)
      end
    end
    assert.same({}, bad)
    -- the writes went on while the disks were slow, and every acknowledged one is there
    local _, during = procs.value(4, "writer", "slow/")
    assert.is_true(#during >= 1, "no write was acknowledged while the disks were slow")
    print(("\n%d writes acknowledged in %d s of %d ms fsyncs"):format(#during, HOLD, DELAY_MS))
    local done, acked
    assert.is_truthy(procs.wait_until(function()
      done, acked = procs.value(4, "writer", "slow/")
      return done
    end, 90), "the writer did not finish")
    assert.is_true(#acked >= #during)
    assert.same({}, procs.value(2, "missing", "slow/", acked))
  end)
end)
