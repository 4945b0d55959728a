-- spec/sim/raft_spec.lua: whole Raft clusters over the seeded simulated network. Every run
-- checks the safety properties after every delivered message and every tick, and the
-- liveness / durability properties at its end. A failure names its seed; replay it with
-- LUACT_SIM_SEED=N, run more seeds with LUACT_SIM_SEEDS=N.

local simnet = require "helpers.simnet"
local raft = require "luact.cluster.raft"
local harness = require "helpers.raft_cluster"
local cluster, chaos_run = harness.cluster, harness.chaos_run

local SEEDS = simnet.seed_count(200)

-- the harness (a cluster, its applications, the invariant checks) is helpers/raft_cluster.lua

describe("luact.cluster.raft (simulated cluster)", function()
  -- Thousands of short simulated runs keep LuaJIT 2.1 recording traces it then aborts (the
  -- `next` loops of message copying are not compiled): the interpreter runs these specs about
  -- three times faster. The JIT is switched back on for whatever runs next.
  setup(function() if jit then jit.off() end end)
  teardown(function() if jit then jit.on() end end)

  it("keeps one leader per term, matching logs and identical applied sequences under loss, " ..
     "delay, duplication, reordering and partitions", function()
    local acked = 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = chaos_run(seed, {})
      acked = acked + #c.acked_list
    end)
    -- the runs did real work: proposals were acknowledged
    assert.is_true(acked > SEEDS * 20)
  end)

  it("loses no acknowledged proposal across crash and restart of a minority, with snapshots",
     function()
    local snaps, installs = 0, 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = chaos_run(seed, { crash = true, snapshot_entries = 20 })
      for _, id in ipairs(c.ids) do
        if c.net.nodes[id]:status().snapshot_index > 0 then snaps = snaps + 1 end
      end
      installs = installs + c.snapshots_delivered
    end, 10001)
    -- logs were compacted, and lagging nodes caught up through InstallSnapshot
    assert.is_true(snaps > SEEDS)
    assert.is_true(installs > SEEDS / 2)
  end)

  it("restarts nodes from the file storage without losing acknowledged proposals", function()
    local restarts = 0
    simnet.for_seeds(SEEDS, function(seed)
      local dir = "spec/tmp/raft_sim_" .. seed
      os.execute("rm -rf " .. dir .. " && mkdir -p " .. dir)
      local c = chaos_run(seed, { crash = true, snapshot_entries = 20, file_dir = dir,
                                  ticks = 150 })
      for _, id in ipairs(c.ids) do c.storages[id]:close() end
      for _, id in ipairs(c.ids) do restarts = restarts + (c.net.gen[id] or 1) - 1 end
      os.execute("rm -rf " .. dir)
    end, 80001)
    assert.is_true(restarts > 0)
  end)

  it("ignores and counts malformed messages mixed into the traffic, and stays safe", function()
    local garbled, dropped = 0, 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = chaos_run(seed, { garble = true, ticks = 200, snapshot_entries = 25 })
      garbled, dropped = garbled + c.garbled, dropped + c.garbled_dropped
      local counted = 0
      for _, id in ipairs(c.ids) do counted = counted + c.net.nodes[id]:status().dropped_bad end
      if counted == 0 then error("no malformed message was counted") end
    end, 70001)
    -- most garbled messages are malformed (a few replace a loosely typed field like `ctx`)
    assert.is_true(dropped > garbled * 0.8)
  end)

  it("elects a new leader within 30 ticks of losing one, with 5 % message loss", function()
    -- liveness is probabilistic (split votes, lost messages): at least 99 % of the seeds must
    -- elect within 30 ticks and every seed within 60 (measured: median 11, p99 19, worst 38
    -- over 5000 seeds)
    local slow = 0
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, { n = 5, drop = 0.05 })
      c:tick(60)
      local old = c:leader()
      if not old then c:fail("no leader after 60 ticks") end
      c:crash(old)
      local took
      for t = 1, 60 do
        c:tick()
        local lid = c:leader()
        if lid and lid ~= old then took = t; break end
      end
      if not took then c:fail("no new leader 60 ticks after the leader crashed") end
      if took > 30 then slow = slow + 1 end
    end, 20001)
    assert.is_true(slow <= SEEDS / 100,
      ("%d of %d seeds took more than 30 ticks"):format(slow, SEEDS))
  end)

  it("does not let a partitioned follower depose a healthy leader when it rejoins", function()
    simnet.for_seeds(SEEDS, function(seed)
      local rng = simnet.rng(seed, "rejoin")
      local c = cluster(seed, { n = 3 })
      c:tick(50)
      local lid, ls = c:leader_status()
      if not lid then c:fail("no leader") end
      local follower = c.ids[1] == lid and c.ids[2] or c.ids[1]
      local function same_leader(what)
        local lid2, ls2 = c:leader_status()
        if lid2 ~= lid or ls2.term ~= ls.term then
          c:fail(("%s: leader changed from %s/%d to %s/%d"):format(what, tostring(lid), ls.term,
            tostring(lid2), ls2 and ls2.term or -1))
        end
      end
      -- fully cut off for a while (any phase of its election timer), then back
      c.net:isolate(follower)
      c:tick(rng:random(30, 130))
      local fs = c:node(follower):status()
      if fs.term ~= ls.term then c:fail("isolated follower raised its term to " .. fs.term) end
      c.net:heal()
      for _ = 1, 40 do c:tick(); same_leader("after rejoining") end
      if c:node(follower):status().leader ~= lid then c:fail("rejoined follower has no leader") end
      -- it stops hearing the leader but still reaches the other follower
      c.net:cut(lid, follower)
      for _ = 1, 100 do c:tick(); same_leader("with the leader's link cut") end
    end, 30001)
  end)

  it("steps a leader down within two election timeouts once it cannot reach a quorum", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, { n = 5, drop = 0.05 })
      c:tick(50)
      local lid = c:leader()
      if not lid then c:fail("no leader") end
      c.net:partition({ lid, lid % 5 + 1 })    -- the leader keeps one follower: a minority
      c:tick(20)
      local role = c:node(lid):leadership()
      if role == "leader" then c:fail("leader of a minority still leads after 20 ticks") end
      c.net:heal()
      c:converge(300)
      c:check_final()
    end, 35001)
  end)

  it("adds and removes voters one at a time, including the leader, without losing entries",
     function()
    simnet.for_seeds(SEEDS, function(seed)
      local rng = simnet.rng(seed, "members")
      local c = cluster(seed, { ids = { "a", "b", "c" }, drop = 0.03, delay = { 0, 1 },
                                snapshot_entries = rng:random(1, 2) == 1 and 15 or nil })
      local function wait_leader()
        for _ = 1, 200 do
          local lid = c:leader()
          if lid then return lid end
          c:tick()
        end
        c:fail("no leader")
      end
      local function change(ch)
        for _ = 1, 200 do
          local lid = wait_leader()
          local idx, err = c.net.nodes[lid]:propose_conf(ch)
          if idx then
            -- wait until the change is committed by that leader (or leadership moved on)
            for _ = 1, 100 do
              c:propose(lid)
              c:tick()
              local s = c.net.nodes[lid]:status()
              if s.commit >= idx then return true end
              if s.role ~= "leader" then break end
            end
          elseif err == "already_member" or err == "not_member" then
            return true
          else
            c:tick()
          end
        end
        c:fail("configuration change never committed")
      end
      c:tick(30)
      -- a new node joins with no configuration; it learns it from the log
      c:start("d", {})
      c.ids[#c.ids + 1] = "d"
      change({ add = "d" })
      -- remove whoever leads now
      local lid = wait_leader()
      change({ remove = lid })
      for _ = 1, 20 do c:propose(wait_leader()); c:tick() end
      c:converge(400)
      local _, ls = c:leader_status()
      if #ls.voters ~= 3 then c:fail("expected 3 voters, got " .. #ls.voters) end
      for _, v in ipairs(ls.voters) do
        if v == lid then c:fail("removed leader is still a voter") end
      end
      if c:node(lid):status().role ~= "follower" then c:fail("removed leader did not step down") end
      c:check_final()
      if #c.acked_list < 20 then c:fail("too few acknowledged proposals") end
    end, 40001)
  end)

  it("overwrites a long divergent follower log in a few round trips (fast back-off)", function()
    simnet.for_seeds(SEEDS, function(seed)
      -- node 1 holds 100 uncommitted entries of term 2; nodes 2 and 3 hold 10 of term 3,
      -- so one of them leads and must replace node 1's whole suffix
      local rejects = 0
      local net = simnet.new({ seed = seed, on_deliver = function(_, to, m)
        if to == 2 or to == 3 then
          if m.type == "append_resp" and m.reject and m.from == 1 then rejects = rejects + 1 end
        end
      end })
      local conf = { index = 1, term = 1, conf = { voters = { 1, 2, 3 } } }
      for id = 1, 3 do
        local st = raft.storage_memory.new()
        local ents = { conf }
        local n, term = id == 1 and 100 or 10, id == 1 and 2 or 3
        for i = 2, n + 1 do ents[i] = { index = i, term = term, data = id .. ":" .. i } end
        st:append(1, ents)
        st:set_hard_state({ term = 3, commit = 1 })
        net:add(id, raft.new({ id = id, peers = { 1, 2, 3 }, random = net:random_for(id),
                               storage = st }))
      end
      local function synced()
        local a, b = net:node(1), net:node(2)
        return a:status().leader ~= nil and a:last_index() == b:last_index() and
               a:term_at(a:last_index()) == b:term_at(b:last_index())
      end
      if not net:run_until(synced, 100) then net:fail("node 1 never caught up") end
      if net:node(1):last_index() ~= 12 then net:fail("node 1 kept stale entries") end
      if rejects > 3 then
        net:fail(("%d rejected appends to back off 90 entries"):format(rejects))
      end
    end, 55001)
  end)

  it("replays a run exactly from its seed, in this process and in another one", function()
    -- a digest of every delivered message of a faulty 5-node run with string ids
    local code = [[
      local simnet = require "helpers.simnet"
      local raft = require "luact.cluster.raft"
      return function(seed)
        local h = 0
        local net = simnet.new({ seed = seed, drop = 0.1, delay = { 0, 2 }, duplicate = 0.05,
          reorder = true, on_deliver = function(from, to, m)
            local s = from .. to .. m.type .. m.term .. (m.commit or "") .. (m.index or "")
            for i = 1, #s do h = (h * 31 + s:byte(i)) % 2147483647 end
          end })
        local ids = { "a", "b", "c", "d", "e" }
        for _, id in ipairs(ids) do
          net:add(id, raft.new({ id = id, peers = ids, random = net:random_for(id) }))
        end
        for t = 1, 150 do
          for _, id in ipairs(ids) do
            if net:node(id):leadership() == "leader" then net:node(id):propose("x" .. t) end
          end
          if t == 50 then net:partition({ "a", "b" }, { "c", "d", "e" }) end
          if t == 90 then net:heal() end
          net:tick()
        end
        return ("%d/%d"):format(h, net.stats.delivered)
      end
    ]]
    local run = assert(loadstring(code))()
    local function child(seed)
      local f = io.open("spec/tmp/raft_replay.lua", "w")
      f:write('package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path\n')
      f:write("io.write((function() " .. code .. " end)()(" .. seed .. "))\n")
      f:close()
      local p = io.popen("luajit spec/tmp/raft_replay.lua")
      local out = p:read("*a")
      p:close()
      return out
    end
    os.execute("mkdir -p spec/tmp")
    for _, seed in ipairs({ 1, 2, 3 }) do
      local here = run(seed)
      assert.equal(here, run(seed))
      assert.equal(here, child(seed))
    end
    assert.are_not.equal(run(1), run(2))
    os.remove("spec/tmp/raft_replay.lua")
  end)

  it("transfers leadership to the chosen voter", function()
    simnet.for_seeds(SEEDS, function(seed)
      local c = cluster(seed, { n = 5, drop = 0.01 })
      c:tick(50)
      local lid = c:leader()
      if not lid then c:fail("no leader") end
      for _ = 1, 5 do c:propose(lid); c:tick() end
      local target = lid % 5 + 1
      local ok, err = c:node(lid):transfer_leader(target)
      if not ok then c:fail("transfer refused: " .. tostring(err)) end
      local idx, perr = c:node(lid):propose("during")
      if idx or perr ~= "transferring" then c:fail("proposal accepted during transfer") end
      for _ = 1, 20 do
        c:tick()
        if c:leader() == target then break end
      end
      -- with 1 % loss one attempt may be lost: retry once, as a caller would
      if c:leader() ~= target and c:leader() then
        c:node(c:leader()):transfer_leader(target)
        c:tick(20)
      end
      if c:leader() ~= target then c:fail("leadership did not move to " .. target) end
      c:converge(200)
      c:check_final()
    end, 50001)
  end)

  it("serves ReadIndex reads at an index covering every write acknowledged before them",
     function()
    local served = 0
    simnet.for_seeds(SEEDS, function(seed)
      local rng = simnet.rng(seed, "reads")
      local c = cluster(seed, { n = 3, drop = 0.05, delay = { 0, 1 }, reorder = true })
      local k = 0
      for t = 1, 240 do
        local lid = c:leader()
        if lid and rng:random(1, 2) == 1 then c:propose(lid) end
        -- the highest index applied anywhere so far, known before the read starts
        c.max_acked_index = c.max_committed
        if rng:random(1, 3) == 1 then
          k = k + 1
          local id = c.ids[rng:random(1, 3)]
          c:read(id, "r" .. k)
        end
        if t == 100 then c.net:isolate(c:leader() or 1) end
        if t == 160 then c.net:heal() end
        c:tick()
      end
      served = served + c.read_results
    end, 60001)
    assert.is_true(served > SEEDS * 10)
  end)
end)
