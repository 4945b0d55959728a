-- Registry snapshots bigger than one node frame, with real processes: 3 voters + 2 followers
-- whose node frames are limited to 128 KiB (`max_frame`), so that a registry of a few thousand
-- names no longer fits in one frame. A voter and a follower that fell behind (stopped, or killed
-- and restarted) must catch up: the voter over Raft's InstallSnapshot, the follower over the
-- feed's snapshot, both sent in pieces. (Issue 25: the registry used to wedge once its snapshot
-- outgrew `max_frame`.) A voter that was only stopped gets what it missed from the messages
-- queued for it; one that was killed needs the leader's snapshot. Followers get the feed's
-- snapshot whenever they are more than 40 entries (the specs' snapshot interval) behind.
local procs = require "helpers.cluster_procs"

local MAX_FRAME = 128 * 1024
local ENV = ("LUACT_SPEC_MAX_FRAME=%d "):format(MAX_FRAME)
local PREFIX = "/snap/"

-- a voter that does not lead (the leader as member 4 sees it)
local function quiet_voter()
  local l = procs.addr_no(assert(procs.wait_until(function() return procs.value(4, "leader") end, 10)))
  return l == 1 and 2 or 1
end

-- registers PREFIX..from..to lazy from member 4
local function register(from, to)
  local done, failed = procs.value(4, "lazy_many", PREFIX, from, to, 64)
  assert.equal(to - from + 1, done, ("%d registrations failed"):format(failed))
end

-- the members (of those listed) whose replica does not hold PREFIX..last
local function lacking(list, last)
  local out = {}
  for _, i in ipairs(list) do
    local r = procs.call(i, "vstates", PREFIX .. last)
    if not (r[1] and #r[2] == 1) then out[#out + 1] = i end
  end
  return out
end

local function all_hold(last, timeout)
  local left
  local ok = procs.wait_until(function()
    left = lacking({ 1, 2, 3, 4, 5 }, last)
    return #left == 0
  end, timeout)
  assert.is_truthy(ok, ("members %s do not hold %s%d"):format(table.concat(left, ", "), PREFIX, last))
end

-- a write acknowledged now is seen by every member's replica (they apply the log again)
local function fresh_write_everywhere(k)
  assert.is_true(procs.value(5, "set", k, k))
  assert.is_truthy(procs.wait_until(function()
    for i = 1, 5 do
      local r = procs.call(i, "local_get", k)
      if not (r[1] and r[2] == k) then return nil end
    end
    return true
  end, 20), "a write after the catch-up did not reach every member")
end

describe("luact.cluster registry snapshots larger than a frame", function()
  setup(function()
    procs.setup()
    assert.is_truthy(procs.start_all(30, ENV), "the cluster did not form")
  end)
  teardown(function() procs.teardown() end)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)

  it("brings a stopped voter and a stopped follower back over a snapshot of several frames", function()
    local v = quiet_voter()
    local restores = procs.value(5, "restores")
    procs.signal(v, "STOP")
    procs.signal(5, "STOP")
    local ok, err = pcall(register, 1, 4000)
    procs.signal(v, "CONT")
    procs.signal(5, "CONT")
    assert(ok, err)
    local bytes = procs.value(4, "snapshot_bytes")
    assert.is_true(bytes > 3 * MAX_FRAME, ("the registry's snapshot is only %d bytes"):format(bytes))
    all_hold(4000, 60)
    assert.is_true(procs.value(5, "restores") > restores, "the follower installed no snapshot")
    fresh_write_everywhere("after_stop")
  end)

  it("brings a killed voter (from its datadir) and a killed follower (empty) back", function()
    local v = quiet_voter()
    procs.kill(v)
    procs.kill(5)
    register(4001, 6000)
    procs.start(v, ENV)
    procs.start(5, ENV)
    all_hold(6000, 60)
    -- the voter restored its own snapshot at start, then the leader's; the follower the feed's
    assert.is_true(procs.value(v, "restores") >= 2, "the voter installed no snapshot from the leader")
    assert.is_true(procs.value(5, "restores") >= 1, "the follower installed no snapshot")
    fresh_write_everywhere("after_kill")
  end)
end)
