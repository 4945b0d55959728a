-- luact.runtime: luact.start and luact.stop. Thread 1 is the VM that calls start; the core
-- creates threads 2..n_core, each with a fresh VM that enters `worker_main`. Every thread runs
-- `main` in a tentacle and then its loop until stop; start then joins the workers and returns
-- stop's values (or raises the first error any thread's main raised).
local lffi = require "luact.ffi"
local C = lffi.C
local buffer = require "string.buffer"
local scheduler = require "luact.scheduler"
local clock = require "luact.clock"
local loop = require "luact.loop"
local event = require "luact.event"
local tentacle = require "luact.tentacle"
local logger = require "luact.logger"
local util = require "luact.util"
local host = require "luact.actor.host"
local thread = require "luact.thread"
local socket = require "luact.socket"   -- (every thread answers luact.socket.listen's threads = "all")
require "luact.offload"                  -- (every thread takes the offload pool's replies)

local runtime = {
  thread_id = nil,     -- 1..n_core while running
  n_core = nil,
  opts = nil,          -- the options start was called with (plain data)
}

local DEFAULTS = { n_core = 1, inbox_size = 16384, spin = 5e-4, join_timeout = 5 }
local OPTION_TYPES = { n_core = "number", inbox_size = "number", spin = "number", join_timeout = "number",
                       log_level = "string", timeout = "number", address = "string", secret = "string",
                       cluster = "string", max_frame = "number", seeds = "table", datadir = "string",
                       offload_threads = "number", offload_max_threads = "number", tls = "table",
                       fsync = "boolean", gossip_tick = "number", raft_tick = "number",
                       snapshot_entries = "number", leave_timeout = "number",
                       replace_dead_voters = "number" }

-- Every option luact.start reads (the cluster's own included) and the type it takes: a key near
-- one of these with a value of that type is taken for a typo and raises; any other key is the
-- application's (luact.opts). See util.check_options.
local START_TYPES = { stall_warn = "number", local_call_metrics = "boolean", log_format = "string" }
for k, tp in pairs(OPTION_TYPES) do START_TYPES[k] = tp end
local START_OPTIONS = {}
for k in pairs(START_TYPES) do START_OPTIONS[k] = true end

local running = false   -- this VM is inside start (or is a worker)

local function check_options(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad 'opts' argument to luact.start (table expected, got " .. type(opts) .. ")", 3)
  end
  util.check_options(opts, START_OPTIONS, "luact.start", 3, START_TYPES)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  for k, d in pairs(DEFAULTS) do if o[k] == nil then o[k] = d end end
  for k, tp in pairs(OPTION_TYPES) do
    if o[k] ~= nil and type(o[k]) ~= tp then
      error(("bad '%s' option to luact.start (%s expected, got %s)"):format(k, tp, type(o[k])), 3)
    end
  end
  if o.n_core < 1 or o.n_core > 1024 or o.n_core % 1 ~= 0 then
    error("bad 'n_core' option to luact.start (integer 1..1024 expected, got " .. tostring(o.n_core) .. ")", 3)
  end
  if o.inbox_size < 1 or o.inbox_size % 1 ~= 0 then
    error("bad 'inbox_size' option to luact.start (positive integer expected, got " .. tostring(o.inbox_size) .. ")", 3)
  end
  for _, k in ipairs { "raft_tick", "gossip_tick" } do
    if o[k] ~= nil and not (o[k] > 0 and o[k] < math.huge) then
      error(("bad '%s' option to luact.start (seconds above 0 expected, got %s)"):format(k, tostring(o[k])), 3)
    end
  end
  if o.snapshot_entries ~= nil and not (o.snapshot_entries >= 1 and o.snapshot_entries % 1 == 0 and o.snapshot_entries < math.huge) then
    error("bad 'snapshot_entries' option to luact.start (positive integer expected, got " .. tostring(o.snapshot_entries) .. ")", 3)
  end
  if o.leave_timeout ~= nil and not (o.leave_timeout >= 0) then
    error("bad 'leave_timeout' option to luact.start (seconds expected, got " .. tostring(o.leave_timeout) .. ")", 3)
  end
  if o.replace_dead_voters ~= nil and not (o.replace_dead_voters > 0 and o.replace_dead_voters < math.huge) then
    error("bad 'replace_dead_voters' option to luact.start (seconds above 0 expected, got " .. tostring(o.replace_dead_voters) .. ")", 3)
  end
  if o.seeds ~= nil then
    local n = 0
    for i, s in ipairs(o.seeds) do
      n = i
      if type(s) ~= "string" or not s:match("^%d+%.%d+%.%d+%.%d+:%d+$") then
        error(("bad 'seeds' option to luact.start (seed #%d: \"ip:port\" expected, got %s)"):format(i, tostring(s)), 3)
      end
    end
    if n == 0 or n ~= #o.seeds or n % 2 == 0 or n > 7 then
      error(("bad 'seeds' option to luact.start (the seeds are the Raft voters: 1, 3, 5 or 7 \"ip:port\" strings expected, got %d)"):format(n), 3)
    end
    if not o.address then
      error("bad 'seeds' option to luact.start (a cluster member needs an 'address' and a 'secret')", 3)
    end
    local voter = false
    for _, s in ipairs(o.seeds) do if s == o.address then voter = true end end
    if voter and not o.datadir then
      error(("bad 'datadir' option to luact.start (%s is a seed, so a Raft voter: it needs a 'datadir' for its log)"):format(o.address), 3)
    end
  end
  if o.tls ~= nil then
    if not o.address and not o.secret then
      error("bad 'tls' option to luact.start (TLS is for node links: it needs an 'address', or a 'secret' for a node client)", 3)
    end
    for k in pairs(o.tls) do
      if k ~= "cert" and k ~= "key" and k ~= "ca" then
        error(("bad 'tls' option to luact.start (unknown field '%s': cert, key and ca expected)"):format(tostring(k)), 3)
      end
    end
    for _, k in ipairs { "cert", "key", "ca" } do
      local v = o.tls[k]
      if type(v) ~= "string" or v == "" then
        error(("bad 'tls' option to luact.start (tls.%s: the path of a PEM file expected, got %s)"):format(k, type(v) == "string" and "\"\"" or type(v)), 3)
      end
    end
  end
  return o
end

-- What moves to the other threads: main as bytecode (or a path) and the options.
local function encode_payload(opts, main)
  -- (thread 1's module paths: every thread, and every offload pool VM, resolves `require` alike)
  local payload = { opts = {}, path = package.path, cpath = package.cpath }
  for k, v in pairs(opts) do
    if type(v) ~= "function" and type(v) ~= "userdata" and type(v) ~= "thread" then payload.opts[k] = v end
  end
  if type(main) == "function" then
    local code, why, name = require("luact.actor.codec").bytecode(main)
    if why == "C" then
      error("bad 'main' argument to luact.start (a C function cannot be moved to other threads)", 3)
    elseif why then
      error(("bad 'main' argument to luact.start (main is moved to every thread as bytecode, so it must not capture upvalues; it captures '%s': require modules inside main instead)"):format(name), 3)
    end
    payload.main_code = code
  elseif type(main) == "string" then
    local f, err = loadfile(main)
    if not f then error("bad 'main' argument to luact.start (cannot load file: " .. tostring(err) .. ")", 3) end
    payload.main_path = main
  else
    error("bad 'main' argument to luact.start (function or file path expected, got " .. type(main) .. ")", 3)
  end
  return buffer.encode(payload)
end

local function fail(msg)
  logger.error(msg)
  C.luact_runtime_fail(msg, #msg)
end

-- Runs `main` in a tentacle, reports its failure, and runs the loop until stop.
local function run_thread(tid, main)
  local call = package.loaded["luact.actor.call"]   -- (loaded by the facade; counts same-thread calls?)
  if call then call.count_local(runtime.opts.local_call_metrics == true) end
  runtime.thread_id, thread.id = tid, tid
  local t = tentacle(main)
  t.name = "main"
  t.watched = true     -- its failure is reported below, not as an unobserved tentacle
  local limit = runtime.opts.timeout
  if tid == 1 and limit then
    tentacle(function()
      clock.sleep(limit)
      fail(("luact.start: timed out after %gs (the 'timeout' option); stopping"):format(limit))
    end)
  end
  tentacle(function()
    local _, _, ok, err = event.wait(nil, t)
    if not ok then fail(("thread %d: main failed: %s"):format(tid, tostring(err))) end
  end)
  local ok, err = pcall(loop.run)
  if not ok then fail(("thread %d: the loop failed: %s"):format(tid, tostring(err))) end
end

local function cleanup()
  for _, name in ipairs { "luact.cluster", "luact.actor.host", "luact.actor.call", "luact.actor.monitors" } do
    local m = package.loaded[name]
    if m then m.reset() end
  end
  socket.reset()
  scheduler.reset()
  clock.reset()
  loop.reset()
  loop.detach()
  runtime.thread_id, runtime.n_core, runtime.opts, runtime.stopping = nil, nil, nil, nil
  thread.id, thread.n_core, thread.opts = nil, nil, nil
  running = false
end

local out = lffi.ffi.new("uint8_t*[1]")
local function take(which)
  local len = tonumber(C.luact_runtime_take(which, out))
  if len < 0 then return nil end
  local s = lffi.ffi.string(out[0], len)
  C.luact_free(out[0])
  return s
end

-- The node options the core takes (luact_node_options_t): a node (address), a node client
-- (secret, no address), or nil. Raises on a bad address or secret, naming the option.
local function node_options(opts)
  if opts.address then
    if not opts.address:match("^%d+%.%d+%.%d+%.%d+:%d+$") then
      error("bad 'address' option to luact.start (ip:port expected, got '" .. opts.address .. "')", 3)
    end
    if not opts.secret or #opts.secret == 0 then
      error("bad 'secret' option to luact.start (a node needs a non-empty secret shared by its cluster)", 3)
    end
    local cluster = opts.cluster or "luact"
    local t = opts.tls or {}
    return lffi.ffi.new("luact_node_options_t", { opts.address, #opts.address, opts.secret, #opts.secret,
                                                  cluster, #cluster, opts.max_frame or 0,
                                                  t.cert, t.cert and #t.cert or 0, t.key, t.key and #t.key or 0,
                                                  t.ca, t.ca and #t.ca or 0 })
  elseif opts.secret ~= nil then
    -- a node client: it dials nodes with the secret (handshake role "client") and never
    -- listens; nodes answer it over the connection it opened (what the `luact` command does)
    if #opts.secret == 0 then
      error("bad 'secret' option to luact.start (a non-empty secret shared by the cluster expected)", 3)
    end
    local cluster = opts.cluster or "luact"
    local t = opts.tls or {}   -- (its certificate need only allow clientAuth: it is never dialed)
    return lffi.ffi.new("luact_node_options_t", { "", 0, opts.secret, #opts.secret, cluster, #cluster,
                                                  opts.max_frame or 0,
                                                  t.cert, t.cert and #t.cert or 0, t.key, t.key and #t.key or 0,
                                                  t.ca, t.ca and #t.ca or 0 })
  end
  return nil
end

-- luact.start(opts, main) -> the values given to luact.stop
function runtime.start(opts, main)
  if running then error("luact.start: luact is already running in this VM", 2) end
  opts = check_options(opts)
  local payload = encode_payload(opts, main)
  if opts.log_level then logger.level(opts.log_level) end
  if opts.log_format ~= nil then
    if opts.log_format ~= "text" and opts.log_format ~= "json" then
      error(("bad 'log_format' option to luact.start ('text' or 'json' expected, got %s)"):format(tostring(opts.log_format)), 2)
    end
    logger.format(opts.log_format)
  end
  local stall_warn = opts.stall_warn
  if stall_warn == nil then stall_warn = 0.1 end
  if stall_warn ~= false and (type(stall_warn) ~= "number" or not (stall_warn > 0) or stall_warn == math.huge) then
    error(("bad 'stall_warn' option to luact.start (seconds above 0, or false, expected, got %s)"):format(tostring(opts.stall_warn)), 2)
  end
  local node_opts = node_options(opts)
  local rc = C.luact_runtime_start(opts.n_core, opts.inbox_size, opts.spin, payload, #payload, node_opts)
  if rc ~= 0 then
    local why = lffi.describe(rc)
    if opts.tls and why:find("^tls: ") then   -- a certificate, key or CA file the core refused
      error(("bad 'tls' option to luact.start (%s)"):format(why), 2)
    end
    error("luact.start: " .. why, 2)
  end
  running = true
  runtime.n_core, runtime.opts = opts.n_core, opts
  thread.n_core, thread.opts = opts.n_core, opts
  if stall_warn and C.luact_stall_watch(stall_warn) ~= 0 then
    logger.warn("luact.start: no stall watchdog: " .. lffi.last_error())
  end
  local ok, err = pcall(loop.attach, 1, opts.n_core, opts.inbox_size)
  host.refresh_machine()     -- a node's machine id is its address, known from now on
  if ok and opts.address then
    local rc = C.luact_net_listen(loop.context(), opts.address, #opts.address, 0, nil, 0)
    if rc < 0 then ok, err = false, ("luact.start: cannot listen on %s: %s"):format(opts.address, lffi.describe(rc)) end
  end
  if ok and opts.seeds then
    ok, err = pcall(require("luact.cluster").start, opts)
    if not ok then err = ("luact.start: cannot start the cluster services: %s"):format(tostring(err)) end
  end
  if ok then
    if type(main) == "string" then main = assert(loadfile(main)) end
    run_thread(1, main)
  else
    fail(tostring(err))
  end
  local stuck = C.luact_runtime_join(opts.join_timeout)
  if stuck > 0 then
    logger.warn(("luact.start: %d thread(s) did not stop within %gs; left detached"):format(stuck, opts.join_timeout))
  end
  local failure = take(1)
  local result = take(0)
  cleanup()
  C.luact_runtime_finish()
  host.refresh_machine()     -- back to this process's own id
  if failure then error(failure, 2) end
  if result == nil or result == "" then return end
  local values = buffer.decode(result)
  return unpack(values, 1, values.n)
end

-- luact.stop(...): every thread leaves its loop; start returns these values (plain data).
function runtime.stop(...)
  if not running then error("luact.stop: luact is not running (call it inside luact.start)", 2) end
  local ok, payload = pcall(buffer.encode, { n = select("#", ...), ... })
  if not ok then
    error("bad argument to luact.stop (values must be plain data: " .. tostring(payload) .. ")", 2)
  end
  -- a cluster member leaves first (handing its virtual actors over), when the caller can wait
  if runtime.opts.seeds and scheduler.running() ~= nil and not runtime.stopping then
    runtime.stopping = true
    local left, err = pcall(require("luact.cluster").leave, runtime.opts.leave_timeout or 5)
    if not left then logger.warn("luact.stop: leaving the cluster failed: " .. tostring(err)) end
  end
  C.luact_runtime_stop(payload, #payload)
end

-- Entry point of threads 2..n (called by the core in a fresh VM).
function runtime.worker_main(tid, payload_bytes)
  local payload = buffer.decode(payload_bytes)
  package.path, package.cpath = payload.path, payload.cpath
  local opts = payload.opts
  running = true
  runtime.n_core, runtime.opts, runtime.thread_id = opts.n_core, opts, tid
  thread.id, thread.n_core, thread.opts = tid, opts.n_core, opts
  local ok, err = pcall(loop.attach, tid, opts.n_core, opts.inbox_size)
  if not ok then fail(tostring(err)); cleanup(); return end
  host.refresh_machine()     -- a node's machine id is its address, known from now on
  local main, lerr
  if payload.main_code then
    main, lerr = loadstring(payload.main_code, "=main")
  else
    main, lerr = loadfile(payload.main_path)
  end
  if not main then
    fail(("thread %d: cannot load main: %s"):format(tid, tostring(lerr)))
  else
    run_thread(tid, main)
  end
  cleanup()
end

return runtime
