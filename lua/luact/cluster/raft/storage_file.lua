-- luact.cluster.raft.storage_file: durable Raft storage in one directory, written through libc
-- (LuaJIT FFI: open/write/fsync/rename/ftruncate). Same methods as storage_memory.
--
--   <dir>/log        append-only records, one per entry (truncated in place on conflicts,
--                    rewritten on compaction)
--   <dir>/hardstate  one record { term, vote, commit }, replaced atomically
--   <dir>/snapshot   one record { index, term, conf, data }, replaced atomically
--   <dir>/identity   one record { sid, cid, recovering, forms }, replaced atomically (only with
--                    the `new_sid` option): who this directory is, see raft/README.md
--
-- The record format (CRC32C, format 2; format 1 datadirs still load and are migrated) lives in
-- record.lua. At load, a torn tail of the log (a crash mid-append: never acknowledged, since
-- sync() fsyncs before acknowledgements leave) is cut off and reported; damage (a complete
-- record that fails its checksum, or garbage followed by more data) refuses to load with an
-- error naming the file, the record and its byte offset, and what the operator can do.
-- "Replaced atomically" = write <name>.tmp, fsync it, rename it over <name>, fsync the
-- directory. sync() fsyncs the log, then writes the identity and the hard state; Raft calls it
-- before it returns messages that depend on what it wrote. The hard state file is rewritten
-- only when term or vote change: a stale commit index is safe (the node learns the real one
-- from the leader), and it saves an fsync per round.
--
-- Writes are queued, in order, as operations of a job (raft/storage_io.lua owns the system
-- calls): append, set_hard_state, set_identity and save_snapshot only keep this object's
-- bookkeeping (offsets, terms, sizes) and queue; sync() runs the queued job here, in this VM.
-- take_job() hands the same job out instead (plain data, for another thread to run: luact.
-- cluster.consensus uses an offload pool thread) and finish_job(result) takes its outcome back;
-- between the two the caller must not call this storage (Raft does not: raft/README.md,
-- "Storage off the loop").

local ffi = require "ffi"
local record = require "luact.cluster.raft.record"
local io_ = require "luact.cluster.raft.storage_io"
local concat = table.concat
local encode, decode, frame = record.encode, record.decode, record.frame
local encode_entry, decode_entry = record.encode_entry, record.decode_entry
local MAGIC = record.MAGIC
local C = ffi.C

local M = { fsyncs = 0 }   -- the module (M.fsyncs: see absorb below)

local O_WRONLY, O_CREAT, O_APPEND = io_.O_WRONLY, io_.O_CREAT, io_.O_APPEND
local EEXIST = io_.EEXIST
local fail, open, read_file = io_.fail, io_.open, io_.read_file

-- the error a damaged file raises: what is wrong, why the node stops, what to do
local function damaged(self, path, what)
  error(("raft storage: %s is damaged: %s. Refusing to start: it may have lost entries or votes"
    .. " this voter acknowledged, and a voter must never count toward a quorum for what it no"
    .. " longer holds. To recover, move the directory %s away (keep it for inspection) and"
    .. " start the node again: it rejoins as a recovering member, copies the log from the"
    .. " others, and votes again once it has caught up with a leader"):format(
    path, what, self.dir), 0)
end

---------------------------------------------------------------------------------------------
-- the storage
---------------------------------------------------------------------------------------------

local F = {}
F.__index = F

-- open (creating if needed) the storage directory `dir`. opts.fsync = false skips every fsync
-- (for tests that exercise the format, never for data you keep). opts.new_sid: a function
-- returning a fresh unique string (a uuid); with it the directory gets an identity (see
-- raft/README.md, "Identity"). opts.log(level, line): where load() reports what it repaired.
function M.open(dir, opts)
  if type(dir) ~= "string" or dir == "" then error("bad 'dir' argument (path expected)", 2) end
  opts = opts or {}
  if opts.new_sid ~= nil and type(opts.new_sid) ~= "function" then
    error("bad 'new_sid' option (function expected)", 2)
  end
  if C.mkdir(dir, 493) ~= 0 and ffi.errno() ~= EEXIST then fail("mkdir", dir) end
  local self = setmetatable({
    dir = dir, opts = opts,
    log_path = dir .. "/log", hs_path = dir .. "/hardstate", snap_path = dir .. "/snapshot",
    id_path = dir .. "/identity",
    ops = {},      -- queued operations (raft/storage_io.lua), run by the next sync()
    job_out = false, -- a job handed out by take_job() and not finished yet
    offsets = {},  -- index -> byte offset of its record in the log file
    terms = {},    -- index -> term
    first = 1, last = 0, size = 0,
    hs = { term = 0, commit = 0 }, written_hs = nil, pending_hs = nil,
    identity = nil, pending_id = false,
    log_dirty = false, snap = nil, syncs = 0,
    no_fsync = opts.fsync == false,
  }, F)
  self.fd = nil
  return self
end

function F:close()
  if self.fd then C.close(self.fd); self.fd = nil end
  self.ops = {}
end

-- the job of the operations queued so far (nil when there are none)
function F:queue(op)
  local ops = self.ops
  ops[#ops + 1] = op
end

-- a whole job run here and now (load's repairs; sync())
function F:run(ops)
  local out = io_.run({ fd = self.fd, log_path = self.log_path, dir = self.dir,
                        no_fsync = self.no_fsync, ops = ops })
  self:absorb(out)
end

-- A job's outcome: the log's fd (new after a rewrite), and its fsyncs. M.fsyncs counts the
-- fsync calls this process made through any storage (files and directories; the benchmarks
-- report it per write beside etcd's WAL fsyncs); M.on_fsync(seconds), when set, is told how
-- long each fsync took (luact.observe sets it: this module stays free of the runtime).
function F:absorb(out)
  self.fd = out.fd
  M.fsyncs = M.fsyncs + out.fsyncs
  local on = M.on_fsync
  if on then
    for _, s in ipairs(out.fsync_seconds) do on(s) end
  end
end

function F:replace(path, data)
  self:run({ { "replace", path, data } })
end

function F:note(level, line)
  local log = self.opts.log
  if log then log(level, line) end
end

-- the values of a one-record file, or nil if it does not exist; raises if it is damaged
function F:read_one(path, count)
  local s = read_file(path)
  if not s then return nil end
  local payload, why = record.unfile(s)
  if not payload then damaged(self, path, why) end
  local ok, v = pcall(decode, payload, count)
  if not ok then damaged(self, path, "its record does not decode") end
  return v
end

function F:load_identity(fresh)
  local v = self:read_one(self.id_path, 4)
  if v then
    if type(v[1]) ~= "string" then damaged(self, self.id_path, "it holds no identity") end
    if v[2] ~= nil and not read_file(self.log_path) then
      -- a member always has a log file (created with the directory)
      damaged(self, self.log_path, "it is missing")
    end
    if v[4] ~= nil and type(v[4]) ~= "table" then damaged(self, self.id_path, "it does not decode") end
    return { sid = v[1], cid = v[2], recovering = v[3] == true, forms = v[4] or {} }
  end
  local new_sid = self.opts.new_sid
  if not new_sid then return nil end
  local sid = new_sid()
  if type(sid) ~= "string" or sid == "" then error("raft storage: new_sid() returned no string", 0) end
  local id
  if fresh then
    id = { sid = sid, recovering = false, forms = {} }
  else
    -- a directory written before identities existed: it holds its log, so it is a member
    id = { sid = sid, cid = "legacy:" .. sid, recovering = false, forms = {} }
  end
  self:replace(self.id_path, record.file(encode(id.sid, id.cid, id.recovering, id.forms)))
  return id
end

-- Reads the log's records back (the snapshot ends at `base`): every record must decode and
-- follow the one before, except a torn tail (scan.torn). Returns the entries after the snapshot,
-- each record's byte offset and term by index, and whether the log diverged from the snapshot
-- (reset: nothing in it is usable).
local function check_log(self, data, scan, base, snap)
  local function bad(rec, why)
    local after = #data - scan.offsets[rec]
    damaged(self, self.log_path, ("record %d (byte offset %d) %s, and %d bytes follow it")
      :format(rec, scan.offsets[rec], why, after))
  end
  if scan.damage then
    local d = scan.damage
    damaged(self, self.log_path, ("record %d (byte offset %d) %s, and %d bytes follow it")
      :format(d.record, d.offset, d.why, #data - d.offset))
  end
  local entries, offsets, terms = {}, {}, {}
  local expect, reset = nil, false
  local payloads = scan.payloads
  for rec = 1, #payloads do
    local ok, e = pcall(decode_entry, payloads[rec])
    if not ok then bad(rec, "passes its checksum but does not decode") end
    if expect and e.index ~= expect then
      bad(rec, ("holds index %d where %d should follow"):format(e.index, expect))
    end
    if e.index <= base then
      if e.index == base and snap and e.term ~= snap.term then
        -- the log diverged from the snapshot (a crash between installing a snapshot and
        -- rewriting the log): nothing in it is usable
        reset = true
        break
      end
    else
      if #entries == 0 and e.index ~= base + 1 then
        bad(rec, ("holds index %d, but the snapshot ends at %d"):format(e.index, base))
      end
      entries[#entries + 1] = e
    end
    offsets[e.index], terms[e.index] = scan.offsets[rec], e.term
    expect = e.index + 1
  end
  return entries, offsets, terms, reset
end

-- Starts the log file again in format 2 with the entries kept (none after a reset), unless it
-- already holds exactly that. Returns each entry's byte offset and term by index.
local function rewrite_log(self, data, scan, entries, reset)
  local parts, off = { MAGIC }, #MAGIC
  local offsets, terms = {}, {}
  for i = 1, #entries do
    local e = entries[i]
    parts[#parts + 1] = encode_entry(e)
    offsets[e.index], terms[e.index] = off, e.term
    off = off + #parts[#parts]
  end
  if scan.version ~= 2 and #scan.payloads > 0 then
    self:note("info", ("raft storage: %s: migrated %d records to format 2 (CRC32C)"):format(
      self.log_path, #entries))
  end
  if reset then offsets, terms = {}, {}; parts = { MAGIC } end
  local body = concat(parts)
  if body ~= data then self:replace(self.log_path, body) end
  self.size = #body
  return offsets, terms
end

function F:load()
  local hs = { term = 0, commit = 0 }
  local v = self:read_one(self.hs_path, 3)
  if v then hs = { term = v[1], vote = v[2], commit = v[3] } end
  self.hs, self.written_hs = hs, { term = hs.term, vote = hs.vote }

  local snap
  v = self:read_one(self.snap_path, 4)
  if v then snap = { index = v[1], term = v[2], conf = { voters = v[3] }, data = v[4] } end
  self.snap = snap
  local base = snap and snap.index or 0

  -- the log: every record must read back, except a torn tail
  local data = read_file(self.log_path) or ""
  self.identity = self:load_identity(#data == 0 and not snap and hs.term == 0)
  local scan = record.scan(data)
  local entries, offsets, terms, reset = check_log(self, data, scan, base, snap)
  if scan.torn then
    self:note("warn", ("raft storage: %s: cut a torn tail of %d bytes at byte offset %d after"
      .. " record %d (a write interrupted by a crash; it was never acknowledged)"):format(
      self.log_path, scan.torn.bytes, scan.torn.offset, #scan.payloads))
  end
  self.first = base + 1
  self.last = base + #entries
  self:close()
  if reset or #entries == 0 or scan.version ~= 2 then
    offsets, terms = rewrite_log(self, data, scan, entries, reset)
    if reset then entries = {}; self.last = base end
  else
    self.size = scan.good
  end
  self.offsets, self.terms = offsets, terms
  self.fd = open(self.log_path, O_WRONLY + O_CREAT + O_APPEND)
  if self.size < #data and scan.version == 2 and not reset and #entries > 0 then
    if C.ftruncate(self.fd, self.size) ~= 0 then fail("ftruncate", self.log_path) end
  end
  local id = self.identity
  return { hard_state = { term = hs.term, vote = hs.vote, commit = hs.commit },
           snapshot = snap, entries = entries,
           identity = id and { sid = id.sid, cid = id.cid, recovering = id.recovering,
                               forms = { unpack(id.forms) } },
           torn = scan.torn and { offset = scan.torn.offset, bytes = scan.torn.bytes } }
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
    self:queue({ "trunc", off })
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
  self:queue({ "write", concat(parts) })
  self.size, self.last = off, entries[#entries].index
  self.log_dirty = true
end

function F:set_hard_state(hs)
  self.hs = { term = hs.term, vote = hs.vote, commit = hs.commit }
  local w = self.written_hs
  if not w or w.term ~= hs.term or w.vote ~= hs.vote then self.pending_hs = true end
end

-- id = { sid, cid, recovering, forms }: made durable by the next sync()
function F:set_identity(id)
  self.identity = { sid = id.sid, cid = id.cid, recovering = id.recovering == true,
                    forms = { unpack(id.forms or {}) } }
  self.pending_id = true
end

-- Everything written since the last job, as a job (plain data: raft/storage_io.lua's run()
-- executes it, here or on another thread), or nil when there is nothing to make durable. The
-- log is fsynced, then the identity and the hard state are replaced. Until finish_job, this
-- storage must not be called.
function F:take_job()
  self:ensure_open()
  if self.job_out then error("raft storage: take_job while a job is out", 2) end
  if self.log_dirty then
    self:queue({ "fsync_log" })
    self.log_dirty = false
  end
  if self.pending_id then
    local id = self.identity
    self:queue({ "replace", self.id_path, record.file(encode(id.sid, id.cid, id.recovering, id.forms)) })
    self.pending_id = false
  end
  if self.pending_hs then
    local hs = self.hs
    self:queue({ "replace", self.hs_path, record.file(encode(hs.term, hs.vote, hs.commit)) })
    self.written_hs, self.pending_hs = { term = hs.term, vote = hs.vote }, false
  end
  local ops = self.ops
  self.ops = {}
  if #ops == 0 then return nil end
  self.job_out = true
  return { fd = self.fd, log_path = self.log_path, dir = self.dir, no_fsync = self.no_fsync,
           ops = ops }
end

-- the result of storage_io.run(job) for the job take_job() handed out: what it wrote is durable
function F:finish_job(out)
  self.job_out = false
  self:absorb(out)
  self.syncs = self.syncs + 1
end

-- makes everything written so far durable, here and now
function F:sync()
  local job = self:take_job()
  if not job then self.syncs = self.syncs + 1; return end
  local ok, out = pcall(io_.run, job)
  self.job_out = false
  if not ok then error(out, 2) end
  self:finish_job(out)
end

-- store snap and drop the log up to it (all of it if `reset` or if it disagrees with snap)
function F:save_snapshot(snap, reset)
  self:ensure_open()
  self:queue({ "snapshot", self.snap_path, snap.index, snap.term, snap.conf.voters, snap.data })
  self.snap = snap
  local keep = not reset and self.terms[snap.index] == snap.term and snap.index < self.last
  local offsets, terms = {}, {}
  if keep then
    local from = self.offsets[snap.index + 1]
    self:queue({ "rewrite_log", from, self.size })
    local shift = from - #MAGIC
    for i = snap.index + 1, self.last do
      offsets[i], terms[i] = self.offsets[i] - shift, self.terms[i]
    end
    self.size = self.size - shift
  else
    self:queue({ "rewrite_log" })
    self.last = snap.index
    self.size = #MAGIC
  end
  self.offsets, self.terms, self.first = offsets, terms, snap.index + 1
  self.log_dirty = false
end

M.frame, M.unfile, M.encode, M.decode = frame, record.unfile, encode, decode
return M
