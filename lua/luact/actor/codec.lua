-- luact.actor.codec: the bytes of messages between VMs. LuaJIT's string.buffer encodes plain
-- data, and tables whose metatable is registered here (actor references, exceptions) come back
-- with that metatable. Functions without upvalues travel as bytecode; values that cannot travel
-- (coroutines, userdata, functions with upvalues, cdata) fail at the sender with an error that
-- names the value.
--
-- A message is either a table whose first element names its kind (any message), or, for the
-- two that every call makes, a compact frame: a kind number, a fixed binary header (an FFI
-- struct: no table to build or to collect) and the values as string.buffer objects:
--   KIND_CALL  | call_header  | method | arg 1..n       (n <= FAST_MAX_VALUES)
--   KIND_REPLY | reply_header | value 1..n             (an error: ok = 0, n = 1, the exception)
-- A call or reply with more values, or with a value that needs boxing (a function), goes as a
-- table instead. Both peers of a node connection run the same luact (the header is native
-- little-endian).
local buffer = require "string.buffer"
local ffi = require "ffi"
local ref = require "luact.actor.ref"
local exception = require "luact.exception"

local codec = {}

ffi.cdef [[
typedef struct { double l, e, corr, rm, left; int32_t rt, n; uint8_t has_self; } luact_call_header_t;
typedef struct { double corr; int32_t n; uint8_t ok; } luact_reply_header_t;
]]
local CALL_HEADER = ffi.typeof("luact_call_header_t*")
local CALL_HEADER_SIZE = ffi.sizeof("luact_call_header_t")
local REPLY_HEADER = ffi.typeof("luact_reply_header_t*")
local REPLY_HEADER_SIZE = ffi.sizeof("luact_reply_header_t")
local KIND_CALL, KIND_REPLY = 1, 2
local FAST_MAX_VALUES = 3
codec.KIND_CALL, codec.KIND_REPLY = KIND_CALL, KIND_REPLY

-- A function in transit: { code = bytecode }. Decoding turns it back into a function.
local FnBox = {}
codec.FnBox = FnBox

local Exception = getmetatable(exception.new("actor_error"))
-- The order is part of the wire format between VMs: append only.
local METATABLES = { ref.Ref, ref.NamedRef, Exception, FnBox, ref.UrlRef }

local enc = buffer.new({ metatable = METATABLES })
local dec = buffer.new({ metatable = METATABLES })

-- The bytecode of a Lua function that can run in another VM: code; or nil and why: "C" (a C
-- function) or "upvalue" and the name of the first upvalue it captures (each caller says what
-- that means for it).
function codec.bytecode(fn)
  local info = debug.getinfo(fn, "uS")
  if info.what == "C" then return nil, "C" end
  if info.nups > 0 then return nil, "upvalue", tostring(debug.getupvalue(fn, 1)) end
  return string.dump(fn)
end

-- Copies `v`, boxing functions; raises naming the first value that cannot travel. `name(path)`
-- turns the path of a value inside the message into words for the error.
local function box(v, path, seen, name)
  local tv = type(v)
  local function refuse(what)
    error(("%s %s and cannot be sent to another VM"):format(name(path), what), 0)
  end
  if tv == "function" then
    local code, why, upvalue = codec.bytecode(v)
    if why == "C" then refuse("is a C function") end
    if why then refuse(("is a function with upvalues ('%s')"):format(upvalue)) end
    return setmetatable({ code = code }, FnBox), true
  elseif tv == "table" then
    if seen[v] then return v, false end
    seen[v] = true
    local copy, boxed = {}, false
    for k, x in pairs(v) do
      local bk, kb = box(k, path, seen, name)
      local sub = {}
      for i = 1, #path do sub[i] = path[i] end
      sub[#sub + 1] = k
      local bx, xb = box(x, sub, seen, name)
      copy[bk] = bx
      boxed = boxed or kb or xb
    end
    if not boxed then return v, false end
    return setmetatable(copy, getmetatable(v)), true
  elseif tv == "thread" or tv == "userdata" or tv == "cdata" then
    refuse("is a " .. tv)
  end
  return v, false
end

local function unbox(v, seen)
  if type(v) ~= "table" then return v end
  if getmetatable(v) == FnBox then
    return assert(loadstring(v.code, "=moved function"))
  end
  if seen[v] then return v end
  seen[v] = true
  for k, x in pairs(v) do
    if type(x) == "table" then v[k] = unbox(x, seen) end
  end
  return v
end

-- The slow path of codec.encode: box functions, or raise naming what cannot travel. (Apart from
-- encode so that the fast path creates no closure and stays compiled.)
local function encode_slow(msg, what, first_arg, prefix)
  if first_arg and what then what = ("'%s%s'"):format(prefix or "", what) end
  local function name(path)
    local top = path[1]
    local s
    if first_arg and type(top) == "number" and top >= first_arg then
      s = ("argument #%d to %s"):format(top - first_arg + 1, what or "the call")
    else
      s = "a value of " .. (what or "the message")
    end
    if #path > 1 then
      local sub = {}
      for i = 2, #path do sub[#sub + 1] = tostring(path[i]) end
      s = s .. " (at ." .. table.concat(sub, ".") .. ")"
    end
    return s
  end
  local bok, boxed = pcall(box, msg, {}, {}, name)
  if not bok then error(boxed, 0) end
  boxed.fn = true
  enc:reset()
  local ok, err = pcall(enc.encode, enc, boxed)
  if not ok then error(("%s cannot be sent to another VM: %s"):format(what or "the message", tostring(err)), 0) end
  return enc:ref()
end

-- Encodes msg (a table) into the shared encoder; returns pointer and length, valid until the
-- next encode. For errors, `what` names the message (a method name, quoted with `prefix`
-- prepended, e.g. 'notify_hoge') and msg[first_arg...] are its arguments.
function codec.encode(msg, what, first_arg, prefix)
  enc:reset()
  if pcall(enc.encode, enc, msg) then return enc:ref() end
  return encode_slow(msg, what, first_arg, prefix)
end

-- codec.encode that returns nil, err instead of raising (for a caller on a hot path: a pcall
-- around codec.encode would make its trace abort, "NYI: return to lower frame").
function codec.try_encode(msg, what, first_arg, prefix)
  enc:reset()
  if pcall(enc.encode, enc, msg) then return enc:ref() end
  local ok, p, len = pcall(encode_slow, msg, what, first_arg, prefix)
  if ok then return p, len end
  return nil, p
end

local function put_values(n, a1, a2, a3)
  if n >= 1 then
    enc:encode(a1)
    if n >= 2 then
      enc:encode(a2)
      if n >= 3 then enc:encode(a3) end
    end
  end
end

local function encode_call_frame(l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3)
  enc:reset()
  enc:encode(KIND_CALL)
  local h = ffi.cast(CALL_HEADER, (enc:reserve(CALL_HEADER_SIZE)))
  h.l, h.e, h.corr, h.rm, h.left, h.rt, h.n = l, e, corr, rm, left, rt, n
  h.has_self = has_self and 1 or 0
  enc:commit(CALL_HEADER_SIZE)
  enc:encode(method)
  put_values(n, a1, a2, a3)
end

-- A call as a compact frame (see the top): returns pointer and length (valid until the next
-- encode), or nil when it must go as a table (n > FAST_MAX_VALUES, or a value needs boxing).
-- corr 0 is a notify_; rt, rm: the thread and machine to answer; left: seconds to the deadline.
function codec.encode_call(l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3)
  if n > FAST_MAX_VALUES then return nil end
  if not pcall(encode_call_frame, l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3) then return nil end
  return enc:ref()
end

local function encode_reply_frame(corr, ok, n, a1, a2, a3)
  enc:reset()
  enc:encode(KIND_REPLY)
  local h = ffi.cast(REPLY_HEADER, (enc:reserve(REPLY_HEADER_SIZE)))
  h.corr, h.n, h.ok = corr, n, ok and 1 or 0
  enc:commit(REPLY_HEADER_SIZE)
  put_values(n, a1, a2, a3)
end

-- A reply as a compact frame, or nil (as codec.encode_call).
function codec.encode_reply(corr, ok, n, a1, a2, a3)
  if n > FAST_MAX_VALUES then return nil end
  if not pcall(encode_reply_frame, corr, ok, n, a1, a2, a3) then return nil end
  return enc:ref()
end

-- The next n (<= 3) values of the entry (the counterpart of put_values).
local function take_values(n)
  if n == 0 then return end
  local a1 = dec:decode()
  if n == 1 then return a1 end
  local a2 = dec:decode()
  if n == 2 then return a1, a2 end
  return a1, a2, dec:decode()
end

-- After decode_next returned KIND_CALL: l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3.
function codec.read_call()
  if #dec < CALL_HEADER_SIZE then error("truncated call frame", 0) end
  local h = ffi.cast(CALL_HEADER, (dec:ref()))
  local l, e, corr, rm, left, rt, n, has_self = h.l, h.e, h.corr, h.rm, h.left, h.rt, h.n, h.has_self ~= 0
  if n < 0 or n > FAST_MAX_VALUES then error("malformed call frame", 0) end
  dec:skip(CALL_HEADER_SIZE)
  local method = dec:decode()
  local a1, a2, a3 = take_values(n)
  return l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3
end

-- After decode_next returned KIND_REPLY: corr, ok, n, v1, v2, v3.
function codec.read_reply()
  if #dec < REPLY_HEADER_SIZE then error("truncated reply frame", 0) end
  local h = ffi.cast(REPLY_HEADER, (dec:ref()))
  local corr, n, ok = h.corr, h.n, h.ok ~= 0
  if n < 0 or n > FAST_MAX_VALUES then error("malformed reply frame", 0) end
  dec:skip(REPLY_HEADER_SIZE)
  local v1, v2, v3 = take_values(n)
  return corr, ok, n, v1, v2, v3
end

-- Starts reading an inbox entry: len bytes at p holding one or more messages.
function codec.begin(p, len)
  dec:set(p, len)
end

-- The entry's next message (see codec.begin); raises on malformed input.
function codec.decode_next()
  local msg = dec:decode()
  if type(msg) == "table" and msg.fn then
    msg = unbox(msg, {})
  end
  return msg
end

-- Bytes of the entry not read yet.
function codec.remaining()
  return #dec
end

-- After codec.decode_next: the next object of the entry, or nil when none is left (the body
-- that follows a listener call's header).
function codec.decode_rest()
  if #dec == 0 then return nil end
  return dec:decode()
end

-- A value as a string of its own, and back (what the cluster's registry stores: a virtual
-- actor's arguments, actor references included). Decoding uses a buffer of its own, so it is
-- safe inside a message handler. Raises naming what cannot travel.
local own_dec = buffer.new({ metatable = METATABLES })
function codec.to_string(v, what)
  local p, len = codec.encode({ v }, what, 1, "")
  return ffi.string(p, len)
end

function codec.from_string(s)
  own_dec:set(s)
  local t = own_dec:decode()
  if type(t) == "table" and t.fn then t = unbox(t, {}) end
  return t[1]
end

return codec
