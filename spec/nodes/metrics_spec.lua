-- GET /metrics scraped by a real Prometheus server (Debian's `prometheus`), inside the spec's
-- network namespace: the per-thread call counters move as calls are made on several threads.
local process = require "spec.helpers.process"
local helpers = require "spec.helpers.runtime"

local NODE_HTTP, PLAIN_HTTP = "127.0.0.4:9101", "127.0.0.4:9102"
local NODE_ADDR, NODE_TCP, SECRET = "127.0.0.4:7401", "tcp://127.0.0.4:9103", "s3cret"
local PROM = "127.0.0.5:9090"

local function curl(args)
  return process.run("curl -s -m 5 -o - -w ' %{http_code}' " .. args)
end

-- The value of an instant query's first sample, or nil while there is none.
local function query(q)
  local out = process.run(("curl -s -m 5 'http://%s/api/v1/query' --data-urlencode 'query=%s'"):format(PROM, q))
  local v = out:match('"value":%[[%d%.e+-]+,"([^"]+)"%]')
  return v and tonumber(v), out
end

-- Polls query q (bounded) until ok(value); returns the value.
local function wait_value(q, ok, what)
  local last
  for _ = 1, 300 do
    local v, out = query(q)
    last = out
    if v and ok(v) then return v end
    os.execute("sleep 0.1")
  end
  error(("Prometheus never showed %s for %s; last answer: %s"):format(what, q, tostring(last)), 2)
end

describe("luact metrics (GET /metrics)", function()
  local node, prom, dir
  setup(function()
    process.require_netns()
    node = process.spawn(("luajit spec/nodes/metrics_node.lua http://%s http://%s %s %s %s"):format(
      NODE_HTTP, PLAIN_HTTP, NODE_ADDR, SECRET, NODE_TCP))
    process.wait_for(node, "ready", 20)
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/data"))
    local f = assert(io.open(dir .. "/prometheus.yml", "w"))
    f:write(([[
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: luact
    static_configs:
      - targets: ['%s']
]]):format(NODE_HTTP))
    f:close()
    prom = process.spawn(("prometheus --config.file=%s/prometheus.yml --storage.tsdb.path=%s/data " ..
      "--web.listen-address=%s"):format(dir, dir, PROM))
    process.wait_for(prom, "Server is ready to receive web requests", 30)
  end)

  teardown(function()
    process.cleanup(prom)
    process.cleanup(node)
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("serves the OpenMetrics text only on a listener that enables it", function()
    local body = curl("http://" .. NODE_HTTP .. "/metrics")
    assert.truthy(body:find('luact_calls_sent_total{thread="1"}', 1, true), body)
    assert.truthy(body:find("# EOF\n 200$"), body)
    local refused = curl("http://" .. PLAIN_HTTP .. "/metrics")
    assert.truthy(refused:find(" 404$"), refused)
    assert.falsy(refused:find("luact_", 1, true), refused)
  end)

  it("counts calls on each thread, as Prometheus scrapes them", function()
    assert.equal("up", wait_value('up{job="luact"}', function(v) return v == 1 end, "the target up") == 1 and "up")
    local q2, q3 = 'luact_calls_received_total{thread="2"}', 'luact_calls_received_total{thread="3"}'
    local before2 = wait_value(q2, function() return true end, "a sample")
    local before3 = wait_value(q3, function() return true end, "a sample")
    local before_sent = wait_value('luact_calls_sent_total{thread="1"}', function() return true end, "a sample")
    assert.equal("[1000] 200", curl("-X POST -d '[1000]' http://" .. PLAIN_HTTP .. "/svc/driver/burst"))
    -- 500 calls to each worker thread, all sent by thread 1
    wait_value(q2, function(v) return v >= before2 + 500 end, "500 more calls on thread 2")
    wait_value(q3, function(v) return v >= before3 + 500 end, "500 more calls on thread 3")
    wait_value('luact_calls_sent_total{thread="1"}', function(v) return v >= before_sent + 1000 end, "1000 more calls sent by thread 1")
    -- and their replies, and the sampled latency of some of them
    wait_value('luact_replies_sent_total{thread="2"}', function(v) return v >= 500 end, "the replies of thread 2")
    wait_value('luact_call_latency_seconds_count{thread="1"}', function(v) return v >= 1000 / 16 - 1 end, "timed calls")
  end)

  it("times a marked method however it is reached: listener, node link, by name", function()
    local q = 'luact_method_duration_seconds_count{actor="room",method="join"}'
    local before = wait_value(q, function() return true end, "a sample")
    -- through the http:// listener, by name: 3 calls
    for i = 1, 3 do
      assert.equal(("[%d] 200"):format(i), curl(("-X POST -d '[%d]' http://%s/svc/room/join"):format(i, PLAIN_HTTP)))
    end
    -- from another node: by name through its tcp:// listener (4), over the node link to an
    -- actor it made (5); `leave` is not marked (5 calls not counted)
    local r = helpers.start({ n_core = 1, address = "127.0.0.1:7101", secret = SECRET, peer = NODE_TCP }, function()
      local luact = require "luact"
      local room = luact.ref(luact.opts.peer .. "/svc/room")
      for i = 1, 4 do room:join(i) end
      for i = 1, 5 do room:leave(i) end
      local made = luact.ref(luact.opts.peer .. "/svc/rooms"):make()
      local remote = require("luact.actor.ref").parts(made) ~= luact.machine_id
      for i = 1, 5 do made:join(i) end
      luact.stop(remote)
    end)
    assert.is_true(r)
    wait_value(q, function(v) return v >= before + 12 end, "12 more timed joins")
    os.execute("sleep 2")       -- (two more scrapes: nothing else arrives)
    assert.equal(before + 12, (query(q)))
  end)
end)
