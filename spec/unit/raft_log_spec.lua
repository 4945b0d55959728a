-- spec/unit/raft_log_spec.lua: the in-memory Raft log (luact.cluster.raft.log)

local Log = require "luact.cluster.raft.log"

local function log_with(terms, offset, snap_term)
  local l = Log.new(offset or 0, snap_term or 0)
  for i, t in ipairs(terms) do
    l:append({ index = (offset or 0) + i, term = t, data = "d" .. ((offset or 0) + i) })
  end
  return l
end

describe("luact.cluster.raft.log", function()
  it("answers terms for the snapshot point and stored entries, nil outside", function()
    local l = log_with({ 2, 2, 3 }, 5, 1)
    assert.equal(5, l.offset)
    assert.equal(1, l:term(5))
    assert.equal(2, l:term(6))
    assert.equal(3, l:term(8))
    assert.is_nil(l:term(4))
    assert.is_nil(l:term(9))
    assert.equal(8, l:last_index())
    assert.equal(3, l:last_term())
  end)

  it("refuses an append that leaves a hole", function()
    local l = log_with({ 1 })
    assert.has_error(function() l:append({ index = 3, term = 1 }) end,
      "raft log: append index 3 after 1")
  end)

  it("truncates after an index and slices inclusive ranges", function()
    local l = log_with({ 1, 1, 2, 2 })
    l:truncate_after(2)
    assert.equal(2, l:last_index())
    local s = l:slice(1, 2)
    assert.equal(2, #s)
    assert.equal("d1", s[1].data)
  end)

  it("compacts up to an index and keeps that index's term", function()
    local l = log_with({ 1, 2, 3, 4 })
    l:compact(2)
    assert.equal(2, l.offset)
    assert.equal(2, l:term(2))
    assert.is_nil(l:entry(2))
    assert.equal("d3", l:entry(3).data)
    assert.equal(4, l:last_index())
  end)

  it("finds where a follower's log may agree with a leader's (find_conflict_by_term)", function()
    -- leader log terms: 1 1 1 4 4 5 5 6 6 6 (etcd's example)
    local l = log_with({ 1, 1, 1, 4, 4, 5, 5, 6, 6, 6 })
    assert.equal(10, l:find_conflict_by_term(10, 6))
    assert.equal(7, l:find_conflict_by_term(10, 5))
    assert.equal(5, l:find_conflict_by_term(10, 4))
    assert.equal(3, l:find_conflict_by_term(10, 2))
    assert.equal(0, l:find_conflict_by_term(10, 0))
    assert.equal(10, l:find_conflict_by_term(20, 6)) -- clamped to the last index
  end)

  it("judges up-to-dateness by last term, then by length", function()
    local l = log_with({ 1, 2, 2 })
    assert.is_true(l:is_up_to_date(3, 2))
    assert.is_true(l:is_up_to_date(1, 3))
    assert.is_false(l:is_up_to_date(2, 2))
    assert.is_false(l:is_up_to_date(9, 1))
  end)
end)
