-- luact.actor.codec: the bytes of messages between VMs. LuaJIT's string.buffer encodes plain
-- data, and tables whose metatable is registered here (actor references, exceptions) come back
-- with that metatable. Functions without upvalues travel as bytecode; values that cannot travel
-- (coroutines, userdata, functions with upvalues, cdata) fail at the sender with an error that
-- names the value.
local buffer = require "string.buffer"
local ref = require "luact.actor.ref"
local exception = require "luact.exception"

local codec = {}

-- A function in transit: { code = bytecode }. Decoding turns it back into a function.
local FnBox = {}
codec.FnBox = FnBox

local Exception = getmetatable(exception.new("actor_error"))
-- The order is part of the wire format between VMs: append only.
local METATABLES = { ref.Ref, ref.NamedRef, Exception, FnBox }

local enc = buffer.new({ metatable = METATABLES })
local dec = buffer.new({ metatable = METATABLES })

-- Copies `v`, boxing functions; raises naming the first value that cannot travel.
local function box(v, path, seen)
  local tv = type(v)
  if tv == "function" then
    local info = debug.getinfo(v, "uS")
    if info.what == "C" then
      error(("%s is a C function and cannot be sent to another VM"):format(path), 0)
    end
    if info.nups > 0 then
      error(("%s is a function with upvalues ('%s') and cannot be sent to another VM"):format(path, tostring(debug.getupvalue(v, 1))), 0)
    end
    return setmetatable({ code = string.dump(v) }, FnBox), true
  elseif tv == "table" then
    if seen[v] then return v, false end
    seen[v] = true
    local copy, boxed = {}, false
    for k, x in pairs(v) do
      local bk, kb = box(k, path .. "[key]", seen)
      local bx, xb = box(x, path .. "." .. tostring(k), seen)
      copy[bk] = bx
      boxed = boxed or kb or xb
    end
    if not boxed then return v, false end
    return setmetatable(copy, getmetatable(v)), true
  elseif tv == "thread" or tv == "userdata" or tv == "cdata" then
    error(("%s is a %s and cannot be sent to another VM"):format(path, tv), 0)
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

-- Encodes msg (a table) into the shared encoder; returns pointer and length, valid until the
-- next encode. `what` names the message for errors (e.g. "argument to 'hoge'").
function codec.encode(msg, what)
  enc:reset()
  local ok, err = pcall(enc.encode, enc, msg)
  if ok then return enc:ref() end
  -- slow path: something that string.buffer refuses; box functions and name the culprit
  local bok, boxed = pcall(box, msg, what or "value", {})
  if not bok then error(boxed, 0) end
  boxed.fn = true
  enc:reset()
  ok, err = pcall(enc.encode, enc, boxed)
  if not ok then error((what or "value") .. " cannot be sent to another VM: " .. tostring(err), 0) end
  return enc:ref()
end

-- Encodes into a Lua string (for payloads kept longer than one send).
function codec.encode_string(msg, what)
  local p, len = codec.encode(msg, what)
  return require("ffi").string(p, len)
end

-- Decodes len bytes at p (a message the core handed over); raises on malformed input.
function codec.decode(p, len)
  dec:set(p, len)
  local msg = dec:decode()
  if type(msg) == "table" and msg.fn then
    msg = unbox(msg, {})
  end
  return msg
end

return codec
