-- wrk script for bench/etcd.py: closed-loop requests to etcd's v3 HTTP/JSON gateway, keys b/0 ..
-- b/999 (base64, as the gateway wants), one request in flight per connection.
--   wrk -t1 -cC -dDs -s bench/etcd_wrk.lua http://127.0.0.X:2379 -- put|range|srange
-- put: POST /v3/kv/put {"key","value"}; range: POST /v3/kv/range {"key"} (linearizable: the
-- gateway's default, serializable = false); srange: the same with "serializable": true (served
-- by the member alone: what the client path itself costs). done() prints one line:
--   wrk-result REQUESTS SECONDS ERRORS P50_US P99_US OK_2XX NON_2XX
-- (OK_2XX: the responses with a 2xx status, the only ones bench/etcd.py counts as done; each
-- wrk thread has its own Lua state, so the counts are globals read back with thread:get)
local KEYS = 1000
local mode = "put"
local bodies = {}
local counter = 0
ok2xx, non2xx = 0, 0            -- globals: done() reads them from each thread
local threads = {}

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  mode = args[1] or "put"
  for i = 0, KEYS - 1 do
    local k = b64("b/" .. i)
    if mode == "put" then
      bodies[i] = wrk.format("POST", "/v3/kv/put", nil,
        ('{"key":"%s","value":"%s"}'):format(k, b64(tostring(i))))
    elseif mode == "srange" then
      bodies[i] = wrk.format("POST", "/v3/kv/range", nil, ('{"key":"%s","serializable":true}'):format(k))
    else
      bodies[i] = wrk.format("POST", "/v3/kv/range", nil, ('{"key":"%s"}'):format(k))
    end
  end
  counter = math.random(0, KEYS - 1)
end

function request()
  counter = counter + 1
  return bodies[counter % KEYS]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok2xx = ok2xx + 1 else non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local e = summary.errors
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do ok, bad = ok + (t:get("ok2xx") or 0), bad + (t:get("non2xx") or 0) end
  io.write(("wrk-result %d %.6f %d %.1f %.1f %d %d\n"):format(summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50),
    latency:percentile(99), ok, bad))
end
