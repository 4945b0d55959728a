-- luact.memory: memory outside the Lua GC, allocated by the core (so it can be counted).
-- Copy with ffi.copy; it is faster than anything here.
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C

local memory = {}

local function check_size(sz, who)
  if type(sz) ~= "number" or sz < 0 or sz ~= math.floor(sz) then
    error(("bad 'sz' argument to memory.%s (non-negative integer expected, got %s)"):format(who, tostring(sz)), 3)
  end
end

local function check_ptr(p, name, who)
  if type(p) ~= "cdata" then
    error(("bad '%s' argument to memory.%s (pointer expected, got %s)"):format(name, who, type(p)), 3)
  end
end

local ptr_types = setmetatable({}, { __mode = "k" })
local function ptr_type(ct)
  local ctype = ffi.typeof(ct)
  local pt = ptr_types[ctype]
  if not pt then
    pt = ffi.typeof("$*", ctype)
    ptr_types[ctype] = pt
  end
  return pt, ffi.sizeof(ctype)
end

local function checked(p, sz)
  if p == nil then error(("luact.memory: out of memory (%d bytes)"):format(sz), 3) end
  return p
end

function memory.alloc(sz)
  check_size(sz, "alloc")
  return checked(C.luact_alloc(sz), sz)
end

function memory.alloc_typed(ct, n)
  n = n or 1
  check_size(n, "alloc_typed")
  local pt, size = ptr_type(ct)
  return ffi.cast(pt, checked(C.luact_alloc(size * n), size * n))
end

function memory.realloc(p, sz)
  check_size(sz, "realloc")
  return checked(C.luact_realloc(p, sz), sz)
end

function memory.realloc_typed(ct, p, n)
  check_size(n, "realloc_typed")
  local pt, size = ptr_type(ct)
  return ffi.cast(pt, checked(C.luact_realloc(p, size * n), size * n))
end

-- The managed_ variants are freed by the GC when the returned cdata is collected.
function memory.managed_alloc(sz)
  return ffi.gc(memory.alloc(sz), C.luact_free)
end

function memory.managed_alloc_typed(ct, n)
  return ffi.gc(memory.alloc_typed(ct, n), C.luact_free)
end

function memory.managed_realloc(p, sz)
  ffi.gc(p, nil)
  return ffi.gc(memory.realloc(p, sz), C.luact_free)
end

function memory.free(p)
  if p == nil then return end
  check_ptr(p, "p", "free")
  ffi.gc(p, nil)
  C.luact_free(p)
end

-- true when the first sz bytes of p and q are equal
function memory.cmp(p, q, sz)
  check_size(sz, "cmp")
  return C.luact_memory_equal(p, q, sz) ~= 0
end

-- copies sz bytes from q to p; the regions may overlap
function memory.move(p, q, sz)
  check_size(sz, "move")
  check_ptr(p, "p", "move")
  C.luact_memory_move(p, q, sz)
  return p
end

-- sets sz bytes at p to byte (default 0)
function memory.fill(p, sz, byte)
  check_size(sz, "fill")
  check_ptr(p, "p", "fill")
  C.luact_memory_fill(p, byte or 0, sz)
  return p
end

-- a NUL-terminated copy of a Lua string (free it with memory.free)
function memory.strdup(s)
  if type(s) ~= "string" then
    error("bad 's' argument to memory.strdup (string expected, got " .. type(s) .. ")", 2)
  end
  local p = ffi.cast("char*", checked(C.luact_alloc(#s + 1), #s + 1))
  ffi.copy(p, s, #s + 1)
  return p
end

-- blocks allocated through this module and not yet freed (process-wide)
function memory.live_allocations()
  return tonumber(C.luact_memory_live_allocations())
end

return memory
