-- Both halves of a cross-thread call on one thread, for profiling: each call frame goes into
-- this thread's own inbox, the loop runs the callee's side (decode, task, reply) and then the
-- caller's (reply, wake, resume), so `luajit -jp=vF bench/call_loopback.lua` shows where the
-- Lua time of a call goes with no second thread and no cross-core hand-off in the picture.
-- `luajit bench/call_loopback.lua [CALLERS [CALLS]]` (defaults 64 and 1 000 000). Not in the
-- table: there is no peer to compare it with.
local common = require "bench.common"
local luact = require "luact"

local callers = tonumber(arg[1]) or 64
local total = tonumber(arg[2]) or 1000000
local seconds = luact.start({ n_core = 1, timeout = 120, callers = callers, total = total }, function()
  local luact = require "luact"
  local codec = require "luact.actor.codec"
  local call = require "luact.actor.call"
  local host = require "luact.actor.host"
  local loop = require "luact.loop"
  local clock = luact.clock
  local a = luact({ hoge = function(self, x) return x end })
  local _, _, e, l = require("luact.actor.ref").parts(a)
  -- what a call to another thread does (call.dispatch's remote path), addressed to thread 1
  local function one(i)
    local corr = call.new_corr()
    local deadline = clock.get() + call.DEFAULT_TIMEOUT
    local p, len = codec.encode_call(l, e, "hoge", true, corr, 1, host.MACHINE, call.DEFAULT_TIMEOUT, 1, i)
    loop.send_bytes(1, p, len)
    return call.await(corr, host.MACHINE, deadline, "hoge", 1, e, l)
  end
  for i = 1, 1000 do assert(one(i) == i) end
  local callers, total = luact.opts.callers, luact.opts.total
  local per = math.floor(total / callers)
  local t0 = clock.get()
  local ts = {}
  for c = 1, callers do ts[c] = luact.tentacle(function() for i = 1, per do one(i) end end) end
  luact.event.join(nil, unpack(ts))
  luact.stop(clock.get() - t0)
end)
common.report("call_loopback_" .. callers, { n = total, callers = callers, seconds = seconds,
  rate = total / seconds, ns_per_call = seconds / total * 1e9 }, { "n", "callers", "seconds", "rate", "ns_per_call" })
