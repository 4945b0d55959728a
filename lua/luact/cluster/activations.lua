-- luact.cluster.activations: virtual actors on this node. `register` creates the first
-- activation on the calling thread and files the name in the registry (constructor as
-- bytecode, arguments, options); thread 1 mirrors every applied change of a name into the
-- process-wide name table (src/names.rs) that every thread resolves from, creates the
-- activations the leader placed on this process ("VA" to the thread that will run it; it
-- answers "VC"), and kills those that the registry no longer gives to this process ("VK").
-- Every activation carries the lease generation it was created under (luact.cluster.lease):
-- luact.actor.host refuses to run its methods once that lease is gone.
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C
local loop = require "luact.loop"
local clock = require "luact.clock"
local exception = require "luact.exception"
local logger = require "luact.logger"
local host = require "luact.actor.host"
local codec = require "luact.actor.codec"
local tentacle = require "luact.tentacle"
local wire = require "luact.cluster.wire"
local lease = require "luact.cluster.lease"
local requests = require "luact.cluster.requests"
local view = require "luact.cluster.view"
local ref = require "luact.actor.ref"
local names = require "luact.actor.names"
local node = require "luact.node"
local moves = require "luact.cluster.moves"

local activations = {}

-- Hooks of the layer above (luact.cluster.reminders registers them when it loads):
-- sync(vid, entry, act) after each applied change of a name (act: its activation when this
-- process hosts it, else nil), stop() when this process hosts nothing any more.
activations.hooks = { sync = function() end, stop = function() end }

local S = nil                    -- thread 1: { self_addr, boot(), state() -> registry }
local hosted = {}                -- thread 1: key -> { vid, t, l } activations this process runs
local NONE = {}
local hosted_of = {}             -- thread 1: vid -> { [key] = true }, the same by name (a change of
                                 -- one name looks at its own activations, not at all of them)
local activating = {}            -- thread 1: key -> true while its creation is under way
local upgrading = {}             -- thread 1: key -> true while it is re-created with new code
local keep_thread = {}           -- thread 1: key -> the thread its upgraded activation runs on

local thread = require "luact.thread"
local function my_tid() return thread.id or 1 end

---------------------------------------------------------------------------------------------
-- every thread: creating and killing activations

-- Runs on the activation's thread: creates it and marks it virtual. A persistent one (p: { boot
-- = the process it belongs to, saved = its name's last saved state, encoded, or nil}) gets the
-- state handed over, else the saved one (nil: none yet) as one more argument.
local watch_idle

local function create(vid, key, code, args_s, opts, handoff, p, idle)
  local ctor = assert(loadstring(code, "=" .. vid))
  local args = codec.from_string(args_s)
  if p then
    local st = handoff
    if st == nil and p.saved then st = codec.from_string(p.saved) end
    args.n = args.n + 1
    args[args.n] = st
  elseif handoff ~= nil then
    args.n = args.n + 1
    args[args.n] = handoff
  end
  local id = host.new_id()
  local gen = lease.current()
  local sup = next(opts) and opts or nil
  local r, rec = host.create(ctor, args, sup, id)
  host.set_virtual(rec, gen, vid, key)
  if p then rec.persist, rec.vboot = true, p.boot end
  if idle then watch_idle(rec, idle) end
  host.on_death(rec, function(dead)
    if dead.superseded then return end
    -- it died for good here: the name loses this activation (thread 1 proposes it)
    wire.send(host.MACHINE, 1, { "VD", dead.vid, dead.vkey })
  end)
  return r, rec
end

-- Creates the placed activation `key` on this thread and tells thread 1, which files it
-- (directly on thread 1, else with a "VC" message).
local function activate_here(vid, key, code, args_s, opts, handoff, p, idle)
  local ok, r, rec = pcall(create, vid, key, code, args_s, opts, handoff, p, idle)
  if not ok then logger.error(("cluster: cannot activate %s here: %s"):format(vid, tostring(r))) end
  local t = my_tid()
  if t ~= 1 then
    wire.send(host.MACHINE, 1, ok and { "VC", key, t, host.EPOCH, host.id(rec) } or { "VC", key, false, tostring(r) })
  elseif ok then
    activations.created(key, 1, host.EPOCH, host.id(rec))
  else
    activating[key] = nil
  end
end

loop.on("VA", function(msg) activate_here(msg[2], msg[3], msg[4], msg[5], msg[6], msg[7], msg[8] or nil, msg[9] or nil) end)

-- An activation of a name with idle_timeout: when no call began for that long, it stops
-- serving (calls by name wait) and asks thread 1 to file it idle ("VI"); the registry then has
-- no activation of the name until a call wakes it (luact.cluster.activations.wake).
watch_idle = function(rec, idle)
  rec.idle, rec.used = idle, clock.get()
  clock.timer(math.max(idle / 4, 0.02), function()
    if rec.state == "dead" then return false end
    if rec.moving or not rec.vkey or clock.get() - rec.used < idle or (rec.calls and next(rec.calls)) then return end
    rec.moving = true
    local _, t, e, l = require("luact.actor.ref").parts(rec.ref)
    if t == 1 then activations.going_idle(rec.vid, rec.vkey, t, e, l) else
      wire.send(host.MACHINE, 1, { "VI", rec.vid, rec.vkey, t, e, l })
    end
  end)
end

-- It stays: serve again.
local function unmark_moving(l, e)
  local rec = host.get(l, e)
  if rec and rec.vid then rec.moving, rec.used = nil, clock.get() end
end
loop.on("VU", function(msg) unmark_moving(msg[2], msg[3]) end)

local function kill_here(l, e)
  local rec = host.get(l, e)
  if rec and rec.vid then
    rec.superseded = true
    host.kill(rec, nil)
  end
end

loop.on("VK", function(msg) kill_here(msg[2], msg[3]) end)

-- The activation is about to move (graceful leave): it serves only __actor_handoff__ now.
local function mark_moving(l, e)
  local rec = host.get(l, e)
  if rec and rec.vid then rec.moving = true end
end
loop.on("VM", function(msg) mark_moving(msg[2], msg[3]) end)

-- Thread 1, leaving: stops the activation `act` of this process and returns what its
-- __actor_handoff__ gives (nil without one).
function activations.handoff(act)
  if act.state ~= "active" then return act.handoff end
  if act.t == 1 then mark_moving(act.l, act.e) else wire.send(host.MACHINE, act.t, { "VM", act.l, act.e }) end
  local r = ref.new(host.MACHINE, act.t, act.e, act.l)
  local ok, data = pcall(r["timed___actor_handoff__"], r, 2)
  if ok then return data end
  return nil
end

---------------------------------------------------------------------------------------------
-- thread 1: the registry's names, mirrored and acted on

local addr_buf = ffi.new("luact_address_t[?]", 64)

local function mirror(vid, entry)
  local n = 0
  local keys = {}
  if entry then
    for key, act in pairs(entry.acts) do
      if act.state == "active" then keys[#keys + 1] = key end
    end
    table.sort(keys)
    if #keys > 64 then
      addr_buf = ffi.new("luact_address_t[?]", #keys)
    end
    for _, key in ipairs(keys) do
      local act = entry.acts[key]
      local a = addr_buf[n]
      a.machine, a.thread, a.epoch, a["local"] = wire.machine(act.node), act.t, act.e, act.l
      n = n + 1
    end
    if n == 0 then
      -- known but placed nowhere yet (failing over): callers by name wait for it; thread 1
      -- marks a name deactivated for idleness: the caller wakes it
      local asleep = 0
      for _, act in pairs(entry.acts) do if act.state == "idle" then asleep = 1 end end
      local a = addr_buf[0]
      a.machine, a.thread, a.epoch, a["local"] = 0, asleep, 0, 0
      n = 1
    end
  end
  C.luact_names_set(vid, #vid, addr_buf, n, entry and entry.multi and 1 or 0)
end

local function host_key(vid, key, h)
  hosted[key] = h
  local of = hosted_of[vid]
  if not of then of = {}; hosted_of[vid] = of end
  of[key] = true
end

-- key is no longer hosted here; its record, if it was
local function unhost(key)
  local h = hosted[key]
  if not h then return nil end
  hosted[key] = nil
  local of = hosted_of[h.vid]
  if of then
    of[key] = nil
    if next(of) == nil then hosted_of[h.vid] = nil end
  end
  return h
end

local function kill_hosted(key)
  local h = unhost(key)
  if not h then return end
  if h.t == 1 then kill_here(h.l, host.EPOCH) else wire.send(host.MACHINE, h.t, { "VK", h.l, host.EPOCH }) end
end

local function thread_for(key)
  local n = thread.n_core or 1
  local h = 0
  for i = 1, #key do h = (h * 31 + key:byte(i)) % 2147483647 end
  return h % n + 1
end

local function activate(vid, key, entry, act)
  activating[key] = true
  local t = keep_thread[key] or thread_for(key)
  keep_thread[key] = nil
  local p = entry.persist and { boot = act.boot, saved = entry.saved } or false
  local code = S.state():ctor(entry)
  if t == 1 then
    activate_here(vid, key, code, entry.args, entry.opts or {}, act.handoff, p or nil, entry.idle)
  else
    wire.send(host.MACHINE, t, { "VA", vid, key, code, entry.args, entry.opts or {}, act.handoff, p,
                                 entry.idle or false })
  end
end

-- Thread 1: the activation `act` (active here) of vid runs code its name no longer has (the
-- registry marked it stale: luact.register with upgrade = true). It stops serving (calls by
-- name wait, as for a move), hands its state over (__actor_handoff__), and is placed again on
-- this process (vplace to itself, with that state), which kills it and creates the new code on
-- the same thread; calls by name then reach the new one. When the registry moved on meanwhile
-- (the activation went elsewhere or away), it serves again until the registry's change reaches it.
local function upgrade(vid, key, act)
  upgrading[key] = true
  tentacle(function()
    local boot = S.boot()
    local data = activations.handoff(act)
    local deadline, placed = clock.get() + 10, false
    while S and clock.get() < deadline do
      local entry = S.state().vids[vid]
      local now = entry and entry.acts[key]
      if not (now and now.stale and now.state == "active" and now.boot == boot and now.t == act.t and now.l == act.l) then
        break
      end
      keep_thread[key] = act.t
      local ok, r = pcall(requests.run, "w", { op = "vplace", vid = vid, key = key, from_boot = boot, node = S.self_addr,
        boot = boot, handoff = data, why = "upgrade" }, clock.get() + 2, "upgrading " .. key)
      if ok and r then placed = true; break end
      if not ok then logger.warn(("cluster: upgrading %s failed: %s"):format(key, tostring(r))) end
      clock.sleep(0.05)
    end
    upgrading[key] = nil
    if placed then
      logger.info(("cluster: %s upgraded here"):format(key))
    else
      keep_thread[key] = nil
      local entry = S and S.state().vids[vid]
      local now = entry and entry.acts[key]
      if now and now.state == "active" and now.boot == boot and now.t == act.t and now.l == act.l then
        logger.warn(("cluster: %s could not be upgraded here: it serves its old code again"):format(key))
        if act.t == 1 then unmark_moving(act.l, act.e) else wire.send(host.MACHINE, act.t, { "VU", act.l, act.e }) end
      end
    end
  end)
end

-- Thread 1: the activation (t, e, l) of `key` has been idle: file it so, or let it serve again.
function activations.going_idle(vid, key, t, e, l)
  if not S then return end
  tentacle(function()
    local ok, r = pcall(requests.run, "w", { op = "vsleep", vid = vid, key = key, boot = S.boot(), t = t, e = e, l = l },
      clock.get() + 5, "deactivating " .. key)
    if ok and r then
      logger.info(("cluster: %s went idle here"):format(key))
    elseif t == 1 then
      local rec = host.get(l, e)
      if rec then rec.moving, rec.used = nil, clock.get() end
    else
      wire.send(host.MACHINE, t, { "VU", l, e })
    end
  end)
end
loop.on("VI", function(msg) activations.going_idle(msg[2], msg[3], msg[4], msg[5], msg[6]) end)

-- Thread 1: a call wants the idle name `vid`: place it on a live member (rendezvous hashing of
-- its key, as failover does). true when this call woke it.
requests.local_ops.wake = function(vid, deadline)
  if not S then return false end
  local R = S.state()
  local entry = R.vids[vid]
  local key
  for k, act in pairs(entry and entry.acts or {}) do if act.state == "idle" then key = k end end
  if not key then return false end
  moves.needs(key)
  local live = {}
  for _, m in ipairs(S.members.list()) do
    if m.state == "alive" and m.boot and not R.condemned[m.boot] then live[#live + 1] = { addr = m.address, boot = m.boot } end
  end
  table.sort(live, function(a, b) return a.addr < b.addr end)
  local to = require("luact.cluster.failover").choose(key, live)
  if not to then return false end
  return requests.run("w", { op = "vwake", vid = vid, node = to.addr, boot = to.boot }, deadline, "waking " .. vid)
end

-- Any thread: asks thread 1 to wake the idle name vid (best effort within `timeout`).
function activations.wake(vid, timeout)
  return requests.call("wake", vid, timeout, "waking " .. vid)
end

-- After each applied batch: mirror the names that changed; create and kill activations.
function activations.sync(touched)
  if not S then return end
  local R = S.state()
  local boot = S.boot()
  if R.condemned[boot] then
    -- this process was given up for dead (stopped or cut off too long): what it hosted lives
    -- elsewhere now; it hosts again under a new boot id
    lease.lapse()
    activations.hooks.stop()
    for key in pairs(hosted) do kill_hosted(key) end
    S.on_condemned()
    boot = S.boot()
  end
  for vid in pairs(touched) do
    local entry = R.vids[vid]
    mirror(vid, entry)
    local mine = {}
    if entry then
      for key, act in pairs(entry.acts) do
        if act.boot == boot then mine[key] = act end
        moves.saw(vid, key, act)
      end
    end
    for key in pairs(hosted_of[vid] or NONE) do
      local h, act = hosted[key], mine[key]
      if not act or act.state ~= "active" or act.t ~= h.t or act.l ~= h.l or act.e ~= host.EPOCH then
        kill_hosted(key)
      end
    end
    for key, act in pairs(mine) do
      if act.state == "pending" and not activating[key] then
        activate(vid, key, entry, act)
      elseif act.state == "active" and act.e == host.EPOCH and not hosted[key] then
        host_key(vid, key, { vid = vid, t = act.t, l = act.l })
      end
      if act.stale and act.state == "active" and hosted[key] and not upgrading[key] then upgrade(vid, key, act) end
    end
    -- the reminders of the name follow its activation
    local here = nil
    for key, act in pairs(mine) do
      if act.state == "active" and hosted[key] and act.e == host.EPOCH then here = act end
    end
    activations.hooks.sync(vid, entry, here)
  end
end

-- An activation was created for `key` on thread t (false: it failed): file it as active,
-- retrying while the registry still waits for it here.
function activations.created(key, t, e, l)
  if not S then return end
  local vid = key:match("^(.*)#%d+$")
  tentacle(function()
    local deadline = clock.get() + 30
    while S and clock.get() < deadline do
      local entry = S.state().vids[vid]
      local act = entry and entry.acts[key]
      if not act or act.state ~= "pending" or act.boot ~= S.boot() then break end
      local ok, r = pcall(requests.run, "w", { op = "vactive", vid = vid, key = key, boot = S.boot(),
                                                t = t, e = e, l = l }, clock.get() + 2, "activation")
      if ok then
        logger.info(("cluster: %s now runs here (thread %d)"):format(key, t))
        break
      end
      logger.warn(("cluster: filing %s as active failed: %s"):format(key, tostring(r)))
      clock.sleep(0.1)
    end
    activating[key] = nil
    -- the registry may have moved on meanwhile: then this activation is not the one
    local entry = S and S.state().vids[vid]
    local act = entry and entry.acts[key]
    if not (act and act.state == "active" and act.t == t and act.l == l and act.e == e) then
      if t == 1 then kill_here(l, e) else wire.send(host.MACHINE, t, { "VK", l, e }) end
    end
  end)
end

loop.on("VC", function(msg)
  local key, t = msg[2], msg[3]
  if t == false then activating[key] = nil; return end
  activations.created(key, t, msg[4], msg[5])
end)

-- An activation died for good: the name loses it.
loop.on("VD", function(msg)
  if not S then return end
  local vid, key = msg[2], msg[3]
  unhost(key)
  tentacle(function()
    pcall(requests.run, "w", { op = "vdrop", vid = vid, key = key, boot = S.boot() }, clock.get() + 5, "vdrop")
  end)
end)

---------------------------------------------------------------------------------------------
-- the API behind luact.register / unregister in a cluster (any thread)

local function check_ctor(ctor)
  if type(ctor) ~= "function" then
    error(("bad 'ctor' argument to luact.register (in a cluster the constructor must be a function: it runs " ..
           "again on another node when this one dies; got %s)"):format(type(ctor)), 0)
  end
  local code, why, upvalue = codec.bytecode(ctor)
  if why == "C" then
    error("bad 'ctor' argument to luact.register (a C function cannot be moved to another node)", 0)
  elseif why then
    error(("bad 'ctor' argument to luact.register (the constructor is stored as bytecode and runs on any node, " ..
           "so it must not capture upvalues; it captures '%s': require modules inside it and pass values as arguments)"):format(
           upvalue), 0)
  end
  return code
end

-- This node's boot id and address, on any thread (nil until it is a member): thread 1 knows
-- them; the other threads find its boot id in the view thread 1 publishes.
function activations.identity()
  local addr = view.active and (thread.opts or {}).address or nil
  if S then return S.boot(), addr end
  for _, m in ipairs(view.members) do
    if m.address == addr then return m.boot, addr end
  end
  return nil, addr
end

local function node_identity(timeout)
  local deadline = clock.get() + timeout
  while true do
    local boot, addr = activations.identity()
    if boot and addr then return boot, addr end
    if clock.get() >= deadline then
      exception.raise("cluster_unavailable", "this node has not joined its cluster yet")
    end
    clock.sleep(0.01)
  end
end

-- Options of luact.register that are not supervise's.
activations.OPTIONS = { multi_actor = true, scope = true, persist = true, idle_timeout = true, lazy = true,
                        upgrade = true }

-- luact.register in a cluster: returns the first activation (on this thread); with opts.lazy,
-- files the name idle and returns nil (luact.actor.names hands out a reference by name).
function activations.register(vid, opts, ctor, args, timeout)
  local code = check_ctor(ctor)
  local args_s = codec.to_string(args, "argument to luact.register")
  local sup = {}
  for k, v in pairs(opts) do if not activations.OPTIONS[k] then sup[k] = v end end
  local persist = opts.persist and true or false
  local boot, addr = node_identity(timeout)
  local idle = opts.idle_timeout
  if idle ~= nil and (type(idle) ~= "number" or idle ~= idle or idle <= 0) then
    error(("bad 'idle_timeout' option to luact.register (positive number of seconds expected, got %s)"):format(
      tostring(idle)), 0)
  end
  if idle and opts.multi_actor then
    error("bad 'idle_timeout' option to luact.register (a multi_actor name is not deactivated)", 0)
  end
  if opts.lazy then
    -- filed idle: no activation until the first call by name wakes it (as after idleness)
    local key = requests.call("w", { op = "vreg", vid = vid, ctor = code, args = args_s, opts = sup, multi = false,
      persist = persist or nil, idle = idle, lazy = true }, timeout, "luact.register")
    if not key then exception.raise("vid_registered", ("'%s' is registered already"):format(vid)) end
    return nil
  end
  local r, rec = create(vid, nil, code, args_s, sup, nil, persist and { boot = boot } or nil, idle)
  rec.superseded = true              -- not filed yet: its death needs no vdrop
  local ok, key = pcall(requests.call, "w", { op = "vreg", vid = vid, ctor = code, args = args_s, opts = sup,
    multi = opts.multi_actor and true or false, persist = persist or nil, idle = idle, node = addr, boot = boot, t = my_tid(),
    e = host.EPOCH, l = host.id(rec) }, timeout, "luact.register")
  if not ok or not key then
    host.kill(rec, nil)
    if not ok then error(key, 0) end
    exception.raise("vid_registered", ("'%s' is registered already%s"):format(vid,
      opts.multi_actor and " (and not as multi_actor)" or ""))
  end
  rec.vkey, rec.superseded = key, nil
  return r
end

-- luact.register(vid, { upgrade = true }, ctor, ...) in a cluster: the registered name vid gets
-- the constructor ctor and the arguments args (committed like a registration); each of its live
-- activations is then re-created by its host with them and its __actor_handoff__ state (see
-- upgrade above). Returns once the change is committed, not once every activation runs it.
function activations.upgrade(vid, ctor, args, timeout)
  local code = check_ctor(ctor)
  local args_s = codec.to_string(args, "argument to luact.register")
  local r = requests.call("w", { op = "vupgrade", vid = vid, ctor = code, args = args_s }, timeout, "luact.register")
  if r == "no_name" then
    exception.raise("actor_no_body", ("no actor is registered under '%s' (upgrade = true replaces the code of a " ..
      "registered name)"):format(vid))
  elseif r ~= true then
    error(("luact.register: the upgrade of '%s' was refused (%s)"):format(vid, tostring(r)), 0)
  end
end

-- Waits until this node's replica has caught up with the leader (a name registered anywhere
-- before the call resolves here after it).
function activations.sync_registry(timeout)
  if timeout <= 0 then return end
  requests.call("sync", nil, timeout, "name resolution")
end

-- luact.unregister in a cluster: the whole name, or the activation `actor` (a plain reference).
function activations.unregister(vid, actor, timeout)
  local where = nil
  if actor then
    local m, t, e, l = ref.parts(actor)
    where = { node = node.name(m), t = t, e = e, l = l }
  end
  local removed = requests.call("w", { op = "vunreg", vid = vid, where = where }, timeout, "luact.unregister")
  return #removed > 0
end

---------------------------------------------------------------------------------------------

-- Thread 1 of a member: opts.self_addr, opts.boot(), opts.state() (the applied registry),
-- opts.on_condemned() (this process's boot id was condemned: take a new one).
function activations.start(opts)
  S = opts
end

function activations.stop()
  activations.hooks.stop()
  S, hosted, hosted_of, activating, upgrading, keep_thread = nil, {}, {}, {}, {}, {}
end

names.use_cluster({ register = activations.register, upgrade = activations.upgrade, unregister = activations.unregister,
                    sync_registry = activations.sync_registry, view = view,
                    wake = activations.wake })

return activations
