-- luact.metrics: this thread's counters, in the block of shared memory the core keeps for it
-- (src/metrics.rs). `metrics.b` is the block, an array of doubles indexed by `metrics.SLOT`:
-- the hot paths bump it with a plain load and store (`b[S] = b[S] + 1`: no lock, no syscall, no
-- allocation; the JIT compiles it into their traces), and the core reads every thread's block
-- when /metrics is scraped. Before the thread is attached, `b` is a private block of this VM.
-- Gauges that need work to read (Lua memory) are refreshed at most once a second, by the loop
-- (metrics.maybe_refresh) and by luact.metrics(); refreshers registered with on_refresh (the
-- cluster's gauges on thread 1) run then too. Methods a body marks (`__actor_metrics__`) are
-- timed into per-method histograms (src/metrics_methods.rs): `metrics.timed_methods(body)`
-- gives the marks, `metrics.observe_method(k, seconds)` records one.
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C

local metrics = {}

-- Slot numbers: mirrors of src/metrics.rs (change both together).
local SLOT = {
  calls_sent = 0, notifies_sent = 1, calls_received = 2, notifies_received = 3,
  replies_sent = 4, replies_received = 5, loop_turns = 6, stalls = 7,
  tentacles = 10, actors = 11, lua_memory_bytes = 12, stall_seconds = 13,
  errors = 16, latency = 32, latency_sum = 48, latency_count = 49,
  inbox_high_water = 64, connections_open = 65, connections_opened = 66,
  transport_received_bytes = 67, transport_sent_bytes = 68, frames_received = 69, frames_sent = 70,
  listen = 71, handshake_failures = 80, flow_send_pauses = 90, flow_receive_pauses = 91,
}
metrics.SLOT = SLOT
metrics.SLOTS = 128
local CLUSTER = {
  member = 0, alive = 1, suspect = 2, dead = 3, left = 4, raft_term = 5, raft_commit_index = 6,
  raft_applied_index = 7, raft_leader = 8, raft_leader_changes = 9, lease_renewals = 10,
  lease_lapses = 11, lease_ends = 12, activations = 13, registered_names = 14, swim_suspicions = 15,
  failovers = 16,
}
metrics.CLUSTER = CLUSTER
-- Histograms of the cluster's block (bounds: METHOD_BOUNDS, layout as a method's): the Raft
-- storage's fsyncs, placement time.
local CLUSTER_HIST = { raft_fsync = 32, placement = 64 }
metrics.CLUSTER_HIST = CLUSTER_HIST

-- Errors by name: src/metrics.rs ERROR_NAMES, in order; any other name counts as "other".
local ERROR_NAMES = { "actor_timeout", "actor_unreachable", "actor_no_body", "actor_temporary_fail",
  "actor_overload", "actor_no_method", "actor_runtime_error", "actor_error", "other" }
local error_slot = {}
for i, name in ipairs(ERROR_NAMES) do error_slot[name] = SLOT.errors + i - 1 end
local OTHER = error_slot.other
metrics.ERROR_NAMES = ERROR_NAMES

-- The latency histogram's upper bounds (src/metrics.rs LATENCY_BOUNDS), then +Inf.
local BOUNDS = { 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0 }
metrics.BOUNDS = BOUNDS
local LISTEN_NAMES = { "header_timeouts", "idle_timeouts", "slow_readers", "refused_connections", "accept_pauses", "read_pauses" }
-- Handshake failures by reason (src/metrics.rs HANDSHAKE_REASONS, in order).
local HANDSHAKE_REASONS = { "bad_secret", "wrong_cluster", "version", "tls", "timeout", "peer_refused", "protocol",
  "closed", "duplicate_client" }
metrics.HANDSHAKE_REASONS = HANDSHAKE_REASONS

-- The per-method histograms' layout (src/metrics_methods.rs: BOUNDS, STRIDE, SUM, COUNT,
-- MAX_PAIRS): per marked (actor, method) pair, STRIDE doubles: #METHOD_BOUNDS + 1 buckets (not
-- cumulative), the sum, the count.
local METHOD_BOUNDS = { 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
  1.0, 2.5, 5.0, 10.0 }
local METHOD_STRIDE, METHOD_SUM, METHOD_COUNT, METHOD_PAIRS = 24, #METHOD_BOUNDS + 1, #METHOD_BOUNDS + 2, 64
metrics.METHOD_BOUNDS, metrics.METHOD_PAIRS = METHOD_BOUNDS, METHOD_PAIRS

local own = ffi.new("double[?]", metrics.SLOTS)   -- before attach (and in a VM that never attaches)
metrics.b = own
metrics.tid = nil
local methods_block = nil       -- this thread's method histograms (made on the first observation)
local method_index = {}         -- actor .. "\0" .. method -> the pair's index (this run)

-- Points `metrics.b` at thread tid's block (luact.loop.attach).
function metrics.attach(tid)
  local p = C.luact_metrics_block(tid)
  if p ~= nil then metrics.b, metrics.tid = p, tid end
  methods_block, method_index = nil, {}
end

function metrics.detach()
  metrics.b, metrics.tid = own, nil
  methods_block, method_index = nil, {}
end

-- Counts an error that ended a call (cold path: a table lookup).
function metrics.error(name)
  local b = metrics.b
  local s = error_slot[name] or OTHER
  b[s] = b[s] + 1
end

-- Records one call latency (seconds) in the histogram.
function metrics.observe(seconds)
  local b = metrics.b
  local i = 1
  while i <= #BOUNDS and seconds > BOUNDS[i] do i = i + 1 end
  local s = SLOT.latency + i - 1
  b[s] = b[s] + 1
  b[SLOT.latency_sum] = b[SLOT.latency_sum] + seconds
  b[SLOT.latency_count] = b[SLOT.latency_count] + 1
end

-- The index of the pair (actor, method), marked in the core on first use (raises when the
-- process has METHOD_PAIRS pairs already, or a name is empty or too long).
local function pair_index(actor, method)
  local key = actor .. "\0" .. method
  local k = method_index[key]
  if k then return k end
  k = C.luact_metrics_method(actor, #actor, method, #method)
  if k < 0 then
    error(("cannot time method '%s' of actor '%s': %s"):format(method, actor, lffi.describe(k)), 0)
  end
  method_index[key] = k
  return k
end

-- The methods a body marks for timing: its `__actor_metrics__ = { actor = "room", methods =
-- { "join", ... } }` as { [method] = pair index }, or nil when it marks none. Raises, saying
-- what is wrong, for a malformed mark.
local function mark_of(body) return body.__actor_metrics__ end

function metrics.timed_methods(body)
  local spec
  if type(body) == "table" then
    spec = body.__actor_metrics__
  else
    local ok, v = pcall(mark_of, body)   -- (a cdata may not have it; no closure here: a function
    spec = ok and v or nil                -- that makes one cannot be compiled, see UCLO)
  end
  if spec == nil then return nil end
  if type(spec) ~= "table" then
    -- a body whose metatable answers every key (an actor reference registered as a proxy, a
    -- client object whose methods are looked up by name) has no mark: only a value set on
    -- the body itself is a mistake to report
    if type(body) ~= "table" or rawget(body, "__actor_metrics__") == nil then return nil end
    error(("bad __actor_metrics__ (table expected, got %s)"):format(type(spec)), 0)
  end
  local actor, methods = spec.actor, spec.methods
  if actor == nil then actor = "" end
  if type(actor) ~= "string" then
    error(("bad __actor_metrics__.actor (string expected, got %s)"):format(type(actor)), 0)
  end
  if type(methods) ~= "table" or methods[1] == nil then
    error("bad __actor_metrics__.methods (a list of method names expected)", 0)
  end
  local timed = {}
  for i, m in ipairs(methods) do
    if type(m) ~= "string" then
      error(("bad __actor_metrics__.methods[%d] (string expected, got %s)"):format(i, type(m)), 0)
    end
    timed[m] = pair_index(actor, m)
  end
  return timed
end

-- Records `seconds` in the histogram at p[base] (METHOD_BOUNDS' layout).
local function observe_into(mb, base, seconds)
  local i = 1
  while i <= #METHOD_BOUNDS and seconds > METHOD_BOUNDS[i] do i = i + 1 end
  local s = base + i - 1
  mb[s] = mb[s] + 1
  mb[base + METHOD_SUM] = mb[base + METHOD_SUM] + seconds
  mb[base + METHOD_COUNT] = mb[base + METHOD_COUNT] + 1
end

-- Records that a marked method (pair k) took `seconds`.
function metrics.observe_method(k, seconds)
  local mb = methods_block
  if mb == nil then
    mb = metrics.tid and C.luact_metrics_methods_block(metrics.tid, 1) or nil
    if mb == nil then mb = ffi.new("double[?]", METHOD_PAIRS * METHOD_STRIDE) end
    methods_block = mb
  end
  observe_into(mb, k * METHOD_STRIDE, seconds)
end

-- Thread 1 (which writes the cluster's block): counts one more `name` (a CLUSTER slot).
function metrics.cluster_count(name)
  if metrics.tid ~= 1 then return end
  local c, s = C.luact_metrics_block(0), CLUSTER[name]
  c[s] = c[s] + 1
end

-- Thread 1: records `seconds` in the cluster histogram `name` (CLUSTER_HIST).
function metrics.cluster_observe(name, seconds)
  if metrics.tid ~= 1 then return end
  observe_into(C.luact_metrics_block(0), CLUSTER_HIST[name], seconds)
end

local function read_histogram(p, base)
  local h = { count = p[base + METHOD_COUNT], sum = p[base + METHOD_SUM], buckets = {} }
  for i = 1, #METHOD_BOUNDS + 1 do h.buckets[i] = p[base + i - 1] end
  return h
end

-- The marked pairs' histograms summed over threads 1..n_core: a list of { actor, method, count,
-- sum, buckets = { per bucket of METHOD_BOUNDS, then +Inf; not cumulative } }, in marking order.
local function read_methods(n_core)
  local out = ffi.new("const uint8_t*[1]")
  local len = tonumber(C.luact_metrics_method_names(out))
  if len < 0 then error("luact.metrics: " .. lffi.describe(len), 3) end
  local text = ffi.string(out[0], len)
  local blocks = {}
  for tid = 1, n_core do
    local p = C.luact_metrics_methods_block(tid, 0)
    if p ~= nil then blocks[#blocks + 1] = p end
  end
  local r, k = {}, 0
  for actor, method in text:gmatch("([^\t\n]*)\t([^\n]*)\n") do
    local base = k * METHOD_STRIDE
    local m = { actor = actor, method = method, count = 0, sum = 0, buckets = {} }
    for i = 1, #METHOD_BOUNDS + 1 do m.buckets[i] = 0 end
    for _, p in ipairs(blocks) do
      for i = 1, #METHOD_BOUNDS + 1 do m.buckets[i] = m.buckets[i] + p[base + i - 1] end
      m.sum, m.count = m.sum + p[base + METHOD_SUM], m.count + p[base + METHOD_COUNT]
    end
    r[#r + 1] = m
    k = k + 1
  end
  return r
end

local refreshers = {}
local last_refresh = -math.huge
local REFRESH_EVERY = 1.0

-- Registers fn(block0) run at each refresh on thread 1 (the cluster's gauges).
function metrics.on_refresh(fn)
  refreshers[#refreshers + 1] = fn
end

-- Refreshes this thread's costly gauges now (and, on thread 1, the cluster's).
function metrics.refresh(now)
  last_refresh = now or last_refresh
  local b = metrics.b
  b[SLOT.lua_memory_bytes] = collectgarbage("count") * 1024
  if metrics.tid == 1 then
    local c = C.luact_metrics_block(0)
    for i = 1, #refreshers do
      local ok, err = pcall(refreshers[i], c, CLUSTER)
      -- (kept for luact.metrics() to show: logging from here would tie this leaf module to the logger)
      if not ok then metrics.refresh_error = tostring(err) end
    end
  end
end

-- Called by the loop once per turn with the loop's time: refreshes once a second.
function metrics.maybe_refresh(now)
  if now - last_refresh >= REFRESH_EVERY then metrics.refresh(now) end
end

local function read_thread(b, tid)
  local t = { thread = tid, errors = {}, listen = {}, inbox_depth = C.luact_metrics_inbox_depth(tid) }
  for name, s in pairs(SLOT) do
    if name ~= "errors" and name ~= "latency" and name ~= "listen" and name ~= "handshake_failures" then t[name] = b[s] end
  end
  t.handshake_failures = {}
  for i, name in ipairs(HANDSHAKE_REASONS) do t.handshake_failures[name] = b[SLOT.handshake_failures + i - 1] end
  for i, name in ipairs(ERROR_NAMES) do t.errors[name] = b[SLOT.errors + i - 1] end
  for i, name in ipairs(LISTEN_NAMES) do t.listen[name] = b[SLOT.listen + i - 1] end
  local buckets = {}
  for i = 1, #BOUNDS + 1 do buckets[i] = b[SLOT.latency + i - 1] end
  t.latency_buckets = buckets
  return t
end

-- luact.metrics(): { threads = { [tid] = {...} }, cluster = {...} } read from every block;
-- luact.metrics("text"): the OpenMetrics text /metrics serves.
function metrics.read(n_core, format)
  metrics.refresh(last_refresh)
  if format == "text" then
    local out = ffi.new("const uint8_t*[1]")
    local len = tonumber(C.luact_metrics_render(out))
    if len < 0 then error("luact.metrics: " .. lffi.describe(len), 2) end
    return ffi.string(out[0], len)
  elseif format ~= nil then
    error(("bad 'format' argument to luact.metrics (nil or 'text' expected, got %s)"):format(tostring(format)), 2)
  end
  local r = { threads = {}, cluster = {}, latency_bounds = BOUNDS, method_bounds = METHOD_BOUNDS,
              methods = read_methods(n_core) }
  for tid = 1, n_core do
    r.threads[tid] = read_thread(C.luact_metrics_block(tid), tid)
  end
  local c = C.luact_metrics_block(0)
  for name, s in pairs(CLUSTER) do r.cluster[name] = c[s] end
  for name, base in pairs(CLUSTER_HIST) do r.cluster[name] = read_histogram(c, base) end
  return r
end

return metrics
