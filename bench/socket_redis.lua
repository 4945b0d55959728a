-- Redis round trips through the luact.socket Redis client of spec/examples: CONNS connections
-- (one tentacle each, one thread) send PING for SECONDS, one at a time (pipeline 1) or PIPE per
-- write, and print {"case":"socket_redis_pN","impl":"luact","rate":..}.
-- Usage: luajit bench/socket_redis.lua PORT SECONDS CONNS PIPE (bench/sockets.sh compares
-- redis-benchmark -t ping_mbulk with the same connections and pipelining).
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"
local common = require "bench.common"
local port, seconds, conns, pipe = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])

local rate = luact.start({ n_core = 1, port = port, seconds = seconds, conns = conns, pipe = pipe }, function()
  local luact = require "luact"
  local redis = require "examples.redis"
  local o = luact.opts
  local until_t = luact.clock.get() + o.seconds
  local count, ts = 0, {}
  local cmds = {}
  for i = 1, o.pipe do cmds[i] = { "PING" } end
  for i = 1, o.conns do
    ts[i] = luact.tentacle(function()
      local c = assert(redis.connect("tcp://127.0.0.1:" .. o.port))
      local n = 0
      while luact.clock.get() < until_t do
        if o.pipe == 1 then assert(c:call("PING")) else assert(c:pipeline(cmds)) end
        n = n + o.pipe
      end
      count = count + n
      c:close()
    end)
  end
  for i = 1, o.conns do luact.event.wait(nil, ts[i]) end
  luact.stop(count / o.seconds)
end)
common.report("socket_redis_p" .. pipe, { conns = conns, rate = rate }, { "conns", "rate" })
