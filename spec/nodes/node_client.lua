-- A node client for node_spec (a process with the secret and no address): `luajit
-- spec/nodes/node_client.lua SECRET TCP_URL LABEL SECONDS`. Makes an actor on the node (through
-- its listener) and calls it over the node link for SECONDS (at most 5000 calls), each with a
-- 1 s timeout; prints "LABEL ready" after the first answer, then "LABEL ok=N wrong=N failed=N
-- first_error=..." (wrong: an answer that was not this client's).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"

local out = luact.start({ n_core = 1, secret = arg[1], timeout = 60, url = arg[2], label = arg[3],
                          seconds = tonumber(arg[4]) }, function()
  local luact = require "luact"
  local o = luact.opts
  local r = { ok = 0, wrong = 0, failed = 0 }
  local mine = o.label .. "-value"
  local made = luact.ref(o.url .. "/svc/factory"):make(mine)
  local deadline = luact.clock.get() + o.seconds
  local n = 0
  while luact.clock.get() < deadline and n < 5000 do
    n = n + 1
    local ok, v = pcall(made.timed_get, made, 1)
    if not ok then
      r.failed = r.failed + 1
      r.first_error = r.first_error or (type(v) == "table" and (v.name .. ": " .. tostring(v.message)) or tostring(v))
    elseif v == mine then
      r.ok = r.ok + 1
    else
      r.wrong = r.wrong + 1
    end
    if n == 1 then print(o.label .. " ready"); io.stdout:flush() end
    luact.clock.sleep(0.01)
  end
  luact.stop(r)
end)
print(("%s ok=%d wrong=%d failed=%d first_error=%s"):format(arg[3], out.ok, out.wrong, out.failed, tostring(out.first_error)))
