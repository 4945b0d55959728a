-- luact.cluster.raft.storage_io: the system calls of the file storage (raft/storage_file.lua),
-- through libc (LuaJIT FFI: open/write/fsync/rename/ftruncate). It owns no state: a job is plain
-- data (the log's fd and path, the directory, a list of operations in order), so that it can run
-- in this VM (storage_file's sync()) or in another one (an offload pool thread: luact.cluster.
-- consensus runs every job there, so that a slow disk never stops thread 1's loop).
--
-- Operations, executed in order (a failure raises "raft storage: <what> <path>: <errno text>"):
--   { "trunc", offset }              cut the log file at offset
--   { "write", bytes }               append bytes to the log file
--   { "fsync_log" }                  fsync the log file
--   { "replace", path, bytes }       write path.tmp, fsync it, rename it over path, fsync the dir
--   { "snapshot", path, index, term, voters, data }   replace path with the snapshot's record
--   { "rewrite_log", from, to }      replace the log file with MAGIC .. its bytes [from, to)
--                                    (none when from is nil), then reopen it for appending
-- run(job) returns { fd = the log's fd (a new one after rewrite_log), fsyncs = count,
-- fsync_seconds = { each fsync's duration } }.

local ffi = require "ffi"
local record = require "luact.cluster.raft.record"

for _, decl in ipairs({
  "int open(const char *pathname, int flags, int mode);",
  "ptrdiff_t write(int fd, const void *buf, size_t count);",
  "int fsync(int fd);",
  "int close(int fd);",
  "int rename(const char *oldpath, const char *newpath);",
  "int ftruncate(int fd, int64_t length);",
  "int mkdir(const char *pathname, unsigned int mode);",
  "char *strerror(int errnum);",
  "typedef struct { long tv_sec; long tv_nsec; } luact_raft_timespec;",
  -- (void *: a program that declared clock_gettime first with its own struct keeps its
  -- declaration, and both calls still fit it)
  "int clock_gettime(int clk, void *ts);",
}) do
  pcall(ffi.cdef, decl)
end
local C = ffi.C

local M = {}

-- Linux values (same on x86_64 and aarch64)
M.O_RDONLY, M.O_WRONLY, M.O_CREAT, M.O_TRUNC, M.O_APPEND = 0, 1, 64, 512, 1024
M.EEXIST = 17
local O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_APPEND = M.O_RDONLY, M.O_WRONLY, M.O_CREAT, M.O_TRUNC, M.O_APPEND

function M.fail(what, path, level)
  local e = ffi.errno()
  error(("raft storage: %s %s: %s"):format(what, path, ffi.string(C.strerror(e))), (level or 2) + 1)
end
local fail = M.fail

function M.open(path, flags)
  local fd = C.open(path, flags, 420) -- 0644
  if fd < 0 then fail("open", path) end
  return fd
end
local open = M.open

function M.write_all(fd, s, path)
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
local write_all = M.write_all

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local ts = ffi.new("luact_raft_timespec")
local function now()
  C.clock_gettime(1, ts)    -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- the fsyncs of one job: counted and timed into `out` (out.fsyncs, out.fsync_seconds)
local function fsync(out, fd, path, off)
  if off then return end
  local t0 = now()
  if C.fsync(fd) ~= 0 then fail("fsync", path) end
  out.fsyncs = out.fsyncs + 1
  out.fsync_seconds[#out.fsync_seconds + 1] = now() - t0
end

local function sync_dir(out, dir, off)
  if off then return end
  local fd = open(dir, O_RDONLY)
  out.fsyncs = out.fsyncs + 1
  C.fsync(fd) -- some filesystems refuse fsync on a directory; the rename is still ordered
  C.close(fd)
end

-- "replaced atomically": path.tmp written and fsynced, renamed over path, the directory fsynced
local function replace(out, dir, path, data, off)
  local tmp = path .. ".tmp"
  local fd = open(tmp, O_WRONLY + O_CREAT + O_TRUNC)
  write_all(fd, data, tmp)
  fsync(out, fd, tmp, off)
  C.close(fd)
  if C.rename(tmp, path) ~= 0 then fail("rename", tmp) end
  sync_dir(out, dir, off)
end

-- job = { fd =, log_path =, dir =, no_fsync =, ops = { ... } }: see the top of this file
function M.run(job)
  local out = { fd = job.fd, fsyncs = 0, fsync_seconds = {} }
  local off, dir, log_path = job.no_fsync, job.dir, job.log_path
  local ops = job.ops
  for i = 1, #ops do
    local op = ops[i]
    local k = op[1]
    if k == "write" then
      write_all(out.fd, op[2], log_path)
    elseif k == "trunc" then
      if C.ftruncate(out.fd, op[2]) ~= 0 then fail("ftruncate", log_path) end
    elseif k == "fsync_log" then
      fsync(out, out.fd, log_path, off)
    elseif k == "replace" then
      replace(out, dir, op[2], op[3], off)
    elseif k == "snapshot" then
      replace(out, dir, op[2], record.file(record.encode(op[3], op[4], op[5], op[6])), off)
    elseif k == "rewrite_log" then
      local tail = ""
      if op[2] then tail = (M.read_file(log_path) or ""):sub(op[2] + 1, op[3]) end
      replace(out, dir, log_path, record.MAGIC .. tail, off)
      if out.fd then C.close(out.fd) end
      out.fd = open(log_path, O_WRONLY + O_CREAT + O_APPEND)
    else
      error("raft storage: unknown operation " .. tostring(k), 2)
    end
  end
  return out
end

return M
