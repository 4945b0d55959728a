-- A node for metrics_spec: `luajit spec/nodes/metrics_node.lua HTTP_URL PLAIN_HTTP_URL ADDRESS
-- SECRET TCP_URL`. Three threads; /svc/driver (thread 1) makes calls to a worker on thread 2 and
-- one on thread 3 when asked (POST /svc/driver/burst [n]); /svc/room (thread 2) has a timed
-- method `join` (__actor_metrics__), /svc/rooms:make() returns a new such actor of thread 2;
-- HTTP_URL serves /metrics, PLAIN_HTTP_URL does not, TCP_URL is a tcp:// listener, ADDRESS the
-- node's address. Prints "ready" and stops by itself after 60 s.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"

luact.start({ n_core = 3, timeout = 60, address = arg[3], secret = arg[4] }, function()
  local luact = require "luact"
  local worker = { ping = function(self, x) return x end }
  local function room()
    return { __actor_metrics__ = { actor = "room", methods = { "join" } },
             join = function(self, x) return x end, leave = function(self, x) return x end }
  end
  if luact.thread_id == 2 then
    luact.register("/svc/w2", worker)
    luact.register("/svc/room", room())
    luact.register("/svc/rooms", { make = function() return require("luact")(room()) end })
    return
  end
  if luact.thread_id == 3 then luact.register("/svc/w3", worker) return end
  -- thread 1: wait until both workers are registered, then serve
  local w2, w3 = luact.ref("/svc/w2"), luact.ref("/svc/w3")
  for _ = 1, 200 do
    if luact.resolve("/svc/w2") and luact.resolve("/svc/w3") then break end
    luact.clock.sleep(0.01)
  end
  luact.register("/svc/driver", { burst = function(self, n)
    n = math.min(tonumber(n) or 100, 10000)
    for i = 1, n do
      if i % 2 == 0 then w2:ping(i) else w3:ping(i) end
    end
    return n
  end })
  luact.listen(arg[1], { metrics = true })
  luact.listen(arg[2])
  luact.listen(arg[5])
  print("ready")
  io.stdout:flush()
end)
