-- luact: the public facade. `local luact = require "luact"` gives the runtime (start/stop),
-- actors (`luact(body, ...)`, supervise, kill, monitor, register, ref), and the tentacle, event,
-- clock, exception, memory, util, logger and future modules, plus the identity of the calling
-- thread (`luact.thread_id`, `luact.n_core`: nil outside start; `luact.machine_id`).
local runtime = require "luact.runtime"
local host = require "luact.actor.host"
local call = require "luact.actor.call"
local monitors = require "luact.actor.monitors"
local names = require "luact.actor.names"
local ref = require "luact.actor.ref"
local listener = require "luact.listener"
local util = require "luact.util"
-- (loaded in every VM: thread 1 batches its node's saves and fires the reminders it hosts)
local saves = require "luact.cluster.saves"
local reminders = require "luact.cluster.reminders"
require "luact.dashboard"   -- (every VM: a listener opened with `dashboard = true` answers its state)

local luact = {
  start = runtime.start,
  stop = runtime.stop,
  tentacle = require "luact.tentacle",
  event = require "luact.event",
  clock = require "luact.clock",
  exception = require "luact.exception",
  memory = require "luact.memory",
  util = util,
  logger = require "luact.logger",
  future = require "luact.future",
  socket = require "luact.socket",
  offload = require "luact.offload",
  offload_stats = require "luact.offload_stats",
  version = require("luact.ffi").version,
  register = names.register,
  unregister = names.unregister,
  ref = names.ref,
  is_actor = ref.is_ref,
  listen = listener.listen,
  listen_stats = listener.stats,
  cluster = require "luact.cluster",
  metrics = require("luact.observe").metrics,
  inspect = require "luact.inspect",
  stall = require "luact.stall",
  db = require "luact.db",
}

local function check_body(body, who)
  local tb = type(body)
  if tb ~= "table" and tb ~= "cdata" and tb ~= "function" then
    error(("bad 'body' argument to %s (table, cdata or function expected, got %s)"):format(who, tb), 3)
  end
end

local function create(who, body, sup, ...)
  check_body(body, who)
  local ok, r = pcall(host.create, body, { n = select("#", ...), ... }, sup)
  if not ok then error(who .. ": " .. tostring(r), 3) end
  return r
end

-- luact(body, ...) -> actor reference; body is a table, a cdata, or a function returning one
local function new_actor(_, body, ...)
  return create("luact", body, nil, ...)
end

local SUPERVISE_OPTIONS = util.set(host.SUPERVISE_OPTIONS)

-- luact.supervise(body, opts, ...): restarted under the same id after a non-recoverable error
-- (opts: maxr = 5 restarts within maxt = 5.0 s, restart_pause = 0.05 s doubling up to
-- restart_pause_max = 5.0 s).
function luact.supervise(body, opts, ...)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad 'opts' argument to luact.supervise (table or nil expected, got " .. type(opts) .. ")", 2)
  end
  util.check_options(opts, SUPERVISE_OPTIONS, "luact.supervise", 2)
  for k, v in pairs(opts or {}) do
    if type(v) ~= "number" or v < 0 then
      error(("bad '%s' option to luact.supervise (non-negative number expected, got %s)"):format(tostring(k), tostring(v)), 2)
    end
  end
  return create("luact.supervise", body, opts or {}, ...)
end

-- luact.load(path, ...): an actor from a file that returns a body (or a constructor).
function luact.load(path, ...)
  if type(path) ~= "string" then
    error("bad 'path' argument to luact.load (string expected, got " .. type(path) .. ")", 2)
  end
  local chunk, err = loadfile(path)
  if not chunk then error("luact.load: " .. tostring(err), 2) end
  return create("luact.load", chunk(), nil, ...)
end

-- luact.require(module, ...): an actor from a module that returns a body (or a constructor).
function luact.require(module, ...)
  if type(module) ~= "string" then
    error("bad 'module' argument to luact.require (string expected, got " .. type(module) .. ")", 2)
  end
  return create("luact.require", require(module), nil, ...)
end

-- The actor a reference names now (a named reference resolves to its current actor).
local function plain_ref(a, who)
  if getmetatable(a) == ref.NamedRef then
    local m, t, e, l = names.resolve(ref.vid(a))
    if not m then
      require("luact.exception").raise("actor_no_body", ("no actor is registered under '%s'"):format(ref.vid(a)))
    end
    return ref.new(m, t, e, l)
  end
  if not ref.is_plain(a) then
    error(("bad 'actor' argument to %s (actor reference expected, got %s)"):format(who, type(a)), 3)
  end
  return a
end

-- luact.resolve(vid) -> the actor registered under vid now (a plain reference), or nil.
function luact.resolve(vid)
  if type(vid) ~= "string" then
    error("bad 'vid' argument to luact.resolve (string expected, got " .. type(vid) .. ")", 2)
  end
  local m, t, e, l = names.resolve(vid)
  return m and ref.new(m, t, e, l) or nil
end

-- luact.kill(actor[, reason]): kills it for good (also a supervised one); monitors fire with
-- reason (nil for a normal kill), and linked actors die too when a reason is given.
function luact.kill(a, reason)
  if getmetatable(a) == ref.NamedRef and not names.resolve(ref.vid(a)) then return false end
  return monitors.kill(plain_ref(a, "luact.kill"), reason)
end

-- luact.monitor(target, handler[, method]) -> handle. handler: function(target, reason), or an
-- actor: notified with notify_<method>(target, reason) when method is given, else killed with
-- the same reason when target dies with one (a link). Fires once; at once if target is gone.
function luact.monitor(target, handler, method)
  target = plain_ref(target, "luact.monitor")
  if type(handler) ~= "function" and not ref.is_ref(handler) then
    error("bad 'handler' argument to luact.monitor (function or actor expected, got " .. type(handler) .. ")", 2)
  end
  if method ~= nil and type(method) ~= "string" then
    error("bad 'method' argument to luact.monitor (string or nil expected, got " .. type(method) .. ")", 2)
  end
  return monitors.monitor(target, handler, method)
end

function luact.unmonitor(handle)
  if type(handle) ~= "table" or handle.fire == nil then
    error("bad 'handle' argument to luact.unmonitor (a handle from luact.monitor expected)", 2)
  end
  return monitors.unmonitor(handle)
end

-- luact.save(state) / luact.timed_save(t, state): inside a method of a persistent virtual actor
-- (luact.register(vid, { persist = true }, ctor, ...)), saves its state durably; returns true
-- once a majority of the Raft voters committed it (luact.cluster.saves).
function luact.save(state)
  return saves.save(state, saves.DEFAULT_TIMEOUT, "luact.save")
end

function luact.timed_save(t, state)
  if type(t) ~= "number" or t <= 0 or t ~= t then
    error(("bad timeout argument to 'luact.timed_save' (positive number expected, got %s)"):format(tostring(t)), 2)
  end
  return saves.save(state, t, "luact.timed_save")
end

-- luact.reminder(vid, name, { every = s, at = wall time, method =, data = }) -> true: a durable
-- timer owned by the name (luact.cluster.reminders); opts nil removes it (true when it existed).
-- luact.timed_reminder(t, vid, name, opts) waits at most t seconds for the registry.
function luact.reminder(vid, name, opts)
  return reminders.set(vid, name, opts, 5.0, "luact.reminder")
end

function luact.timed_reminder(t, vid, name, opts)
  if type(t) ~= "number" or t <= 0 or t ~= t then
    error(("bad timeout argument to 'luact.timed_reminder' (positive number expected, got %s)"):format(tostring(t)), 2)
  end
  return reminders.set(vid, name, opts, t, "luact.timed_reminder")
end

local dynamic = {
  thread_id = function() return runtime.thread_id end,
  n_core = function() return runtime.n_core end,
  machine_id = function() return host.MACHINE end,
  opts = function() return runtime.opts end,
}

return setmetatable(luact, {
  __call = new_actor,
  __index = function(_, k)
    local f = dynamic[k]
    if f then return f() end
    return nil
  end,
})
