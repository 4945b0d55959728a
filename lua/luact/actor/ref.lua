-- luact.actor.ref: actor references. A reference is a plain table { machine_id, thread_id, epoch,
-- local id } (array slots M, T, E, L) with the `Ref` metatable, so it travels inside messages
-- (see luact.actor.codec) and stays callable anywhere. Indexing it with a message name returns a
-- caller; the name's prefix (timed_, notify_, async_) picks how the call is made. A named
-- reference (`luact.ref(vid)`) is { vid } with the `NamedRef` metatable and resolves the name at
-- each call. A reference keeps its identity in integer slots only: every string key is a
-- message name, so no method name a user may choose is shadowed (`a:t()`, `a:vid()`, ...).
local ref = {}

local Ref = { __luact_ref = true }
local NamedRef = { __luact_ref = true }
local UrlRef = { __luact_ref = true }     -- { url, addr, vid, tls }: a name behind another node's listener
ref.Ref, ref.NamedRef, ref.UrlRef = Ref, NamedRef, UrlRef

-- The slots (also the wire layout: src/wire/trust.rs reads them; a signed reference handed to a
-- listener client has its signature in slot 5).
local M, T, E, L = 1, 2, 3, 4           -- Ref
local VID = 1                           -- NamedRef
local URL, ADDR, UVID, TLS = 1, 2, 3, 4 -- UrlRef

-- m, t, e, l of a plain reference.
function ref.parts(r)
  return r[M], r[T], r[E], r[L]
end

-- The name of a named reference.
function ref.vid(r)
  return r[VID]
end

local dispatch          -- function(m, t, e, l, kind, method, has_self, ...), set by luact.actor.call
local dispatch_named    -- function(vid, kind, method, has_self, ...)
local dispatch_url      -- function(addr, vid, kind, method, has_self, ...), set by luact.listener

function ref.set_dispatch(fn, named_fn)
  dispatch, dispatch_named = fn, named_fn
end

function ref.set_url_dispatch(fn)
  dispatch_url = fn
end

local PREFIXES = { { "timed_", "timed" }, { "notify_", "notify" }, { "async_", "async" } }
-- message name -> { kind, method }. Names come from outside too (every method a listener
-- client sends), so the cache is bounded: past PARSED_MAX names it starts over.
local PARSED_MAX = 4096
local parsed, n_parsed = {}, 0
ref.PARSED_MAX = PARSED_MAX
local function parse(key)
  local p = parsed[key]
  if p then return p end
  if n_parsed >= PARSED_MAX then parsed, n_parsed = {}, 0 end
  n_parsed = n_parsed + 1
  p = { "sync", key }
  for _, pre in ipairs(PREFIXES) do
    local prefix = pre[1]
    if key:sub(1, #prefix) == prefix and #key > #prefix then
      p = { pre[2], key:sub(#prefix + 1) }
      break
    end
  end
  parsed[key] = p
  return p
end
ref.parse = parse
-- How many message names the cache holds (never more than PARSED_MAX).
function ref.parsed_count() return n_parsed end

-- Callers are cached per reference; they capture the reference's numbers, not the reference,
-- so the weak-keyed cache never keeps a reference alive.
local callers = setmetatable({}, { __mode = "k" })

local function make_caller(m, t, e, l, kind, method)
  return function(first, ...)
    if type(first) == "table" and getmetatable(first) == Ref and first[L] == l and first[M] == m then
      return dispatch(m, t, e, l, kind, method, true, ...)          -- a:method(...)
    end
    return dispatch(m, t, e, l, kind, method, false, first, ...)    -- a.method(...)
  end
end

-- An __index that returns (and caches per reference) the caller of a message name;
-- make(self, kind, method) builds it from the reference's fields.
local function caller_index(make)
  return function(self, key)
    if type(key) ~= "string" then return nil end
    local cache = callers[self]
    if not cache then
      cache = {}
      callers[self] = cache
    end
    local f = cache[key]
    if f then return f end
    local p = parse(key)
    f = make(self, p[1], p[2])
    cache[key] = f
    return f
  end
end

Ref.__index = caller_index(function(self, kind, method)
  return make_caller(self[M], self[T], self[E], self[L], kind, method)
end)

function Ref.__eq(a, b)
  return a[L] == b[L] and a[M] == b[M] and a[T] == b[T] and a[E] == b[E]
end

function Ref.__tostring(self)
  return ("actor(%d:%d:%.0f@%.0f)"):format(self[M], self[T], self[L], self[E])
end

local function make_named_caller(vid, kind, method)
  return function(first, ...)
    if type(first) == "table" and getmetatable(first) == NamedRef and first[VID] == vid then
      return dispatch_named(vid, kind, method, true, ...)
    end
    return dispatch_named(vid, kind, method, false, first, ...)
  end
end

NamedRef.__index = caller_index(function(self, kind, method)
  return make_named_caller(self[VID], kind, method)
end)

function NamedRef.__eq(a, b)
  return a[VID] == b[VID]
end

function NamedRef.__tostring(self)
  return "actor(" .. self[VID] .. ")"
end

local function make_url_caller(addr, vid, tls, kind, method)
  return function(first, ...)
    if type(first) == "table" and getmetatable(first) == UrlRef and first[ADDR] == addr and first[UVID] == vid then
      return dispatch_url(addr, vid, tls, kind, method, true, ...)
    end
    return dispatch_url(addr, vid, tls, kind, method, false, first, ...)
  end
end

UrlRef.__index = caller_index(function(self, kind, method)
  return make_url_caller(self[ADDR], self[UVID], self[TLS], kind, method)
end)

function UrlRef.__eq(a, b)
  return a[ADDR] == b[ADDR] and a[UVID] == b[UVID]
end

function UrlRef.__tostring(self)
  return "actor(" .. self[URL] .. ")"
end

-- tls: nil, or { ca = path, cert = path, key = path } for a tls:// listener
function ref.url(url, addr, vid, tls)
  return setmetatable({ url, addr, vid, tls }, UrlRef)
end

function ref.new(m, t, e, l)
  return setmetatable({ m, t, e, l }, Ref)
end

function ref.named(vid)
  return setmetatable({ vid }, NamedRef)
end

function ref.is_ref(v)
  local mt = type(v) == "table" and getmetatable(v)
  return mt == Ref or mt == NamedRef or mt == UrlRef
end

function ref.is_plain(v)
  return type(v) == "table" and getmetatable(v) == Ref
end

return ref
