-- Reminders (luact.reminder: durable timers owned by a virtual actor's name) on a cluster of
-- real luajit processes (3 voters 127.0.0.1-3 + 2 followers 127.0.0.4-5, two threads each):
-- they call the name's activation, follow it to its new host after kill -9 of the old one
-- (also one that came due while no activation lived), and outlive a restart of every process.
-- The cases run in order on one cluster.
local procs = require "helpers.cluster_procs"

local RUNNING = { 1, 2, 3, 4, 5 }

-- Every call the reminders of vid made on member i (both threads): { wall time, name, data, node }.
local function rings_on(i, vid)
  if not procs.pid(i) then return {} end
  local out = {}
  for _, th in ipairs({ 1, 2 }) do
    local r = procs.call(i, { "ring_log", thread = th }, vid)
    if r[1] then for _, x in ipairs(r[2]) do out[#out + 1] = x end end
  end
  return out
end

local function rings(vid, name)
  local out = {}
  for _, i in ipairs(RUNNING) do
    for _, x in ipairs(rings_on(i, vid)) do
      if name == nil or x[2] == name then out[#out + 1] = x end
    end
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

describe("luact reminders", function()
  setup(function()
    procs.setup()
    for i = 1, 5 do procs.start(i) end
  end)
  teardown(function() procs.teardown() end)
  before_each(function() assert.is_truthy(procs.settle(40), "the cluster did not settle") end)

  it("refuses bad arguments and unknown names, saying why", function()
    assert.is_true(procs.value(4, "rreg", "/remind/args"))
    local ok, why = procs.value(4, "remind", "/remind/args", "r", { every = 0.001 })
    assert.is_false(ok)
    assert.is_truthy(why:find("bad 'every' option to luact.reminder", 1, true), why)
    ok, why = procs.value(4, "remind", "/remind/args", "r", {})
    assert.is_false(ok)
    assert.is_truthy(why:find("'every' or 'at' expected", 1, true), why)
    ok, why = procs.value(4, "remind", "/remind/nobody", "r", { every = 1 })
    assert.is_false(ok)
    assert.equal("actor_no_body", why)
    -- removing one that does not exist
    assert.is_false(procs.value(4, "remind", "/remind/args", "r", nil))
  end)

  it("a periodic reminder calls the activation, and after kill -9 of its host the new one", function()
    local vid = "/remind/every"
    assert.is_true(procs.value(4, "rreg", vid))
    assert.is_true(procs.value(4, "remind", vid, "tick", { every = 0.2, data = { x = 1 } }))
    assert.is_truthy(procs.wait_until(function() return #rings_on(4, vid) >= 3 end, 10),
      "the reminder did not call the activation")
    local first = rings_on(4, vid)[1]
    assert.equal("tick", first[2])
    assert.same({ x = 1 }, first[3])
    procs.kill(4)
    finally(function() if not procs.pid(4) then procs.start(4) end end)
    local moved = procs.wait_until(function()
      local r = rings(vid)
      return #r >= 3 and r
    end, 20)
    assert.is_truthy(moved, "the reminder did not call the new activation after its host was killed")
    assert.are_not.equal(procs.addr(4), moved[1][4])
    -- removed: it stops
    local host = tonumber(moved[1][4]:match("^127%.0%.0%.(%d+)"))
    assert.is_true(procs.value(host, "remind", vid, "tick", nil))
    os.execute("sleep 0.5")
    local n = #rings(vid)
    os.execute("sleep 1")
    assert.equal(n, #rings(vid))
  end)

  it("calls an activation that runs on thread 2, follows a change and stops when removed", function()
    local vid = "/remind/thread2"
    -- registered from thread 2 of member 4: its activation runs there
    assert.is_true(procs.value(4, { "rreg", thread = 2 }, vid))
    local function on_t2() return procs.value(4, { "ring_log", thread = 2 }, vid) end
    assert.is_true(procs.value(4, "remind", vid, "tick", { every = 0.2, data = 1 }))
    assert.is_truthy(procs.wait_until(function() return #on_t2() >= 3 end, 10),
      "the reminder did not call the activation on thread 2")
    -- replaced: the new data comes
    assert.is_true(procs.value(4, "remind", vid, "tick", { every = 0.2, data = 2 }))
    assert.is_truthy(procs.wait_until(function()
      local r = on_t2()
      return r[#r][3] == 2
    end, 10), "the replaced reminder did not call the activation on thread 2")
    -- a one-shot there runs once and is removed from the registry once it ran
    local at = procs.value(4, "walltime") + 0.3
    assert.is_true(procs.value(4, "remind", vid, "once", { at = at }))
    local function onces()
      local n = 0
      for _, x in ipairs(on_t2()) do if x[2] == "once" then n = n + 1 end end
      return n
    end
    assert.is_truthy(procs.wait_until(function() return onces() == 1 end, 10), "the one-shot did not run on thread 2")
    assert.is_truthy(procs.wait_until(function() return procs.value(4, "remind", vid, "once", nil) == false or nil end, 10),
      "the one-shot that ran was not removed from the registry")
    -- removed: the periodic one stops
    assert.is_true(procs.value(4, "remind", vid, "tick", nil))
    os.execute("sleep 0.5")
    local n = #on_t2()
    os.execute("sleep 1")
    assert.equal(n, #on_t2())
    assert.equal(1, onces())
    -- nothing of it ran on thread 1
    assert.same({}, procs.value(4, "ring_log", vid))
  end)

  it("a one-shot reminder that came due while its host was dead calls the new activation, once", function()
    local vid = "/remind/at"
    assert.is_true(procs.value(4, "rreg", vid))
    local at = procs.value(4, "walltime") + 0.5
    assert.is_true(procs.value(4, "remind", vid, "once", { at = at }))
    procs.kill(4)
    finally(function() if not procs.pid(4) then procs.start(4) end end)
    local got = procs.wait_until(function()
      local r = rings(vid)
      return #r >= 1 and r
    end, 20)
    assert.is_truthy(got, "the one-shot reminder never called the new activation")
    assert.is_true(got[1][1] >= at)
    os.execute("sleep 2")
    assert.equal(1, #rings(vid), "the one-shot reminder called more than once")
  end)

  it("outlives a restart of every process of the cluster", function()
    local vid = "/remind/restart"
    assert.is_true(procs.value(5, "rreg", vid))
    assert.is_true(procs.value(5, "remind", vid, "tick", { every = 0.3 }))
    assert.is_truthy(procs.wait_until(function() return #rings(vid) >= 2 end, 10))
    for i = 1, 5 do procs.kill(i) end
    for i = 1, 5 do procs.start(i) end
    local r = procs.wait_until(function()
      local x = rings(vid)
      return #x >= 2 and x
    end, 40)
    assert.is_truthy(r, "the reminder did not call any activation after the whole cluster restarted")
  end)
end)
