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
local exception = require "luact.exception"

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

-- luact.register(vid, [opts,] ctor, ...) -> reference to the created actor
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
  local id = host.new_id()
  local r = ref.new(host.MACHINE, require("luact.runtime").thread_id or 1, host.EPOCH, id)
  local rc = C.luact_names_add(vid, #vid, address_of(r), opts.multi_actor and 1 or 0)
  if rc == 1 then
    exception.raise("vid_registered", ("'%s' is registered already%s"):format(vid,
      opts.multi_actor and " (and not as multi_actor)" or ""))
  elseif rc ~= 0 then
    error("luact.register: " .. lffi.describe(rc), 2)
  end
  local sup = {}
  for k, v in pairs(opts) do if k ~= "multi_actor" then sup[k] = v end end
  local ok, created, rec = pcall(host.create, ctor, args, sup, id)
  if not ok then
    C.luact_names_remove(vid, #vid, address_of(r), 0)
    error(created, 2)
  end
  host.on_death(rec, function()
    C.luact_names_remove(vid, #vid, address_of(r), 0)
  end)
  return created
end

-- luact.unregister(vid[, actor]): removes the name (killing its actors), or one actor of it.
function names.unregister(vid, actor)
  check_vid(vid, "luact.unregister")
  local victims = {}
  if actor ~= nil then
    if not ref.is_plain(actor) then
      error("bad 'actor' argument to luact.unregister (actor reference expected, got " .. type(actor) .. ")", 2)
    end
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
  for _, v in ipairs(victims) do pcall(call.kill, v) end
  return #victims > 0
end

-- The actor a name points to now (round robin for multi_actor names), or nil.
function names.resolve(vid)
  if C.luact_names_pick(vid, #vid, addr_out) ~= 0 then return nil end
  local a = addr_out[0]
  return a.machine, a.thread, a.epoch, a["local"]
end

local function dispatch_named(vid, kind, method, has_self, ...)
  local m, t, e, l = names.resolve(vid)
  if not m then
    exception.raise("actor_no_body", ("no actor is registered under '%s'"):format(vid))
  end
  return call.dispatch(m, t, e, l, kind, method, has_self, ...)
end

ref.set_dispatch(call.dispatch, dispatch_named)

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
