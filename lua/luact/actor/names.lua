-- luact.actor.names: named (virtual) actors. `register` creates a supervised actor and files it
-- under a path-like name in the process-wide name table (src/names.rs); `luact.ref(name)`
-- resolves the name at every call, so it follows restarts and re-registrations, and spreads
-- calls round robin over a multi_actor name. A URL form (`tcp://host:port/name`) is resolved by a
-- per-scheme resolver: the node transport adds "tcp", "tls", ... (see `names.add_scheme`).
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C
local ref = require "luact.actor.ref"
local host = require "luact.actor.host"
local call = require "luact.actor.call"
local monitors = require "luact.actor.monitors"
local exception = require "luact.exception"
local thread = require "luact.thread"
local util = require "luact.util"
local REGISTER_OPTIONS = util.set({ "scope", "multi_actor", "persist", "idle_timeout", "lazy", "upgrade" },
                                   host.SUPERVISE_OPTIONS)

local names = {}

local addr = ffi.new("luact_address_t")
local addr_out = ffi.new("luact_address_t[1]")

local function address_of(r)
  addr.machine, addr.thread, addr.epoch, addr["local"] = ref.parts(r)
  return addr
end

local function check_vid(vid, who)
  if type(vid) ~= "string" or vid == "" then
    error(("bad 'vid' argument to %s (non-empty string expected, got %s)"):format(who, type(vid)), 3)
  end
end

-- The cluster layer (above this one) registers what a name in a cluster needs: see
-- names.use_cluster. Until then (no luact.cluster loaded) names are this process's own.
local cluster = nil             -- { register, upgrade, unregister, sync_registry, view, wake }

local function clustered()
  local o = thread.opts
  return o ~= nil and o.seeds ~= nil and cluster ~= nil
end

-- For luact.cluster.activations: register(vid, opts, ctor, args, timeout) -> ref,
-- upgrade(vid, ctor, args, timeout) (a registered name's new code),
-- unregister(vid, actor, timeout) -> removed, sync_registry(timeout), view (luact.cluster.view),
-- wake(vid, timeout) (places a name deactivated for idleness again).
function names.use_cluster(hooks)
  cluster = hooks
end

-- (The checks below raise at level 3: at the caller of luact.register.)

-- An upgrade (opts.upgrade = true): only the constructor and its arguments of a name registered
-- in the cluster change.
local function check_upgrade(opts, tc)
  if opts.scope == "node" or not clustered() then
    error("bad 'upgrade' option to luact.register (only a name registered in the cluster is upgraded in place; " ..
          "a name of this node's own is unregistered and registered again)", 3)
  end
  for k in pairs(opts) do
    if k ~= "upgrade" and k ~= "scope" then
      error(("bad '%s' option to luact.register (an upgrade changes only the constructor and its arguments; " ..
             "the name keeps the options it was registered with)"):format(tostring(k)), 3)
    end
  end
  if tc ~= "function" then
    error("bad 'ctor' argument to luact.register (an upgrade's constructor must be a function, got " .. tc .. ")", 3)
  end
end

-- The options of a registration that only some kinds of names take.
local function check_register_options(opts)
  if opts.scope ~= nil and opts.scope ~= "node" and opts.scope ~= "cluster" then
    error("bad 'scope' option to luact.register (\"node\" or \"cluster\" expected, got " .. tostring(opts.scope) .. ")", 3)
  end
  local in_cluster = opts.scope ~= "node" and clustered()
  if opts.persist ~= nil and type(opts.persist) ~= "boolean" then
    error("bad 'persist' option to luact.register (boolean expected, got " .. type(opts.persist) .. ")", 3)
  end
  if opts.persist and opts.multi_actor then
    error("bad 'persist' option to luact.register (a multi_actor name cannot persist: its activations would " ..
          "share one state)", 3)
  end
  if opts.idle_timeout ~= nil and not in_cluster then
    error("bad 'idle_timeout' option to luact.register (only a name registered in the cluster is deactivated " ..
          "and activated again on demand)", 3)
  end
  if opts.lazy ~= nil and type(opts.lazy) ~= "boolean" then
    error("bad 'lazy' option to luact.register (boolean expected, got " .. type(opts.lazy) .. ")", 3)
  end
  if opts.lazy and (not in_cluster or opts.multi_actor) then
    error("bad 'lazy' option to luact.register (only a name registered in the cluster, not multi_actor, is " ..
          "activated on demand)", 3)
  end
  if opts.persist and not in_cluster then
    error("bad 'persist' option to luact.register (durable state is kept by the cluster's registry: start the node " ..
          "as a cluster member, and do not use scope = \"node\")", 3)
  end
end

-- A name of this node's own: the actor is created on this thread and named in the node's table
-- until it dies.
local function register_on_node(vid, opts, ctor, args)
  local id = host.new_id()
  local r = ref.new(host.MACHINE, thread.id or 1, host.EPOCH, id)
  local rc = C.luact_names_add(vid, #vid, address_of(r), opts.multi_actor and 1 or 0)
  if rc == 1 then
    exception.raise("vid_registered", ("'%s' is registered already%s"):format(vid,
      opts.multi_actor and " (and not as multi_actor)" or ""))
  elseif rc ~= 0 then
    error("luact.register: " .. lffi.describe(rc), 3)
  end
  local sup = {}
  for k, v in pairs(opts) do if k ~= "multi_actor" and k ~= "scope" and k ~= "persist" then sup[k] = v end end
  local ok, created, rec = pcall(host.create, ctor, args, sup, id)
  if not ok then
    C.luact_names_remove(vid, #vid, address_of(r), 0)
    error(created, 3)
  end
  rec.name = vid   -- (what luact.inspect shows)
  host.on_death(rec, function()
    C.luact_names_remove(vid, #vid, address_of(r), 0)
  end)
  return created
end

-- luact.register(vid, [opts,] ctor, ...) -> reference to the created actor (with lazy = true in
-- a cluster: nothing is created; a reference by name, whose first call activates it)
function names.register(vid, opts, ...)
  check_vid(vid, "luact.register")
  local ctor, args
  if type(opts) == "table" and getmetatable(opts) == nil and select("#", ...) > 0 and
     (type((...)) == "function" or type((...)) == "table" or type((...)) == "cdata") then
    ctor = ...
    args = { n = select("#", ...) - 1, select(2, ...) }
  else
    ctor = opts
    opts = {}
    args = { n = select("#", ...), ... }
  end
  local tc = type(ctor)
  if tc ~= "function" and tc ~= "table" and tc ~= "cdata" then
    error("bad 'ctor' argument to luact.register (function, table or cdata expected, got " .. tc .. ")", 2)
  end
  util.check_options(opts, REGISTER_OPTIONS, "luact.register", 2)
  if opts.upgrade ~= nil and type(opts.upgrade) ~= "boolean" then
    error("bad 'upgrade' option to luact.register (boolean expected, got " .. type(opts.upgrade) .. ")", 2)
  end
  if opts.upgrade then
    check_upgrade(opts, tc)
    local ok, r = pcall(cluster.upgrade, vid, ctor, args, call.DEFAULT_TIMEOUT)
    if not ok then error(r, 2) end
    return ref.named(vid)
  end
  check_register_options(opts)
  if clustered() and opts.scope ~= "node" then
    -- the cluster's registry: the name holds cluster-wide, and the actor moves when its node dies
    local ok, r = pcall(cluster.register, vid, opts, ctor, args, call.DEFAULT_TIMEOUT)
    if not ok then error(r, 2) end
    if opts.lazy then return ref.named(vid) end     -- no activation yet: the name itself
    return r
  end
  return register_on_node(vid, opts, ctor, args)
end

-- luact.unregister(vid[, actor]): removes the name (killing its actors), or one actor of it.
function names.unregister(vid, actor)
  check_vid(vid, "luact.unregister")
  local victims = {}
  if actor ~= nil then
    if not ref.is_plain(actor) then
      error("bad 'actor' argument to luact.unregister (actor reference expected, got " .. type(actor) .. ")", 2)
    end
  end
  if clustered() then
    -- every node mirrors the change and the hosts kill what the name no longer has; a name
    -- the registry does not hold is one of this node's own (scope = "node")
    if cluster.unregister(vid, actor, call.DEFAULT_TIMEOUT) then return true end
  end
  if actor ~= nil then
    if C.luact_names_remove(vid, #vid, address_of(actor), 0) > 0 then victims[1] = actor end
  else
    local max = 1024
    local list = ffi.new("luact_address_t[?]", max)
    local n = math.min(C.luact_names_list(vid, #vid, list, max), max)
    for i = 0, n - 1 do
      victims[#victims + 1] = ref.new(list[i].machine, list[i].thread, list[i].epoch, list[i]["local"])
    end
    C.luact_names_remove(vid, #vid, addr, 1)
  end
  for _, v in ipairs(victims) do pcall(monitors.kill, v) end
  return #victims > 0
end

-- The actor a name points to now (round robin for multi_actor names), or nil (also while a
-- cluster name is being placed on another node).
function names.resolve(vid)
  if C.luact_names_pick(vid, #vid, addr_out) ~= 0 then return nil end
  local a = addr_out[0]
  if a.machine == 0 then return nil end
  return a.machine, a.thread, a.epoch, a["local"]
end

local clock = require "luact.clock"
local scheduler = require "luact.scheduler"
-- A call by name that waits (a name being placed, woken or moved) looks again after 1 ms, then
-- twice as long each time up to RETRY_PAUSE: a short wait (an idle name woken: two registry
-- writes) ends within about a millisecond of the new activation, a long one (a failover)
-- costs a lookup every 20 ms per waiting caller.
local FIRST_RETRY_PAUSE = 0.001
local RETRY_PAUSE = 0.02

-- What a call by name in a cluster does: while the name is being placed, or its node is dead,
-- wait for the new activation (within the call's deadline); when the activation it reached was
-- superseded or is moving (actor_no_body, actor_temporary_fail: it did not run the call), try
-- again. A call that reached a node that died meanwhile fails with actor_unreachable: it may or
-- may not have run.
local function retry_after(e)
  return type(e) == "table" and (e.name == "actor_no_body" or e.name == "actor_temporary_fail" or
                                 (e.name == "actor_unreachable" and e.unsent == true))
end

local function timeout_error(vid, method)
  exception.raise("actor_timeout", ("no activation of '%s' answered '%s' in time"):format(vid, method))
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- This thread's resolutions of single-actor names, kept while the name table's version stays
-- the same (a multi_actor name is picked per call: round robin).
local resolved, resolved_version = {}, -1

local function resolve_cached(vid)
  local v = C.luact_names_version()
  if v ~= resolved_version then resolved, resolved_version = {}, v end
  local r = resolved[vid]
  if r then return r[1], r[2], r[3], r[4] end
  if C.luact_names_pick(vid, #vid, addr_out) ~= 0 then return nil end
  local a = addr_out[0]
  local m, t, e, l = a.machine, a.thread, a.epoch, a["local"]
  if C.luact_names_count(vid, #vid) == 1 then resolved[vid] = { m, t, e, l } end
  return m, t, e, l
end

-- The careful path of a call by name in a cluster: waits through placement, wakes and moves,
-- and tries again when the activation it reached did not run the call (see above).
local function dispatch_careful(vid, kind, method, has_self, ...)
  local dead = cluster.view.dead_machines
  local deadline, args_from = nil, 1
  if kind == "timed" then
    local t = ...
    call.check_timeout(method, t)
    deadline, args_from = clock.get() + t, 2
  else
    deadline = clock.get() + call.DEFAULT_TIMEOUT
  end
  local in_tentacle = scheduler.running() ~= nil
  local synced = false
  local woken_at = nil
  local pause = FIRST_RETRY_PAUSE
  while true do
    local found = C.luact_names_pick(vid, #vid, addr_out) == 0
    if not found and in_tentacle and not synced then
      -- this node's replica may lag behind a registration made elsewhere: catch up once
      synced = true
      pcall(cluster.sync_registry, deadline - clock.get())
      found = C.luact_names_pick(vid, #vid, addr_out) == 0
    end
    if not found then
      exception.raise("actor_no_body", ("no actor is registered under '%s'"):format(vid))
    end
    local a = addr_out[0]
    local m, t, e, l = a.machine, a.thread, a.epoch, a["local"]
    if m ~= 0 and not dead[m] then
      if kind == "notify" or kind == "async" then
        return call.dispatch(m, t, e, l, kind, method, has_self, select(args_from, ...))
      end
      local left = deadline - clock.get()
      if left < 0 then left = 0 end
      local r = pack(pcall(call.dispatch, m, t, e, l, "timed", method, has_self, left, select(args_from, ...)))
      if r[1] then return unpack(r, 2, r.n) end
      if not retry_after(r[2]) or clock.get() + RETRY_PAUSE >= deadline or not in_tentacle then error(r[2], 0) end
    elseif not in_tentacle then
      exception.raise("actor_temporary_fail", ("'%s' is being placed on another node"):format(vid))
    elseif m == 0 and a.thread == 1 and (woken_at == nil or clock.get() - woken_at > 1) then
      -- deactivated for idleness: this call activates it (and waits for it, as for a move)
      woken_at = clock.get()
      pcall(cluster.wake, vid, math.max(deadline - clock.get(), 0.01))
    elseif clock.get() + pause >= deadline then
      timeout_error(vid, method)
    end
    clock.sleep(pause)
    pause = math.min(pause * 2, RETRY_PAUSE)
  end
end

-- The end of a sync call by name on the calm path: its results, or, when the activation it
-- reached did not run it, the careful path with the same (at most 3) arguments. (The arguments
-- ride along as fixed parameters: no table per call.)
local function after_calm(vid, kind, method, has_self, n, a1, a2, a3, ok, ...)
  if ok then return ... end
  local e = ...
  if not retry_after(e) then error(e, 0) end
  if n == 0 then return dispatch_careful(vid, kind, method, has_self)
  elseif n == 1 then return dispatch_careful(vid, kind, method, has_self, a1)
  elseif n == 2 then return dispatch_careful(vid, kind, method, has_self, a1, a2) end
  return dispatch_careful(vid, kind, method, has_self, a1, a2, a3)
end

local function dispatch_cluster(vid, kind, method, has_self, ...)
  local dead = cluster.view.dead_machines
  -- while the cluster is calm (no membership change for a while), a name is called like the
  -- reference it resolves to: no protection, no retries (this path stays compiled). An
  -- activation of an earlier process on this machine (this node restarted and the name has not
  -- moved yet) takes the careful path.
  -- An activation that did not run the call (it was moving, being upgraded or going idle, or
  -- was superseded) sends a call waiting in a tentacle down the careful path.
  if clock.loop_time() >= cluster.view.turbulent_until then
    local m, t, e, l = resolve_cached(vid)
    if m and m ~= 0 and not dead[m] and (m ~= host.MACHINE or e == host.EPOCH) then
      if kind == "notify" or kind == "async" or scheduler.running() == nil then
        return call.dispatch(m, t, e, l, kind, method, has_self, ...)
      end
      local n = select("#", ...)
      if n <= 3 then
        local a1, a2, a3 = ...
        return after_calm(vid, kind, method, has_self, n, a1, a2, a3,
                          pcall(call.dispatch, m, t, e, l, kind, method, has_self, ...))
      end
      local r = pack(pcall(call.dispatch, m, t, e, l, kind, method, has_self, ...))
      if r[1] then return unpack(r, 2, r.n) end
      if not retry_after(r[2]) then error(r[2], 0) end
    end
  end
  return dispatch_careful(vid, kind, method, has_self, ...)
end

local function dispatch_named(vid, kind, method, has_self, ...)
  if clustered() then return dispatch_cluster(vid, kind, method, has_self, ...) end
  local m, t, e, l = names.resolve(vid)
  if not m then
    exception.raise("actor_no_body", ("no actor is registered under '%s'"):format(vid))
  end
  return call.dispatch(m, t, e, l, kind, method, has_self, ...)
end

ref.set_dispatch(call.dispatch, dispatch_named)
-- names.dispatch(vid, kind, method, has_self, ...): a call by name without a reference (the
-- listener's path: no reference, caller or cache per request).
names.dispatch = dispatch_named

local schemes = {}

-- A resolver for `scheme://...` references: fn(url, rest) -> reference (the node transport).
function names.add_scheme(scheme, fn)
  schemes[scheme] = fn
end

-- luact.ref(name or url[, opts]) -> a reference that resolves at call time (opts: a scheme's,
-- e.g. the CA of a tls:// listener)
function names.ref(gvid, opts)
  check_vid(gvid, "luact.ref")
  local scheme, rest = gvid:match("^(%a[%w+.-]*)://(.*)$")
  if scheme then
    local resolver = schemes[scheme:lower()]
    if not resolver then
      error(("luact.ref: no transport for '%s://' references (known: %s)"):format(scheme,
        next(schemes) and table.concat((function() local t = {} for k in pairs(schemes) do t[#t + 1] = k end table.sort(t) return t end)(), ", ") or "none yet"), 2)
    end
    return resolver(gvid, rest, opts)
  end
  return ref.named(gvid)
end

return names
