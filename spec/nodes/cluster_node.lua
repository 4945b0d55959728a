-- A cluster member for the cluster specs:
--   luajit spec/nodes/cluster_node.lua ADDRESS SEEDS DATADIR CTL_URL
-- SEEDS is a comma-separated list of "ip:port"; DATADIR "-" for none (a follower). Two threads.
-- Registers /ctl (thread 1) and /ctl2 (thread 2), each with the cluster and db operations run on
-- its own thread, listens on CTL_URL (tcp://) for the spec, prints "ready", and stops by itself
-- after LUACT_SPEC_LIFE seconds (default 120). LUACT_SPEC_SNAPSHOT sets the Raft snapshot interval
-- (entries), LUACT_SPEC_MAX_FRAME the largest node frame (bytes; the `max_frame` option),
-- LUACT_SPEC_AUTOPILOT the `replace_dead_voters` seconds.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"

local seeds = {}
for s in arg[2]:gmatch("[^,]+") do seeds[#seeds + 1] = s end

-- LUACT_SPEC_NODE_TLS="CERT KEY CA": node links in mutual TLS (the `tls` option).
local node_tls
do
  local cert, key, ca = (os.getenv("LUACT_SPEC_NODE_TLS") or ""):match("^(%S+) (%S+) (%S+)$")
  if cert then node_tls = { cert = cert, key = key, ca = ca } end
end

luact.start({ n_core = 2, address = arg[1], secret = "s3cret", seeds = seeds, tls = node_tls,
              datadir = arg[3] ~= "-" and arg[3] or nil, ctl = arg[4],
              life = tonumber(os.getenv("LUACT_SPEC_LIFE")) or 120,
              snapshot_entries = tonumber(os.getenv("LUACT_SPEC_SNAPSHOT")),
              replace_dead_voters = tonumber(os.getenv("LUACT_SPEC_AUTOPILOT")),
              max_frame = tonumber(os.getenv("LUACT_SPEC_MAX_FRAME")),
              timeout = (tonumber(os.getenv("LUACT_SPEC_LIFE")) or 120) + 10 }, function()
  local luact = require "luact"
  -- Runs fn(i) for i = 1..n on `workers` tentacles of this thread and waits (at most `seconds`)
  -- until they are done; `wait = false` returns at once (the methods that register, upgrade or
  -- remind many names).
  local function each_in_parallel(n, workers, seconds, fn, wait)
    local next_i, finished = 1, 0
    for _ = 1, workers do
      luact.tentacle(function()
        while next_i <= n do
          local i = next_i
          next_i = i + 1
          fn(i)
        end
        finished = finished + 1
      end)
    end
    if wait == false then return end
    local deadline = luact.clock.get() + seconds
    while finished < workers and luact.clock.get() < deadline do luact.clock.sleep(0.01) end
  end
  local function ctl()
    return {
      events = {},
      guards = {},
      writers = {},
      thread = function() return require("luact").thread_id end,
      set = function(self, k, v) return require("luact").db.set(k, v) end,
      timed_set = function(self, t, k, v) return require("luact").db.timed_set(t, k, v) end,
      get = function(self, k) return require("luact").db.get(k) end,
      local_get = function(self, k) return require("luact").db.local_get(k) end,
      -- the keys prefix..i for i in list that are not i here (linearizable reads)
      missing = function(self, prefix, list)
        local out = {}
        for _, i in ipairs(list) do
          if require("luact").db.get(prefix .. i) ~= i then out[#out + 1] = i end
        end
        return out
      end,
      me = function(self) return self.ref end,
      nap = function(self, s) require("luact").clock.sleep(s); return "woke" end,
      -- calls `url`'s actor through a direct reference (the node transport) with a long timeout
      -- in the background; probe_result tells how it ended
      start_probe = function(self, url, timeout)
        local luact = require "luact"
        local target = luact.ref(url):me()
        self.probe = nil
        -- first make sure the node transport reaches it (a connection lost in an earlier case
        -- may still be in its reconnection pause)
        local deadline = luact.clock.get() + 10
        while not pcall(target.timed_thread, target, 1) do
          if luact.clock.get() > deadline then error("cannot reach " .. url) end
          luact.clock.sleep(0.1)
        end
        luact.tentacle(function()
          local ok, e = pcall(target.timed_nap, target, timeout, timeout)
          self.probe = { ok, type(e) == "table" and e.name or tostring(e) }
        end)
        return true
      end,
      probe_result = function(self) return self.probe end,
      timed_get = function(self, t, k) return require("luact").db.timed_get(t, k) end,
      del = function(self, k) return require("luact").db.del(k) end,
      cas = function(self, k, old, new) return require("luact").db.cas(k, old, new) end,
      keys = function(self, prefix) return require("luact").db.keys(prefix) end,
      reg = function(self, k, v)
        local g, err = require("luact").db.reg(k, v)
        if g then self.guards[k] = g end
        return g ~= nil, err
      end,
      release = function(self, k) return self.guards[k]:release() end,
      members = function(self) return require("luact").cluster.members() end,
      member_state = function(self, addr)
        for _, m in ipairs(require("luact").cluster.members()) do
          if m.address == addr then return m.state end
        end
      end,
      leader = function(self) return require("luact").cluster.leader() end,
      voters = function(self) return require("luact").cluster.voters() end,
      -- luact.cluster.add_voter / remove_voter (what = "add_voter" | "remove_voter"): true, or
      -- false, the error's name (or text) and message
      change_voter = function(self, what, addr, t)
        local ok, e = pcall(require("luact").cluster[what], addr, t)
        if ok then return true end
        return false, type(e) == "table" and e.name or tostring(e), type(e) == "table" and e.message or nil
      end,
      -- the same in the background; change_result(tag) tells how it ended
      start_change = function(self, tag, what, addr, t)
        self.changes = self.changes or {}
        self.changes[tag] = nil
        require("luact").tentacle(function()
          self.changes[tag] = { self.change_voter(self, what, addr, t) }
        end)
        return true
      end,
      change_result = function(self, tag) return self.changes and self.changes[tag] end,
      -- luact.inspect.cluster() of this node or of another (by address), and this node's cluster gauges
      inspect_cluster = function(self, node) return require("luact").inspect.cluster({ node = node }) end,
      cluster_metrics = function(self) return require("luact").metrics().cluster end,
      leave = function(self) return require("luact").cluster.leave() end,
      seen = function(self) return self.events end,
      -- a bad call, to check the error the caller sees
      try = function(self, what, ...)
        local ok, err = pcall(require("luact").db[what], ...)
        return ok, tostring(err)
      end,
      -- writes prefix1..prefixN one after the other, each with a 1 s timeout, noting what was
      -- acknowledged and what failed (for the leader-kill spec)
      start_writer = function(self, prefix, n, pause)
        local luact = require "luact"
        local w = { acked = {}, failed = 0, done = false }
        self.writers[prefix] = w
        luact.tentacle(function()
          for i = 1, n do
            local ok = pcall(luact.db.timed_set, 1.0, prefix .. i, i)
            if ok then w.acked[#w.acked + 1] = i else w.failed = w.failed + 1 end
            if pause and pause > 0 then luact.clock.sleep(pause) end
          end
          w.done = true
        end)
        return true
      end,
      writer = function(self, prefix)
        local w = self.writers[prefix]
        return w.done, w.acked, w.failed
      end,
      -- a client for the linearizability check: n random set/get/cas on keys lin/1..lin/k, each
      -- with a 1 s timeout, noting call and return times (wall clock: one machine) and results
      start_history = function(self, tag, k, n, seed)
        local luact = require "luact"
        math.randomseed(seed)
        local h = { ops = {}, done = false }
        self.histories = self.histories or {}
        self.histories[tag] = h
        luact.tentacle(function()
          local last = {}
          for i = 1, n do
            local key = "lin/" .. math.random(1, k)
            local r = math.random()
            local o = { key = key, call = luact.clock.walltime() }
            local ok, res
            if r < 0.4 then
              o.op, o.v = "set", tag * 100000 + i
              ok, res = pcall(luact.db.timed_set, 1.0, key, o.v)
            elseif r < 0.8 then
              o.op = "get"
              ok, res = pcall(luact.db.timed_get, 1.0, key)
              if ok then last[key] = res end
            else
              o.op, o.old, o.new = "cas", last[key] or 0, tag * 100000 + i
              ok, res = pcall(luact.db.timed_cas, 1.0, key, o.old, o.new)
            end
            if ok then o.ret, o.result = luact.clock.walltime(), res end
            h.ops[#h.ops + 1] = o
            luact.clock.sleep(0.005 + math.random() * 0.03)
          end
          h.done = true
        end)
        return true
      end,
      history = function(self, tag)
        local h = self.histories[tag]
        return h.done, h.ops
      end,
      -- virtual actors: a room that counts its players and says where it runs, and keeps a
      -- log of the wall times it served calls at (for the partition spec)
      vreg = function(self, vid, id, multi)
        local luact = require "luact"
        local a = luact.register(vid, { multi_actor = multi or nil }, function(id, handoff)
          local luact = require "luact"
          return { id = id, players = handoff and handoff.players or {}, served = {},
            join = function(self, p)
              self.players[#self.players + 1] = p
              self.served[#self.served + 1] = luact.clock.walltime()
              return #self.players, luact.cluster.self()
            end,
            where = function(self)
              local t = luact.clock.walltime()
              self.served[#self.served + 1] = t
              -- also in this VM's log, which outlives the activation (see served_log)
              local logs = rawget(_G, "SERVED") or {}
              rawset(_G, "SERVED", logs)
              logs[self.id] = logs[self.id] or {}
              table.insert(logs[self.id], t)
              return luact.cluster.self(), luact.thread_id
            end,
            served_times = function(self) return self.served end,
            __actor_handoff__ = function(self) return { players = self.players } end }
        end, id)
        return a ~= nil
      end,
      -- Upgrades (issue 26): the room of vreg in a version `version`: join also answers the
      -- version; `version` answers it and the players it started with (handed over). With
      -- `lazy`, registers it so instead (lazy = true: no activation yet). ok, or false and the
      -- error's name or text.
      vupgrade = function(self, vid, id, version, lazy)
        local luact = require "luact"
        local ok, e = pcall(luact.register, vid, lazy and { lazy = true } or { upgrade = true }, function(id, version, handoff)
          local luact = require "luact"
          local room = { id = id, players = handoff and handoff.players or {}, version = version }
          room.started_with = #room.players
          function room:join(p)
            self.players[#self.players + 1] = p
            return #self.players, luact.cluster.self(), self.version
          end
          function room:where() return luact.cluster.self(), luact.thread_id, self.version end
          function room:version_of() return self.version, self.started_with end
          function room:__actor_handoff__() return { players = self.players } end
          return room
        end, id, version)
        if not ok then return false, type(e) == "table" and e.name or tostring(e) end
        return true
      end,
      -- the persistent counter of preg upgraded: version_of answers 2 and the count it started from
      pupgrade = function(self, vid)
        local luact = require "luact"
        local ok, e = pcall(luact.register, vid, { upgrade = true }, function(saved)
          local luact = require "luact"
          return { n = saved and saved.n or 0, started_from = saved and saved.n or false,
            incr = function(self)
              luact.save({ n = self.n + 1 })
              self.n = self.n + 1
              return self.n, luact.cluster.self()
            end,
            get = function(self) return self.n, luact.cluster.self(), self.started_from end,
            version_of = function(self) return 2, self.started_from end }
        end)
        if not ok then return false, type(e) == "table" and e.name or tostring(e) end
        return true
      end,
      -- luact.register with opts (upgrade = true and more) and a constructor that returns {},
      -- or (`ctor`) "table": a table body, "raise": one that raises:
      -- false and the error's name or text
      try_vupgrade = function(self, vid, opts, ctor)
        local body = ctor == "table" and {} or ctor == "raise" and function() error("broken new code") end
                     or function() return {} end
        local ok, e = pcall(require("luact").register, vid, opts, body)
        if ok then return true end
        return false, type(e) == "table" and e.name or tostring(e)
      end,
      -- Clients of upgrades: n tentacles, each in turn joins one of `vids` by name (waiting
      -- `pause` s between calls) until up_stop or max_rounds each. Every failure is kept with
      -- its error; per name: the joins that succeeded, the highest count answered, the highest
      -- version answered.
      start_upcalls = function(self, vids, n, max_rounds, pause)
        local luact = require "luact"
        local up = { stop = false, calls = 0, failed = {}, ok = {}, top = {}, version = {}, finished = 0, n = n }
        self.up = up
        for c = 1, n do
          luact.tentacle(function()
            for seq = 1, max_rounds do
              if up.stop then break end
              local vid = vids[(seq * n + c) % #vids + 1]
              local r = luact.ref(vid)
              local ok, count, _, version = pcall(r.join, r, "c" .. c)
              up.calls = up.calls + 1
              if ok then
                up.ok[vid] = (up.ok[vid] or 0) + 1
                up.top[vid] = math.max(up.top[vid] or 0, count)
                up.version[vid] = math.max(up.version[vid] or 0, version or 1)
              else
                up.failed[#up.failed + 1] = vid .. ": " .. (type(count) == "table" and
                  (tostring(count.name) .. ": " .. tostring(count.message)) or tostring(count))
              end
              if pause > 0 then luact.clock.sleep(pause) end
            end
            up.finished = up.finished + 1
          end)
        end
        return true
      end,
      -- stops the clients (waits for them, bounded): calls, failures, and per name the joins
      -- that succeeded, the highest count and the highest version answered
      up_stop = function(self)
        local luact = require "luact"
        local up = self.up
        up.stop = true
        local deadline = luact.clock.get() + 30
        while luact.clock.get() < deadline and up.finished < up.n do luact.clock.sleep(0.01) end
        return up.calls, up.failed, up.ok, up.top, up.version
      end,
      -- upgrades prefix1..prefixN to `version` (64 at a time): the seconds until every upgrade
      -- was committed, and the failures
      vupgrade_many = function(self, prefix, n, version)
        local luact = require "luact"
        local t0, failed = luact.clock.get(), {}
        each_in_parallel(n, 64, 120, function(i)
          local ok, e = self.vupgrade(self, prefix .. i, i, version)
          if not ok then failed[#failed + 1] = prefix .. i .. ": " .. tostring(e) end
        end)
        return luact.clock.get() - t0, failed
      end,
      -- registers prefix1..prefixN as rooms (64 at a time) on this thread: how many registered
      vreg_rooms = function(self, prefix, n)
        local luact = require "luact"
        local done = 0
        each_in_parallel(n, 64, 120, function(i)
          if pcall(self.vreg, self, prefix .. i, i) then done = done + 1 end
        end)
        return done
      end,
      -- how many of prefix1..prefixN answer version `version` now (each asked once, by name)
      count_version = function(self, prefix, n, version)
        local luact = require "luact"
        local c = 0
        for i = 1, n do
          local r = luact.ref(prefix .. i)
          local ok, v = pcall(r.timed_version_of, r, 5)
          if ok and v == version then c = c + 1 end
        end
        return c
      end,
      -- registers prefix0001..prefixNNNN as lazy names (no activation), 16 at a time; the count
      -- registered
      vreg_many = function(self, prefix, n)
        local luact = require "luact"
        local done = 0
        each_in_parallel(n, 16, 30, function(i)
          local ok = pcall(luact.register, ("%s%04d"):format(prefix, i), { lazy = true },
            function() return { hi = function() return "hi" end } end)
          if ok then done = done + 1 end
        end)
        return done
      end,
      try_vreg = function(self, vid)
        local ok, e = pcall(require("luact").register, vid, function() return {} end)
        return ok, type(e) == "table" and e.name or tostring(e)
      end,
      vunreg = function(self, vid) return require("luact").unregister(vid) end,
      -- a call by name with a timeout: ok, results... or false, the error's name
      vcall = function(self, vid, method, t, ...)
        local luact = require "luact"
        local r = luact.ref(vid)
        local res = { pcall(r["timed_" .. method], r, t or 10, ...) }
        if not res[1] then return false, type(res[2]) == "table" and res[2].name or tostring(res[2]) end
        return unpack(res, 1, 4)
      end,
      resolve = function(self, vid) return require("luact").resolve(vid) ~= nil end,
      -- pins the activation vid resolves to now, for dcall
      pin = function(self, vid)
        self.pins = self.pins or {}
        self.pins[vid] = require("luact").resolve(vid)
        return self.pins[vid] ~= nil
      end,
      -- when activations of this VM answered `where` (wall clock)
      served_log = function(self, id) return (rawget(_G, "SERVED") or {})[id] or {} end,
      -- calls the pinned activation of vid every 20 ms for `seconds` (successes land in its log)
      -- Rolling restart clients (spec/nodes/rolling_restart_spec.lua): n tentacles, each in
      -- turn calls one of `vids` by name and writes a key of its own, until roll_stop (or
      -- max_rounds each); every failure is kept with its error, every acknowledged key too.
      start_roll = function(self, vids, n, max_rounds)
        local luact = require "luact"
        local roll = { stop = false, calls = 0, writes = 0, failed = {}, acked = {} }
        self.roll = roll
        local function describe(e)
          return type(e) == "table" and (tostring(e.name) .. ": " .. tostring(e.message)) or tostring(e)
        end
        for c = 1, n do
          luact.tentacle(function()
            for seq = 1, max_rounds do
              if roll.stop then break end
              local vid = vids[(seq + c) % #vids + 1]
              local r = luact.ref(vid)
              local ok, e = pcall(r.where, r)
              roll.calls = roll.calls + 1
              if not ok then roll.failed[#roll.failed + 1] = vid .. ": " .. describe(e) end
              local key = ("roll/%d/%d"):format(c, seq)
              local wok, we = pcall(luact.db.set, key, seq)
              roll.writes = roll.writes + 1
              if wok then roll.acked[#roll.acked + 1] = { key, seq }
              else roll.failed[#roll.failed + 1] = key .. ": " .. describe(we) end
              luact.clock.sleep(0.01)
            end
          end)
        end
        return true
      end,
      roll_stop = function(self) self.roll.stop = true; return true end,
      -- calls, writes, the failures, and how many acknowledged writes a read now misses
      roll_result = function(self)
        local luact = require "luact"
        local roll, missing = self.roll, {}
        for _, kv in ipairs(roll.acked) do
          local ok, v = pcall(luact.db.timed_get, 10, kv[1])
          if not ok or v ~= kv[2] then missing[#missing + 1] = kv[1] .. " = " .. tostring(v) end
        end
        return roll.calls, roll.writes, roll.failed, #roll.acked, missing
      end,
      -- stops this member the graceful way: luact.stop from a tentacle hands its activations
      -- over (and a leader its leadership) first
      shutdown = function(self)
        local luact = require "luact"
        luact.tentacle(function() luact.stop() end)
        return true
      end,
      start_hammer = function(self, vid, seconds)
        local luact = require "luact"
        local target = self.pins[vid]
        luact.tentacle(function()
          local stop = luact.clock.get() + seconds
          while luact.clock.get() < stop do
            pcall(target.timed_where, target, 0.5)
            luact.clock.sleep(0.02)
          end
        end)
        return true
      end,
      -- a call to the pinned activation of vid by direct reference (not by name): ok, results...
      -- or false, the error's name, its message
      dcall = function(self, vid, method, t, ...)
        local target = self.pins[vid]
        local res = { pcall(target["timed_" .. method], target, t or 2, ...) }
        if not res[1] then
          return false, type(res[2]) == "table" and res[2].name or tostring(res[2]),
                 type(res[2]) == "table" and res[2].message or nil
        end
        return unpack(res, 1, 3)
      end,
      -- the same in the background; dcall_result() tells how it ended
      start_dcall = function(self, tag, vid, method, t, ...)
        local luact = require "luact"
        self.dcall_res = self.dcall_res or {}
        self.dcall_res[tag] = nil
        local args = { n = select("#", ...), ... }
        luact.tentacle(function()
          self.dcall_res[tag] = { self.dcall(self, vid, method, t, unpack(args, 1, args.n)) }
        end)
        return true
      end,
      dcall_result = function(self, tag) return self.dcall_res[tag] end,
      -- a persistent counter (lazy: registered without an activation): incr saves n + 1 (t: the save's timeout) and only then counts it;
      -- slow_incr waits `pause` seconds between reading n and saving
      preg = function(self, vid, idle, lazy)
        local luact = require "luact"
        local a = luact.register(vid, { persist = true, idle_timeout = idle, lazy = lazy }, function(saved)
          local luact = require "luact"
          return { n = saved and saved.n or 0, started_from = saved and saved.n or false,
            incr = function(self, t, pause)
              local n = self.n + 1
              if pause then luact.clock.sleep(pause) end
              if t then luact.timed_save(t, { n = n }) else luact.save({ n = n }) end
              self.n = n
              return n, luact.cluster.self()
            end,
            get = function(self) return self.n, luact.cluster.self(), self.started_from end,
            save_bad = function(self, what)
              local v = what == "function" and { f = function() end } or ("x"):rep(70000)
              local ok, e = pcall(luact.save, v)
              return ok, tostring(e)
            end,
          }
        end)
        return a ~= nil
      end,
      -- a name whose __actor_reminder__ logs (in this VM, outliving the activation) the wall
      -- time and reminder of each call it gets; ring_log(vid) reads that log
      rreg = function(self, vid, lazy)
        local luact = require "luact"
        return luact.register(vid, { lazy = lazy }, function(vid)
          local luact = require "luact"
          return { __actor_reminder__ = function(self, name, data)
            local logs = rawget(_G, "RINGS") or {}
            rawset(_G, "RINGS", logs)
            logs[vid] = logs[vid] or {}
            table.insert(logs[vid], { luact.clock.walltime(), name, data, luact.cluster.self() })
          end }
        end, vid) ~= nil
      end,
      ring_log = function(self, vid) return (rawget(_G, "RINGS") or {})[vid] or {} end,
      -- Many names with a reminder each (bench/reminders.lua): registers prefix..1..n (64 at a
      -- time; `lazy`: without a first activation, so the reminder's wake places each by
      -- rendezvous hashing over the live members and their threads; else on this thread), each
      -- an activation that counts how late its reminder beats come (rounded to the ms, in LATE
      -- of the VM running it) against due times t0 + k * every, and notes in SEEN[vid] the wall
      -- time of its first and last beat in that VM; then sets on each a reminder every `every`
      -- s from t0. Returns at once; remind_progress says how many names and reminders were set
      -- so far.
      remind_many = function(self, prefix, n, t0, every, lazy)
        local luact = require "luact"
        local progress = { 0, 0 }
        self.remind_progress_of = progress
        local function one(i)
          local vid = prefix .. i
          luact.register(vid, { lazy = lazy or nil }, function(vid, t0, every)
            local luact = require "luact"
            return { __actor_reminder__ = function()
              local late = rawget(_G, "LATE") or {}
              rawset(_G, "LATE", late)
              local now = luact.clock.walltime()
              local k = math.floor((now - t0) / every + 0.5)
              local ms = math.floor((now - (t0 + k * every)) * 1000 + 0.5)
              late[ms] = (late[ms] or 0) + 1
              local seen = rawget(_G, "SEEN") or {}
              rawset(_G, "SEEN", seen)
              local s = seen[vid]
              if s then s[2] = now else seen[vid] = { now, now } end
            end }
          end, vid, t0, every)
          progress[1] = progress[1] + 1
          luact.reminder(vid, "beat", { every = every, at = t0 })
          progress[2] = progress[2] + 1
        end
        each_in_parallel(n, 64, 0, one, false)
        return true
      end,
      remind_progress = function(self) return unpack(self.remind_progress_of) end,
      -- this VM's reminder lateness histogram { [ms] = beats } (see remind_many); `reset`
      -- empties it after reading
      lateness = function(self, reset)
        local late = rawget(_G, "LATE") or {}
        if reset then rawset(_G, "LATE", {}) end
        return late
      end,
      -- the names whose reminder beat in this VM since wall time t (their last beat), and
      -- those whose first beat in this VM came at t or later: { [vid] = its wall time }
      remind_seen = function(self, t)
        local last, first = {}, {}
        for vid, s in pairs(rawget(_G, "SEEN") or {}) do
          if s[2] >= t then last[vid] = s[2] end
          if s[1] >= t then first[vid] = s[1] end
        end
        return last, first
      end,

      remind = function(self, vid, name, opts)
        local ok, r = pcall(require("luact").reminder, vid, name, opts)
        if not ok then return false, type(r) == "table" and r.name or tostring(r) end
        return r
      end,
      -- the states of vid's activations in this node's replica, sorted
      vstates = function(self, vid)
        local entry = require("luact.cluster.replica").state():vid(vid)
        local out = {}
        for _, act in pairs(entry and entry.acts or {}) do out[#out + 1] = act.state end
        table.sort(out)
        return out
      end,
      -- a call to `url` (tcp://node/vid: through that node's listener): ok, results or false, error name
      ucall = function(self, url, method, t)
        local r = require("luact").ref(url)
        local res = { pcall(r["timed_" .. method], r, t or 10) }
        if not res[1] then return false, type(res[2]) == "table" and res[2].name or tostring(res[2]) end
        return unpack(res, 1, 3)
      end,
      -- the state the registry holds for vid on this node's replica (decoded), or nil
      saved = function(self, vid)
        local entry = require("luact.cluster.replica").state():vid(vid)
        return entry and entry.saved and require("luact.actor.codec").from_string(entry.saved) or nil
      end,
      -- calls vid.incr by name n times (pause s between calls, each with a 1 s timeout): every
      -- acknowledged value ({ value, where, wall time }), and the error names of the failed
      -- calls, in order
      start_counter = function(self, vid, n, pause)
        local luact = require "luact"
        local c = { acked = {}, failed = {}, done = false }
        self.counters = self.counters or {}
        self.counters[vid] = c
        local r = luact.ref(vid)
        luact.tentacle(function()
          for _ = 1, n do
            local ok, v, where = pcall(r.timed_incr, r, 1.0)
            if ok then c.acked[#c.acked + 1] = { v, where, luact.clock.walltime() } else
              c.failed[#c.failed + 1] = type(v) == "table" and v.name or tostring(v)
            end
            if pause > 0 then luact.clock.sleep(pause) end
          end
          c.done = true
        end)
        return true
      end,
      counter = function(self, vid)
        local c = self.counters[vid]
        return c.done, c.acked, c.failed
      end,
      -- calls vid.where by name every 5 ms (each with a 0.5 s timeout) until an activation on
      -- a node other than `old` answers; failover_result() is then that answer's wall time
      start_failover_probe = function(self, vid, old, seconds)
        local luact = require "luact"
        self.failover = nil
        local r = luact.ref(vid)
        luact.tentacle(function()
          local stop = luact.clock.get() + seconds
          while luact.clock.get() < stop do
            local ok, where = pcall(r.timed_where, r, 0.5)
            if ok and where ~= old then self.failover = { luact.clock.walltime(), where }; return end
            luact.clock.sleep(0.005)
          end
          self.failover = { false }
        end)
        return true
      end,
      failover_result = function(self) return self.failover end,
      -- monitors the activation vid resolves to now; monitored() tells how it ended
      monitor_name = function(self, vid)
        local luact = require "luact"
        self.monitored_reason = nil
        luact.monitor(luact.ref(vid), function(_, reason)
          self.monitored_reason = type(reason) == "table" and reason.name or tostring(reason)
        end)
        return true
      end,
      monitored = function(self) return self.monitored_reason end,
      walltime = function(self) return require("luact").clock.walltime() end,
      -- for the nemesis soak (spec/helpers/nemesis.lua): one db operation with an inner
      -- deadline, answering ok, result or false, the error's name
      dbop = function(self, op, t, key, a, b)
        local db = require("luact").db
        local ok, r
        if op == "set" then ok, r = pcall(db.timed_set, t, key, a)
        elseif op == "get" then ok, r = pcall(db.timed_get, t, key)
        else ok, r = pcall(db.timed_cas, t, key, a, b) end
        if ok then return true, r end
        return false, type(r) == "table" and r.name or tostring(r)
      end,
      -- a virtual actor whose every activation draws a random token in its constructor and
      -- answers `hit` with it, where it runs and its own wall time
      nreg = function(self, vid)
        local a = require("luact").register(vid, function(name)
          local luact = require "luact"
          local f = io.open("/dev/urandom", "rb")
          local tok = (f:read(8):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
          f:close()
          return { name = name, token = tok,
            hit = function(self)
              return self.token, luact.cluster.self(), luact.thread_id, luact.clock.walltime()
            end }
        end, vid)
        return a ~= nil
      end,
      -- vid:hit() by name with deadline t: true, token, host, thread, callee time; or false, why
      nhit = function(self, vid, t)
        local r = require("luact").ref(vid)
        local ok, tok, host, th, ct = pcall(r.timed_hit, r, t)
        if not ok then return false, type(tok) == "table" and tok.name or tostring(tok) end
        return true, tok, host, th, ct
      end,
      lease_info = function(self)
        local C = require("luact.ffi").C
        return { until_ = C.luact_lease_until(), now = C.luact_clock_monotonic(),
                 gen = C.luact_lease_current(),
                 boot = require("luact").cluster.boot_of_node(), leader = require("luact").cluster.leader() }
      end,
      -- for bench/vactor_names.lua: registers prefix..i (i = from..to) lazy and persistent,
      -- `conc` at a time; returns how many were registered, how many failed, seconds taken
      lazy_many = function(self, prefix, from, to, conc)
        local luact = require "luact"
        local ctor = function(saved)
          return { n = saved and saved.n or 0,
                   get = function(self) return self.n, require("luact").cluster.self() end }
        end
        local next_i, done, failed, t0 = from, 0, 0, luact.clock.get()
        local workers = {}
        for w = 1, conc do
          workers[w] = luact.tentacle(function()
            while next_i <= to do
              local i = next_i
              next_i = i + 1
              if pcall(luact.register, prefix .. i, { persist = true, lazy = true }, ctor) then
                done = done + 1
              else
                failed = failed + 1
              end
            end
          end)
        end
        luact.event.join(nil, unpack(workers))
        return done, failed, luact.clock.get() - t0
      end,
      -- bytes of this node's registry replica as a snapshot (what a member that fell behind is sent)
      snapshot_bytes = function(self) return #require("luact.cluster.replica").state():snapshot() end,
      -- snapshots this node's replica installed since it started
      restores = function(self) return require("luact.cluster.replica").stats.restores end,
      -- bytes: thread 1's Lua heap after a full collection, and the process's resident set
      mem = function(self)
        collectgarbage("collect"); collectgarbage("collect")
        local f = io.open("/proc/self/status")
        local rss = tonumber(f:read("*a"):match("VmRSS:%s*(%d+)")) * 1024
        f:close()
        return collectgarbage("count") * 1024, rss
      end,
      -- the first call (get, by name) to k of the names prefix..1..n, one after the other:
      -- the sorted latencies in seconds, and how many failed
      first_calls = function(self, prefix, n, k, t)
        local luact = require "luact"
        local lat, failed, seen = {}, 0, {}
        for _ = 1, k do
          local i
          repeat i = math.random(1, n) until not seen[i]
          seen[i] = true
          local r = luact.ref(prefix .. i)
          local t0 = luact.clock.get()
          if pcall(r.timed_get, r, t or 10) then lat[#lat + 1] = luact.clock.get() - t0 else failed = failed + 1 end
        end
        table.sort(lat)
        return lat, failed
      end,
      stop = function() require("luact").stop() end,
      -- opens another listener on this thread (opts: luact.listen's); returns its port
      listen = function(self, url, opts) return require("luact").listen(url, opts).port end,
      -- makes n more actors on this thread (kept alive here); returns how many it made in all
      spawn = function(self, n)
        local luact = require "luact"
        self.kids = self.kids or {}
        for _ = 1, n do self.kids[#self.kids + 1] = luact({ __name = "kid", ping = function() return true end }) end
        return #self.kids
      end,
      -- calls /ctl2 (thread 2 of this node) every `pause` s for `seconds`: calls across threads,
      -- which the metrics count (sent on this thread, received on thread 2)
      start_pinger = function(self, seconds, pause)
        local luact = require "luact"
        luact.tentacle(function()
          local other = luact.ref("/ctl2")
          local stop = luact.clock.get() + seconds
          while luact.clock.get() < stop do
            pcall(other.timed_thread, other, 1)
            luact.clock.sleep(pause or 0.01)
          end
        end)
        return true
      end,
    }
  end
  local body = ctl()
  -- every membership event this thread sees, with the time it saw it
  luact.tentacle(function()
    local ev = luact.cluster.events()
    while true do
      local tp, _, member = luact.event.wait(nil, ev)
      body.events[#body.events + 1] = { tp, member and member.address, luact.clock.walltime() }
    end
  end)
  if luact.thread_id == 2 then
    body.ref = luact.register("/ctl2", { scope = "node" }, body)
    return
  end
  body.ref = luact.register("/ctl", { scope = "node" }, body)
  luact.listen(luact.opts.ctl)
  luact.listen((luact.opts.ctl:gsub("^tcp://", "http://"):gsub(":80(%d%d)$", ":90%1")), { dashboard = true })
  while not luact.resolve("/ctl2") do luact.clock.sleep(0.001) end
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(luact.opts.life)
  luact.stop()
end)
