-- `GET /metrics` on a node with 100 000 actors (issue 27): the node (2 threads, 50 000 idle
-- actors on each) serves /metrics on an http:// listener; curl (run through luact.offload, so
-- thread 1's loop keeps serving) scrapes it 30 times. Reports the median and max time of one
-- scrape as curl measured it, and the bytes. Every scrape must answer 200 with the actors
-- gauge at 100 000 (checked). Opens a socket: run it in a network namespace (bench/run does).
local common = require "bench.common"
local luact = require "luact"

local ACTORS, SCRAPES = 100000, 30
local times, bytes = luact.start({ n_core = 2, timeout = 120, actors = ACTORS, scrapes = SCRAPES }, function()
  local luact = require "luact"
  local keep = {}
  for i = 1, luact.opts.actors / luact.n_core do keep[i] = luact({ hoge = function() end }) end
  rawset(_G, "KEEP", keep)
  if luact.thread_id ~= 1 then return end
  luact.listen("http://127.0.0.1:9177", { metrics = true })
  local function actors_total(text)
    local n = 0
    for v in text:gmatch("\nluact_actors{[^}]*} (%d+)") do n = n + tonumber(v) end
    return n
  end
  local times, size = {}, nil
  for i = 1, luact.opts.scrapes + 50 do
    local code, seconds, text = luact.offload(function()
      local p = io.popen("curl -s -w '\\n%{http_code} %{time_total}' http://127.0.0.1:9177/metrics")
      local out = p:read("*a")
      p:close()
      local body, code, t = out:match("^(.*)\n(%d+) ([%d.]+)$")
      return tonumber(code), tonumber(t), body
    end)
    if code == 200 and actors_total("\n" .. text) >= luact.opts.actors then
      times[#times + 1] = seconds
      size = #text
      if #times == luact.opts.scrapes then break end
    else
      luact.clock.sleep(0.1)          -- (the other thread may still be creating its actors)
    end
  end
  assert(#times == luact.opts.scrapes, "the scrapes did not show every actor")
  luact.stop(times, size)
end)
table.sort(times)
common.report("metrics_scrape", { actors = ACTORS, scrapes = #times, median_ms = common.percentile(times, 0.5) * 1000,
  max_ms = times[#times] * 1000, bytes = bytes }, { "actors", "scrapes", "median_ms", "max_ms", "bytes" })
