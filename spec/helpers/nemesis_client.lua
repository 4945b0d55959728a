-- The nemesis soak's clients (spec/helpers/nemesis.lua starts this as its own process, outside
-- the cluster, so that its records survive every fault done to the members):
--   luajit spec/helpers/nemesis_client.lua OUT DURATION SEED NAMES KEYS
-- Through each member's tcp:// listener (control actors /ctl and /ctl2 of spec/nodes/
-- cluster_node.lua; the nemesis never cuts the listener ports) it runs, until DURATION seconds
-- have passed:
--   - one luact.db client per member: random set/get/cas on nem/1..KEYS, each done on that
--     member (thread 1 or 2 by turns) with a 1 s deadline there;
--   - per virtual actor /nem/1..NAMES, one caller through each member, calling `hit` by name
--     (thread 1 or 2 at random) with a 1.5 s deadline there, every 80-160 ms.
-- Each operation is one line appended to OUT when it ends, with this process's wall clock at
-- send and at receipt (all clients share this one clock, which no fault slows):
--   D client member thread key op a b call ret result      (ret "-": outcome unknown)
--   V client member thread vid send recv ok token host callee_time error
-- Values are numbers, "nil", "true" or "false". Prints "done" at the end.
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"

local out_path, duration, seed = arg[1], tonumber(arg[2]), tonumber(arg[3])
local names, keys = tonumber(arg[4]) or 4, tonumber(arg[5]) or 3

luact.start({ n_core = 1, timeout = duration + 60,
              out = out_path, duration = duration, seed = seed, names = names, keys = keys }, function()
  local luact = require "luact"
  local o = luact.opts
  local out = assert(io.open(o.out, "a"))
  local function emit(...)
    local t = { ... }
    for i = 1, select("#", ...) do t[i] = (tostring(t[i]):gsub("%s", "_")) end
    out:write(table.concat(t, "\t", 1, select("#", ...)), "\n")
    out:flush()
  end
  local ctls = {}
  for i = 1, 5 do
    ctls[i] = { luact.ref(("tcp://127.0.0.%d:800%d/ctl"):format(i, i)),
                luact.ref(("tcp://127.0.0.%d:800%d/ctl2"):format(i, i)) }
  end
  local now = luact.clock.walltime
  local function ts(x) return type(x) == "number" and ("%.6f"):format(x) or x end
  local stop_at = luact.clock.get() + o.duration
  -- a small seeded generator per client (independent of math.random's implementation)
  local function rng(s)
    local x = (s % 2147483646) + 1
    return function(lo, hi)
      x = (x * 16807) % 2147483647
      if lo then return lo + x % (hi - lo + 1) end
      return x / 2147483647
    end
  end
  local running = 0

  for c = 1, 5 do
    running = running + 1
    luact.tentacle(function()
      local r = rng(o.seed * 31 + c)
      local last, n = {}, 0
      while luact.clock.get() < stop_at do
        n = n + 1
        local th = n % 2 + 1
        local ctl = ctls[c][th]
        local key = "nem/" .. r(1, o.keys)
        local x = r()
        local op, a, b
        if x < 0.4 then op, a = "set", c * 1000000 + n
        elseif x < 0.8 then op = "get"
        else op, a, b = "cas", last[key] or 0, c * 1000000 + n end
        local call = now()
        local ok, okr, res = pcall(ctl.timed_dbop, ctl, 2.5, op, 1.0, key, a, b)
        local ret = now()
        if ok and okr then
          if op == "get" then last[key] = res end
          emit("D", c, c, th, key, op, a, b, ts(call), ts(ret), res)
        else
          emit("D", c, c, th, key, op, a, b, ts(call), "-", ok and res or (type(okr) == "table" and okr.name or okr))
          -- (a member that is down: do not spin on it)
          if not ok then luact.clock.sleep(0.2) end
        end
        luact.clock.sleep(0.01 + r() * 0.04)
      end
      running = running - 1
    end)
  end

  -- per name, one caller through each member (an activation cut off with its host is still
  -- called through that host's listener, and the others through theirs: both sides of a
  -- partition keep calling)
  for v = 1, o.names do
    for m = 1, 5 do
      running = running + 1
      luact.tentacle(function()
        local r = rng(o.seed * 37 + 100 + v * 5 + m)
        local vid = "/nem/" .. v
        while luact.clock.get() < stop_at do
          local th = r(1, 2)
          local ctl = ctls[m][th]
          local send = now()
          local ok, okr, tok, host, hth, ct = pcall(ctl.timed_nhit, ctl, 2.5, vid, 1.5)
          local recv = now()
          if ok and okr then
            emit("V", v, m, th, vid, ts(send), ts(recv), "true", tok, tostring(host) .. "/" .. tostring(hth), ts(ct), "-")
          else
            local why = ok and tok or (type(okr) == "table" and okr.name or tostring(okr))
            emit("V", v, m, th, vid, ts(send), ts(recv), "false", "-", "-", "-", why)
            if not ok then luact.clock.sleep(0.2) end
          end
          luact.clock.sleep(0.08 + r() * 0.08)
        end
        running = running - 1
      end)
    end
  end

  while running > 0 do luact.clock.sleep(0.1) end
  out:close()
  io.stdout:write("done\n"); io.stdout:flush()
  luact.stop()
end)
