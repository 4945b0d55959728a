-- luact.cluster.reminders: durable timers owned by a virtual actor's name. `luact.reminder(vid,
-- name, { every = s, at = wall time, method =, data = })` files the reminder in the registry
-- (the name's entry: luact.cluster.registry_vactors' vremind), so it outlives any activation and
-- any process. The thread running the name's activation keeps one timer per reminder on its
-- own clock (thread 1 of its node, which follows the registry, tells it what to arm) and, when
-- it is due, calls `method(self, name, data)` on that activation (default
-- `__actor_reminder__`): a call on the same thread. A periodic reminder is due at at + k * every (its first time,
-- then every `every` seconds of the wall clock); a one-shot (`at` without `every`) is removed
-- from the registry once a call to it returned, and retried until then. An activation that
-- replaces another (failover, graceful leave, a restarted cluster) gets each periodic reminder
-- once at once (the beats due while no activation lived collapse into that one), and each
-- one-shot that came due meanwhile.
local host = require "luact.actor.host"
local ref = require "luact.actor.ref"
local clock = require "luact.clock"
local tentacle = require "luact.tentacle"
local scheduler = require "luact.scheduler"
local loop = require "luact.loop"
local wire = require "luact.cluster.wire"
local logger = require "luact.logger"
local exception = require "luact.exception"
local requests = require "luact.cluster.requests"
local saves = require "luact.cluster.saves"
local activations = require "luact.cluster.activations"
local util = require "luact.util"
local REMINDER_OPTIONS = util.set { "every", "at", "method", "data" }

local reminders = {}

reminders.DEFAULT_METHOD = "__actor_reminder__"
reminders.MIN_EVERY = 0.01       -- seconds
local RETRY = 0.1                -- a one-shot whose call failed is tried again this often
local CALL_TIMEOUT = 5.0

---------------------------------------------------------------------------------------------
-- the API (any thread)

local function check(vid, name, opts, who)
  if type(vid) ~= "string" or vid == "" then
    error(("bad 'vid' argument to %s (non-empty string expected, got %s)"):format(who, type(vid)), 3)
  end
  if type(name) ~= "string" or name == "" or #name > 256 then
    error(("bad 'name' argument to %s (non-empty string of at most 256 bytes expected)"):format(who), 3)
  end
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    error(("bad 'opts' argument to %s (table or nil expected, got %s)"):format(who, type(opts)), 3)
  end
  util.check_options(opts, REMINDER_OPTIONS, who, 3)
  local every, at = opts.every, opts.at
  if every ~= nil and (type(every) ~= "number" or every ~= every or every < reminders.MIN_EVERY) then
    error(("bad 'every' option to %s (a number of seconds >= %g expected, got %s)"):format(who, reminders.MIN_EVERY,
      tostring(every)), 3)
  end
  if at ~= nil and (type(at) ~= "number" or at ~= at) then
    error(("bad 'at' option to %s (a wall clock time in seconds since the epoch expected, got %s)"):format(who,
      tostring(at)), 3)
  end
  if every == nil and at == nil then
    error(("bad 'opts' argument to %s ('every' or 'at' expected)"):format(who), 3)
  end
  if opts.method ~= nil and (type(opts.method) ~= "string" or opts.method == "") then
    error(("bad 'method' option to %s (non-empty string expected)"):format(who), 3)
  end
  local ok, err = pcall(saves.check_plain, opts.data, who, "data")
  if not ok then error((err:gsub("bad 'state' argument", "bad 'data' option")), 3) end
  -- the first time it is due: `at`, else one period from now
  return { every = every, at = at or (clock.walltime() + every), method = opts.method or reminders.DEFAULT_METHOD,
           data = opts.data }
end

-- luact.reminder(vid, name, opts) -> true (opts = nil: removes it; true when it existed).
function reminders.set(vid, name, opts, timeout, who)
  local spec = check(vid, name, opts, who)
  local r = requests.call("w", { op = "vremind", vid = vid, name = name, spec = spec }, timeout, who)
  if r == "no_name" then
    exception.raise("actor_no_body", ("no virtual actor is registered under '%s' (a reminder belongs to a " ..
      "name registered in the cluster, not multi_actor)"):format(vid))
  elseif r == "too_many" then
    error(("%s: '%s' has too many reminders already"):format(who, vid), 0)
  end
  if r == true and spec then
    -- a name with no activation (registered lazy, or gone idle) would never be called: wake it
    -- (a no-op when it is active; an active name with reminders is never put to sleep)
    pcall(activations.wake, vid, timeout)
  end
  return r == true
end

---------------------------------------------------------------------------------------------
-- thread 1: timers for the reminders of the activations this node hosts

local armed = {}                -- vid -> { key =, act = { t, e, l }, by = { [name] = state } }

-- The first due time after `now` (wall clock) of a spec, or its one time.
local function next_due(sp, now)
  if not sp.every then return sp.at end
  if now < sp.at then return sp.at end
  return sp.at + (math.floor((now - sp.at) / sp.every) + 1) * sp.every
end

local schedule

local function remove_one_shot(vid, name, rev)
  tentacle(function()
    pcall(requests.call, "w", { op = "vremind", vid = vid, name = name, rev = rev }, 5,
      "removing a reminder that fired")
  end)
end

-- A failed call of a reminder is logged, at most one line a second on this thread, which counts
-- the others: when a node's lease runs out, every reminder it hosts fails at its next beat, and
-- a line for each (thousands at once) only added to the load that made the lease run out.
local WARN_EVERY = 1.0
local last_warn, unsaid = nil, 0

local function failed(st, err)
  local now = clock.get()
  if last_warn and now - last_warn < WARN_EVERY then
    unsaid = unsaid + 1
    return
  end
  logger.warn(("cluster: reminder '%s' of %s failed: %s%s"):format(st.name, st.vid,
    exception.is_exception(err) and (err.name .. ": " .. err.message) or tostring(err),
    unsaid > 0 and (" (and %d other calls of reminders on this thread since the last such line)"):format(unsaid) or ""))
  last_warn, unsaid = now, 0
end

-- One beat, as a scheduler task (a beat that never waits costs a function call, not a
-- tentacle): calls the activation, then arms the next beat. No timer runs while a call is
-- under way, so beats of one reminder never overlap; those that came due meanwhile are skipped
-- (the next is the first due after the call returned).
local function beat(st)
  if st.dead then return end
  local sp = st.sp
  local r = st.armed.ref
  local call = st.call
  if not call then call = r["timed_" .. sp.method]; st.call = call end
  local ok, err = pcall(call, r, CALL_TIMEOUT, st.name, sp.data)
  if st.dead then return end
  if not ok then failed(st, err) end
  if sp.every then
    schedule(st, next_due(sp, clock.walltime()))
  elseif ok then
    st.dead = true
    remove_one_shot(st.vid, st.name, sp.rev)
  else
    schedule(st, clock.walltime() + RETRY)
  end
end

local function fire(st)
  st.timer = nil
  if st.dead then return end
  scheduler.task(beat, st)
end

-- (the reminder's state is its own timer entry: a beat allocates no timer and no closure)
local function fire_entry(st) fire(st) end

schedule = function(st, due)
  if st.timer then clock.cancel(st.timer) end
  local wait = due - clock.walltime()
  if wait < 0 then wait = 0 end
  st.at, st.fire = clock.get() + wait, fire_entry
  st.timer = clock.schedule(st)
end

local function disarm(vid)
  local a = armed[vid]
  if not a then return end
  armed[vid] = nil
  for _, st in pairs(a.by) do
    st.dead = true
    if st.timer then clock.cancel(st.timer) end
  end
end

-- Arms (or re-arms after a change) the reminders `rs` of vid for its activation `act` ({ key,
-- t, e, l, placed }), which runs on this thread.
local function arm(vid, rs, act)
  local a = armed[vid]
  if a and (a.key ~= act.key or a.act.t ~= act.t or a.act.e ~= act.e or a.act.l ~= act.l) then
    disarm(vid)
    a = nil
  end
  local fresh = a == nil
  if fresh then
    -- (one reference per activation, kept: a reference made per beat cost its caller again
    -- at every beat)
    a = { key = act.key, act = { t = act.t, e = act.e, l = act.l }, by = {},
          ref = ref.new(host.MACHINE, act.t, act.e, act.l) }
    armed[vid] = a
  end
  local now = clock.walltime()
  for name, st in pairs(a.by) do
    if not rs[name] or rs[name].rev ~= st.sp.rev then
      st.dead = true
      if st.timer then clock.cancel(st.timer) end
      a.by[name] = nil
    end
  end
  for name, sp in pairs(rs) do
    if not a.by[name] then
      local st = { vid = vid, name = name, sp = sp, act = a.act, armed = a, call = false, timer = false,
                   at = 0, fire = false, pos = 0, seq = 0 }
      a.by[name] = st
      -- an activation that took over (act.placed) owes each periodic reminder one beat now
      if fresh and act.placed and sp.every and sp.at <= now then
        schedule(st, now)
      else
        schedule(st, next_due(sp, now))
      end
    end
  end
end

local function disarm_all()
  for vid in pairs(armed) do disarm(vid) end
end

-- The timers of a name's reminders run on its activation's thread, so that a beat is a call on
-- the same thread (a function call) rather than a message to another thread and its answer.
-- Thread 1, which follows the registry, tells a worker thread what to arm or disarm ("RA"); a
-- message that finds that thread's inbox full waits here, in order, and is sent again.
local remote = {}               -- thread 1: vid -> the worker thread its reminders are armed on
local pending = {}              -- thread 1: tid -> messages waiting for room in its inbox

local function send_to(t, msg)
  local q = pending[t]
  if q then q[#q + 1] = msg; return end
  if wire.send(host.MACHINE, t, msg) then return end
  q = { msg }
  pending[t] = q
  tentacle(function()
    local i, deadline = 1, clock.get() + 30
    while i <= #q and clock.get() < deadline do
      if wire.send(host.MACHINE, t, q[i]) then i = i + 1 else clock.sleep(0.005) end
    end
    pending[t] = nil
    if i <= #q then
      logger.warn(("cluster: thread %d took no reminder changes for 30 s: %d dropped"):format(t, #q - i + 1))
    end
  end)
end

-- Thread 1, after a change of `vid`: `act` is its activation when this node hosts it (active),
-- else nil.
function reminders.sync(vid, entry, act)
  local rs = entry and entry.reminders
  if not act or not rs or not next(rs) then act = nil end
  local t = act and act.t
  local was = remote[vid]
  if was and was ~= t then
    remote[vid] = nil
    send_to(was, { "RA", vid })
  end
  if not act then return disarm(vid) end
  if t == 1 then return arm(vid, rs, act) end
  disarm(vid)
  remote[vid] = t
  send_to(t, { "RA", vid, rs, { key = act.key, t = act.t, e = act.e, l = act.l, placed = act.placed } })
end

-- a worker thread: thread 1's word about a name's reminders (no reminders: disarm them)
loop.on("RA", function(msg)
  if msg[3] == nil then disarm(msg[2]) else arm(msg[2], msg[3], msg[4]) end
end)
loop.on("RX", disarm_all)

-- Thread 1: this node hosts nothing any more (condemned, stopping).
function reminders.stop()
  disarm_all()
  local seen = {}
  for vid, t in pairs(remote) do
    remote[vid] = nil
    if not seen[t] then seen[t] = true; send_to(t, { "RX" }) end
  end
end

activations.hooks.sync = reminders.sync
activations.hooks.stop = reminders.stop

return reminders
