-- One cluster member for the cluster benchmarks (driven by bench/cluster.py, inside a network
-- namespace):   luajit bench/cluster_member.lua ADDRESS SEEDS DATADIR CTL_FILE
-- SEEDS: comma-separated "ip:port" (the Raft voters); DATADIR "-" for a follower. Two threads
-- (BENCH_N_CORE). Thread 1 prints, one per line, flushed:
--   ev TYPE ADDRESS WALLTIME     every luact.cluster.events() event it sees (leader: the new one)
--   converged WALLTIME           once it first sees BENCH_EXPECT (default 5) members, all alive,
--                                and a leader
--   {json}                       the result of a write/read command
--   w START END OK               one per write of the `stream` command (wall-clock seconds)
-- and polls CTL_FILE every 10 ms (BENCH_CTL_POLL seconds) for a command line "SEQ CMD ARGS..." (a new SEQ runs it once):
--   write C SECONDS [THREAD]     C tentacles doing luact.db.set for SECONDS, keys b/0..b/999
--   read C SECONDS [THREAD]      C tentacles doing luact.db.get (linearizable) on b/0..b/999
--   save C SECONDS [THREAD]      C tentacles calling bump (one luact.save each) on 1000
--                                persistent virtual actors registered on thread 1 (thread 1 only)
--   stream SECONDS               one writer, luact.db.timed_set(5, ...) back to back
-- THREAD (1 or 2) is the thread the tentacles run on. It stops by itself after BENCH_LIFE s.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"

local seeds = {}
for s in arg[2]:gmatch("[^,]+") do seeds[#seeds + 1] = s end
local life = tonumber(os.getenv("BENCH_LIFE")) or 120

luact.start({ n_core = tonumber(os.getenv("BENCH_N_CORE")) or 2, address = arg[1], secret = "bench",
              seeds = seeds, datadir = arg[3] ~= "-" and arg[3] or nil, ctl = arg[4],
              expect = tonumber(os.getenv("BENCH_EXPECT")) or 5, life = life, timeout = life + 30 }, function()
  local luact = require "luact"
  local clock = luact.clock
  local KEYS = 1000

  -- C tentacles on this thread running op(i) for `seconds`; returns { n, seconds, lat (C == 1) }
  local function load(c, seconds, op)
    for i = 1, 200 do op(i) end                       -- warm up (connections, traces)
    -- this member's own fsyncs during the load (its Raft storage's jobs come back to thread 1,
    -- which counts them: counted only when the load runs there too)
    local sf = package.loaded["luact.cluster.raft.storage_file"]
    local fsyncs0 = sf and sf.fsyncs
    local n, lat, stop_at = 0, {}, clock.get() + seconds
    local t0 = clock.get()
    local ts = {}
    for w = 1, c do
      ts[w] = luact.tentacle(function()
        local i = w * 7919
        while clock.get() < stop_at do
          local s = clock.get()
          op(i)
          n = n + 1
          if c == 1 then lat[#lat + 1] = clock.get() - s end
          i = i + 1
        end
      end)
    end
    luact.event.join(nil, unpack(ts))
    return { n = n, seconds = clock.get() - t0, lat = lat, fsyncs = fsyncs0 and sf.fsyncs - fsyncs0 }
  end

  -- persistent virtual actors /bsave/0..999 (registered on this thread): bump saves its count
  local savers = {}
  local function register_savers()
    if savers[0] then return end
    local ts = {}
    for w = 1, 64 do
      ts[w] = luact.tentacle(function()
        for i = w - 1, KEYS - 1, 64 do
          luact.register("/bsave/" .. i, { persist = true }, function(saved)
            local luact = require "luact"
            return { n = saved and saved.n or 0,
              bump = function(self)
                local n = self.n + 1
                luact.save({ n = n })
                self.n = n
                return n
              end }
          end)
          savers[i] = luact.ref("/bsave/" .. i)
        end
      end)
    end
    luact.event.join(nil, unpack(ts))
  end

  local ops = {
    write = function(i) luact.db.set("b/" .. i % KEYS, i) end,
    read = function(i) luact.db.get("b/" .. i % KEYS) end,
    save = function(i) savers[i % KEYS]:bump() end,
  }
  local function run_load(kind, c, seconds)
    if kind == "read" then for i = 0, KEYS - 1 do luact.db.set("b/" .. i, i) end end
    if kind == "save" then register_savers() end
    local r = load(c, seconds, ops[kind])
    table.sort(r.lat)
    local function pct(p) return #r.lat > 0 and r.lat[math.max(1, math.ceil(p * #r.lat))] * 1e6 or nil end
    return { n = r.n, seconds = r.seconds, p50 = pct(0.5), p99 = pct(0.99), fsyncs = r.fsyncs }
  end

  -- a body on each thread that runs a load there
  local loader = { run = function(self, kind, c, seconds) return run_load(kind, c, seconds) end }
  if luact.thread_id ~= 1 then
    luact.register("/bench_loader" .. luact.thread_id, { scope = "node" }, loader)
    return
  end

  local out = io.stdout
  local function say(s) out:write(s, "\n"); out:flush() end

  luact.tentacle(function()
    local ev = luact.cluster.events()
    while true do
      local tp, _, m = luact.event.wait(nil, ev)
      say(("ev %s %s %.6f"):format(tp, m and m.address or "-", clock.walltime()))
    end
  end)
  luact.tentacle(function()
    local expect = luact.opts.expect
    while true do
      local ms = luact.cluster.members()
      local alive = 0
      for _, m in ipairs(ms) do if m.state == "alive" then alive = alive + 1 end end
      if alive >= expect and luact.cluster.leader() then
        say(("converged %.6f"):format(clock.walltime()))
        return
      end
      clock.sleep(0.005)
    end
  end)

  local function json(case, f)
    local parts = { ('"case":"%s"'):format(case), '"impl":"luact"' }
    for _, k in ipairs({ "n", "callers", "thread", "seconds", "rate", "p50_us", "p99_us", "fsyncs", "fsyncs_per_write" }) do
      if f[k] then parts[#parts + 1] = ('"%s":%s'):format(k, f[k] == math.floor(f[k]) and ("%d"):format(f[k]) or ("%.6g"):format(f[k])) end
    end
    say("{" .. table.concat(parts, ",") .. "}")
  end

  local function run(cmd, a, b, t)
    if cmd == "stream" then
      local seconds = tonumber(a)
      local stop_at = clock.get() + seconds
      local i = 0
      while clock.get() < stop_at do
        i = i + 1
        local s = clock.walltime()
        local ok = pcall(luact.db.timed_set, 5, "s/" .. i % KEYS, i)
        say(("w %.6f %.6f %s"):format(s, clock.walltime(), ok and "1" or "0"))
      end
      say("stream done")
      return
    end
    if cmd ~= "write" and cmd ~= "read" and cmd ~= "save" then say("bad command " .. tostring(cmd)); return end
    local c, seconds, thread = tonumber(a), tonumber(b), tonumber(t) or 1
    local r
    if thread == 1 then
      r = run_load(cmd, c, seconds)
    else
      local l = luact.resolve("/bench_loader" .. thread)
      r = l:timed_run(seconds + 60, cmd, c, seconds)
    end
    json(("cluster_%s_%d"):format(cmd, c), { n = r.n, callers = c, thread = thread, seconds = r.seconds,
      rate = r.n / r.seconds, p50_us = r.p50, p99_us = r.p99, fsyncs = r.fsyncs,
      fsyncs_per_write = cmd == "write" and r.fsyncs and r.n > 0 and r.fsyncs / r.n or nil })
  end

  luact.tentacle(function()
    local last = nil
    while true do
      local f = io.open(luact.opts.ctl)
      local line = f and f:read("*l")
      if f then f:close() end
      local seq, cmd, a, b, t = (line or ""):match("^(%S+)%s+(%S+)%s*(%S*)%s*(%S*)%s*(%S*)")
      if seq and seq ~= last then
        last = seq
        local ok, err = pcall(run, cmd, a, b, t)
        if not ok then say("error " .. tostring(err):gsub("\n", " ")) end
      end
      clock.sleep(tonumber(os.getenv("BENCH_CTL_POLL")) or 0.01)
    end
  end)
  say("started")
  clock.sleep(luact.opts.life)
  luact.stop()
end)
