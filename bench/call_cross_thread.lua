-- Sync calls per second from thread 1 to an actor on thread 2, with C concurrent callers
-- (`luajit bench/call_cross_thread.lua C`; call_cross_thread_1.lua and _64.lua set C; BENCH_TOTAL=n
-- changes how many calls are made, BENCH_ARGS=3 passes three arguments instead of one).
-- With BENCH_ARGS the case name gets an "_args3" suffix: not a case of the table.
-- BENCH_MARKED=1 (or the global BENCH_MARKED, call_cross_thread_64_marked.lua) marks the
-- method for a per-method duration histogram (`__actor_metrics__`): case "..._marked", the
-- cost of that metric against the unmarked case (target: within 3 %).
-- Every answer is checked.
local common = require "bench.common"
local luact = require "luact"

local callers = tonumber(arg[1]) or 1
local total = tonumber(os.getenv("BENCH_TOTAL")) or (callers == 1 and 200000 or 1000000)
local three = os.getenv("BENCH_ARGS") == "3"
local marked = os.getenv("BENCH_MARKED") == "1" or rawget(_G, "BENCH_MARKED") == true
local seconds = luact.start({ n_core = 2, timeout = 120, callers = callers, total = total, three = three,
                                 marked = marked }, function()
  local luact = require "luact"
  if luact.thread_id == 2 then
    luact.register("/bench/echo", { hoge = function(self, x) return x end,
      __actor_metrics__ = luact.opts.marked and { actor = "echo", methods = { "hoge" } } or nil })
    return
  end
  local names = require "luact.actor.names"
  while not names.resolve("/bench/echo") do luact.clock.sleep(0.001) end
  local a = require("luact.actor.ref").new(names.resolve("/bench/echo"))  -- no lookup per call
  local callers, total = luact.opts.callers, luact.opts.total
  for i = 1, 1000 do a:hoge(i) end
  local per = math.floor(total / callers)
  local t0 = luact.clock.get()
  local ts = {}
  local body = function()
    for i = 1, per do if a:hoge(i) ~= i then error("a wrong answer") end end
  end
  if luact.opts.three then
    body = function() for i = 1, per do if a:hoge(i, i, i) ~= i then error("a wrong answer") end end end
  end
  for c = 1, callers do ts[c] = luact.tentacle(body) end
  luact.event.join(nil, unpack(ts))
  luact.stop(luact.clock.get() - t0, per * callers)
end)
common.report("call_cross_thread_" .. callers .. (three and "_args3" or "") .. (marked and "_marked" or ""), { n = total, callers = callers, seconds = seconds, rate = total / seconds },
  { "n", "callers", "seconds", "rate" })
