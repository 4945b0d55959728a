-- luact.cluster.raft.storage_file: durable Raft storage in one directory, written through libc
-- (LuaJIT FFI: open/write/fsync/rename/ftruncate). Same five methods as storage_memory.
--
--   <dir>/log        append-only records, one per entry (truncated in place on conflicts,
--                    rewritten on compaction)
--   <dir>/hardstate  one record { term, vote, commit }, replaced atomically
--   <dir>/snapshot   one record { index, term, conf, data }, replaced atomically
--
-- A record is: u32 length (little endian) | payload | u32 FNV-1a of payload. A torn or corrupt
-- tail of the log is cut off at load. "Replaced atomically" = write <name>.tmp, fsync it,
-- rename it over <name>, fsync the directory. sync() fsyncs the log, then writes the hard
-- state; Raft calls it before it returns messages that depend on what it wrote.
-- The hard state file is rewritten only when term or vote change: a stale commit index is safe
-- (the node learns the real one from the leader), and it saves an fsync per round.

local ffi = require "ffi"
local bit = require "bit"
local bxor, band, rshift = bit.bxor, bit.band, bit.rshift
local byte, char, sub, concat = string.byte, string.char, string.sub, table.concat

for _, decl in ipairs({
  "int open(const char *pathname, int flags, int mode);",
  "ptrdiff_t write(int fd, const void *buf, size_t count);",
  "int fsync(int fd);",
  "int close(int fd);",
  "int rename(const char *oldpath, const char *newpath);",
  "int ftruncate(int fd, int64_t length);",
  "int mkdir(const char *pathname, unsigned int mode);",
  "char *strerror(int errnum);",
}) do
  pcall(ffi.cdef, decl)
end
local C = ffi.C

-- Linux values (same on x86_64 and aarch64)
local O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_APPEND = 0, 1, 64, 512, 1024
local EEXIST = 17

local function fail(what, path)
  local e = ffi.errno()
  error(("raft storage: %s %s: %s"):format(what, path, ffi.string(C.strerror(e))), 3)
end

local function open(path, flags)
  local fd = C.open(path, flags, 420) -- 0644
  if fd < 0 then fail("open", path) end
  return fd
end

local function write_all(fd, s, path)
  local p, n = ffi.cast("const char *", s), #s
  local off = 0
  while off < n do
    local w = tonumber(C.write(fd, p + off, n - off))
    if w < 0 then
      if ffi.errno() ~= 4 then fail("write", path) end -- 4 = EINTR
    else
      off = off + w
    end
  end
end

local function fsync(fd, path, off)
  if off then return end
  if C.fsync(fd) ~= 0 then fail("fsync", path) end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

---------------------------------------------------------------------------------------------
-- encoding
---------------------------------------------------------------------------------------------

local function u32le(n)
  return char(n % 256, rshift(n, 8) % 256, rshift(n, 16) % 256, rshift(n, 24) % 256)
end

local function read_u32(s, pos)
  local a, b, c, d = byte(s, pos, pos + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

local function fnv(s)
  local h = 2166136261
  for i = 1, #s do
    h = bxor(h, byte(s, i))
    -- h * 16777619 mod 2^32 = h * 2^24 + h * 403 (both exact in doubles after tobit)
    h = bit.tobit(bit.lshift(h, 24) + (h % 4294967296) * 403)
  end
  return h % 4294967296
end

local function frame(payload)
  return u32le(#payload) .. payload .. u32le(fnv(payload))
end

-- the record at pos, or nil if torn or corrupt; returns payload, next_pos
local function unframe(s, pos)
  if pos + 3 > #s then return nil end
  local len = read_u32(s, pos)
  local stop = pos + 4 + len
  if stop + 3 > #s then return nil end
  local payload = sub(s, pos + 4, stop - 1)
  if read_u32(s, stop) ~= fnv(payload) then return nil end
  return payload, stop + 4
end

-- values: nil, integer numbers, other numbers, strings, lists of those
local function enc(v, out)
  local t = type(v)
  if v == nil then
    out[#out + 1] = "z"
  elseif t == "number" then
    out[#out + 1] = ("n%.17g;"):format(v)
  elseif t == "string" then
    out[#out + 1] = "s" .. #v .. ":" .. v
  elseif t == "boolean" then
    out[#out + 1] = v and "T" or "F"
  elseif t == "table" then
    out[#out + 1] = "l" .. #v .. ":"
    for i = 1, #v do enc(v[i], out) end
  else
    error("raft storage: cannot encode a " .. t, 3)
  end
end

local function dec(s, pos)
  local tag = sub(s, pos, pos)
  if tag == "z" then return nil, pos + 1 end
  if tag == "T" then return true, pos + 1 end
  if tag == "F" then return false, pos + 1 end
  if tag == "n" then
    local e = s:find(";", pos, true)
    return tonumber(sub(s, pos + 1, e - 1)), e + 1
  end
  local colon = s:find(":", pos, true)
  local n = tonumber(sub(s, pos + 1, colon - 1))
  if tag == "s" then return sub(s, colon + 1, colon + n), colon + 1 + n end
  if tag == "l" then
    local list, p = {}, colon + 1
    for i = 1, n do list[i], p = dec(s, p) end
    return list, p
  end
  error("raft storage: corrupt record", 0)
end

local function encode(...)
  local out = {}
  for i = 1, select("#", ...) do enc((select(i, ...)), out) end
  return concat(out)
end

local function decode(s, count)
  local vals, p = {}, 1
  for i = 1, count do vals[i], p = dec(s, p) end
  return vals
end

local function encode_entry(e)
  return frame(encode(e.index, e.term, e.data, e.conf and e.conf.voters))
end

local function decode_entry(payload)
  local v = decode(payload, 4)
  local e = { index = v[1], term = v[2], data = v[3] }
  if v[4] then e.conf = { voters = v[4] } end
  return e
end

---------------------------------------------------------------------------------------------
-- the storage
---------------------------------------------------------------------------------------------

local F = {}
F.__index = F

local M = {}

-- open (creating if needed) the storage directory `dir`. opts.fsync = false skips every fsync
-- (for tests that exercise the format, never for data you keep)
function M.open(dir, opts)
  if type(dir) ~= "string" or dir == "" then error("bad 'dir' argument (path expected)", 2) end
  if C.mkdir(dir, 493) ~= 0 and ffi.errno() ~= EEXIST then fail("mkdir", dir) end
  local self = setmetatable({
    dir = dir, opts = opts or {},
    log_path = dir .. "/log", hs_path = dir .. "/hardstate", snap_path = dir .. "/snapshot",
    offsets = {},  -- index -> byte offset of its record in the log file
    terms = {},    -- index -> term
    first = 1, last = 0, size = 0,
    hs = { term = 0, commit = 0 }, written_hs = nil, pending_hs = nil,
    log_dirty = false, snap = nil, syncs = 0,
    no_fsync = opts ~= nil and opts.fsync == false,
  }, F)
  self.fd = nil
  return self
end

function F:close()
  if self.fd then C.close(self.fd); self.fd = nil end
end

function F:sync_dir()
  if self.no_fsync then return end
  local fd = open(self.dir, O_RDONLY)
  C.fsync(fd) -- some filesystems refuse fsync on a directory; the rename is still ordered
  C.close(fd)
end

function F:replace(path, data)
  local tmp = path .. ".tmp"
  local fd = open(tmp, O_WRONLY + O_CREAT + O_TRUNC)
  write_all(fd, data, tmp)
  fsync(fd, tmp, self.no_fsync)
  C.close(fd)
  if C.rename(tmp, path) ~= 0 then fail("rename", tmp) end
  self:sync_dir()
end

function F:load()
  local hs = { term = 0, commit = 0 }
  local s = read_file(self.hs_path)
  if s then
    local payload = unframe(s, 1)
    if not payload then error("raft storage: corrupt " .. self.hs_path, 2) end
    local v = decode(payload, 3)
    hs = { term = v[1], vote = v[2], commit = v[3] }
  end
  self.hs, self.written_hs = hs, { term = hs.term, vote = hs.vote }

  local snap
  s = read_file(self.snap_path)
  if s then
    local payload = unframe(s, 1)
    if not payload then error("raft storage: corrupt " .. self.snap_path, 2) end
    local v = decode(payload, 4)
    snap = { index = v[1], term = v[2], conf = { voters = v[3] }, data = v[4] }
  end
  self.snap = snap
  local base = snap and snap.index or 0

  -- the log: keep the longest run of good records that continues the snapshot
  local entries, offsets, terms = {}, {}, {}
  local data = read_file(self.log_path) or ""
  local pos, good = 1, 0
  local expect = nil
  while true do
    local payload, nxt = unframe(data, pos)
    if not payload then break end
    local ok, e = pcall(decode_entry, payload)
    if not ok or type(e.index) ~= "number" then break end
    if expect and e.index ~= expect then break end
    if e.index <= base then
      if e.index == base and snap and e.term ~= snap.term then
        -- the log diverged from the snapshot: nothing in it is usable
        entries, offsets, terms = {}, {}, {}
        good = nxt - 1
        break
      end
    else
      if #entries == 0 and e.index ~= base + 1 then break end
      entries[#entries + 1] = e
    end
    offsets[e.index], terms[e.index] = pos - 1, e.term
    expect = e.index + 1
    good = nxt - 1
    pos = nxt
  end
  self.offsets, self.terms = offsets, terms
  self.first = base + 1
  self.last = base + #entries
  -- reopen for appending, cutting a torn tail (or a diverged log) off
  self:close()
  self.fd = open(self.log_path, O_WRONLY + O_CREAT + O_APPEND)
  if #entries == 0 then
    if C.ftruncate(self.fd, 0) ~= 0 then fail("ftruncate", self.log_path) end
    self.offsets, self.terms, self.size = {}, {}, 0
  else
    if good < #data and C.ftruncate(self.fd, good) ~= 0 then fail("ftruncate", self.log_path) end
    self.size = good
  end
  return { hard_state = { term = hs.term, vote = hs.vote, commit = hs.commit },
           snapshot = snap, entries = entries }
end

function F:ensure_open()
  if not self.fd then self:load() end
end

-- replace every stored entry with index >= from by `entries`
function F:append(from, entries)
  self:ensure_open()
  if from < self.first then error("storage: append below the snapshot", 2) end
  if from > self.last + 1 then error("storage: append leaves a hole", 2) end
  if from <= self.last then
    local off = self.offsets[from]
    if C.ftruncate(self.fd, off) ~= 0 then fail("ftruncate", self.log_path) end
    for i = from, self.last do self.offsets[i], self.terms[i] = nil, nil end
    self.size, self.last = off, from - 1
  end
  if #entries == 0 then self.log_dirty = true; return end
  local parts = {}
  local off = self.size
  for i = 1, #entries do
    local e = entries[i]
    local rec = encode_entry(e)
    parts[i] = rec
    self.offsets[e.index], self.terms[e.index] = off, e.term
    off = off + #rec
  end
  write_all(self.fd, concat(parts), self.log_path)
  self.size, self.last = off, entries[#entries].index
  self.log_dirty = true
end

function F:set_hard_state(hs)
  self.hs = { term = hs.term, vote = hs.vote, commit = hs.commit }
  local w = self.written_hs
  if not w or w.term ~= hs.term or w.vote ~= hs.vote then self.pending_hs = true end
end

function F:sync()
  self:ensure_open()
  if self.log_dirty then
    fsync(self.fd, self.log_path, self.no_fsync)
    self.log_dirty = false
  end
  if self.pending_hs then
    local hs = self.hs
    self:replace(self.hs_path, frame(encode(hs.term, hs.vote, hs.commit)))
    self.written_hs, self.pending_hs = { term = hs.term, vote = hs.vote }, false
  end
  self.syncs = self.syncs + 1
end

-- store snap and drop the log up to it (all of it if `reset` or if it disagrees with snap)
function F:save_snapshot(snap, reset)
  self:ensure_open()
  self:replace(self.snap_path, frame(encode(snap.index, snap.term, snap.conf.voters, snap.data)))
  self.snap = snap
  local keep = not reset and self.terms[snap.index] == snap.term and snap.index < self.last
  local tail = ""
  if keep then
    local data = read_file(self.log_path) or ""
    tail = sub(data, self.offsets[snap.index + 1] + 1, self.size)
  end
  self:replace(self.log_path, tail)
  self:close()
  self.fd = open(self.log_path, O_WRONLY + O_CREAT + O_APPEND)
  local offsets, terms = {}, {}
  if keep then
    local shift = self.offsets[snap.index + 1]
    for i = snap.index + 1, self.last do
      offsets[i], terms[i] = self.offsets[i] - shift, self.terms[i]
    end
    self.size = #tail
  else
    self.last = snap.index
    self.size = 0
  end
  self.offsets, self.terms, self.first = offsets, terms, snap.index + 1
  self.log_dirty = false
end

M.frame, M.unframe, M.encode, M.decode = frame, unframe, encode, decode
return M
