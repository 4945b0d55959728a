-- spec/unit/raft_storage_file_spec.lua: durable storage (luact.cluster.raft.storage_file)

local storage_file = require "luact.cluster.raft.storage_file"
local raft = require "luact.cluster.raft"
local record = require "luact.cluster.raft.record"
local bit = require "bit"

local counter = 0
local function tmpdir()
  os.execute("mkdir -p spec/tmp")
  counter = counter + 1
  local dir = ("spec/tmp/raft_storage_%d_%d"):format(os.time(), counter)
  os.execute("rm -rf " .. dir)
  return dir
end

local function ents(from, to, term)
  local out = {}
  for i = from, to do out[#out + 1] = { index = i, term = term, data = "e" .. i } end
  return out
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("luact.cluster.raft.storage_file", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("starts empty in a new directory", function()
    local s = storage_file.open(dir)
    local st = s:load()
    assert.same({ term = 0, commit = 0 }, st.hard_state)
    assert.is_nil(st.snapshot)
    assert.same({}, st.entries)
    s:close()
  end)

  it("returns what was appended and synced after reopening, with conf entries and odd data",
     function()
    local s = storage_file.open(dir)
    s:load()
    local data = "bin\0ary\n:s3:l1:" .. string.rep("x", 1000)
    s:append(1, { { index = 1, term = 1, conf = { voters = { 1, "two", 3 } } },
                  { index = 2, term = 1, data = data },
                  { index = 3, term = 2 } })
    s:set_hard_state({ term = 2, vote = "two", commit = 2 })
    s:sync()
    s:close()
    local st = storage_file.open(dir):load()
    assert.same({ term = 2, vote = "two", commit = 2 }, st.hard_state)
    assert.equal(3, #st.entries)
    assert.same({ voters = { 1, "two", 3 } }, st.entries[1].conf)
    assert.equal(data, st.entries[2].data)
    assert.is_nil(st.entries[3].data)
    assert.equal(2, st.entries[3].term)
  end)

  it("overwrites a conflicting suffix in place", function()
    local s = storage_file.open(dir)
    s:load()
    s:append(1, ents(1, 5, 1))
    s:append(3, ents(3, 4, 2))
    s:sync()
    s:close()
    local st = storage_file.open(dir):load()
    assert.equal(4, #st.entries)
    assert.equal(1, st.entries[2].term)
    assert.equal(2, st.entries[3].term)
    assert.equal("e4", st.entries[4].data)
  end)

  it("cuts a torn record off the end of the log at load", function()
    local s = storage_file.open(dir)
    s:load()
    s:append(1, ents(1, 3, 1))
    s:sync()
    s:close()
    local full = read(dir .. "/log")
    local f = assert(io.open(dir .. "/log", "wb"))
    f:write(full:sub(1, #full - 3)) -- lose the last bytes of entry 3
    f:close()
    local s2 = storage_file.open(dir)
    local st = s2:load()
    assert.equal(2, #st.entries)
    -- and appending continues cleanly after the cut
    s2:append(3, ents(3, 3, 5))
    s2:sync()
    s2:close()
    st = storage_file.open(dir):load()
    assert.equal(3, #st.entries)
    assert.equal(5, st.entries[3].term)
  end)

  it("keeps the log after a snapshot that agrees with it, and drops it on reset", function()
    local s = storage_file.open(dir)
    s:load()
    s:append(1, ents(1, 6, 1))
    s:sync()
    s:save_snapshot({ index = 4, term = 1, conf = { voters = { 1, 2 } }, data = "state" })
    s:append(7, ents(7, 7, 1))
    s:sync()
    s:close()
    local st = storage_file.open(dir):load()
    assert.equal(4, st.snapshot.index)
    assert.equal("state", st.snapshot.data)
    assert.same({ 1, 2 }, st.snapshot.conf.voters)
    assert.equal(3, #st.entries)
    assert.equal(5, st.entries[1].index)
    assert.equal(7, st.entries[3].index)

    local s2 = storage_file.open(dir)
    s2:load()
    s2:save_snapshot({ index = 6, term = 1, conf = { voters = { 1 } }, data = "s2" }, true)
    s2:sync()
    s2:close()
    st = storage_file.open(dir):load()
    assert.equal(6, st.snapshot.index)
    assert.same({}, st.entries)
  end)

  it("hands its writes out as a job of plain data that another VM can run, in order, and takes the result back", function()
    local buffer = require "string.buffer"
    local storage_io = require "luact.cluster.raft.storage_io"
    local s = storage_file.open(dir)
    s:load()
    s:append(1, ents(1, 6, 1))
    s:set_hard_state({ term = 1, vote = 2, commit = 3 })
    s:save_snapshot({ index = 4, term = 1, conf = { voters = { 1, 2 } }, data = "state" })
    s:append(6, ents(6, 8, 2))        -- (truncates 6 first)
    assert.is_nil(io.open(dir .. "/snapshot"))   -- nothing written yet: all queued
    local job = s:take_job()
    assert.has_error(function() s:take_job() end, "raft storage: take_job while a job is out")
    -- (as luact.offload moves it: through string.buffer, into a VM with no storage object)
    local out = storage_io.run(buffer.decode(buffer.encode(job)))
    s:finish_job(buffer.decode(buffer.encode(out)))
    assert.is_nil(s:take_job())       -- nothing new: no job
    s:append(9, ents(9, 9, 2))        -- appends after the rewrite go to the new log file
    s:sync()
    s:close()
    local st = storage_file.open(dir):load()
    assert.equal(4, st.snapshot.index)
    assert.same({ 5, 6, 7, 8, 9 }, (function()
      local t = {}
      for i, e in ipairs(st.entries) do t[i] = e.index end
      return t
    end)())
    assert.equal(2, st.entries[2].term)
    assert.same({ term = 1, vote = 2, commit = 3 }, st.hard_state)
  end)

  it("rewrites the hard state only when term or vote change", function()
    local s = storage_file.open(dir)
    s:load()
    s:set_hard_state({ term = 3, vote = 1, commit = 0 })
    s:sync()
    local before = read(dir .. "/hardstate")
    s:set_hard_state({ term = 3, vote = 1, commit = 9 })
    s:sync()
    assert.equal(before, read(dir .. "/hardstate"))
    s:set_hard_state({ term = 4, vote = nil, commit = 9 })
    s:sync()
    s:close()
    assert.same({ term = 4, commit = 9 }, storage_file.open(dir):load().hard_state)
  end)

  it("refuses an append below the snapshot or past the end", function()
    local s = storage_file.open(dir)
    s:load()
    s:append(1, ents(1, 2, 1))
    assert.has_error(function() s:append(5, ents(5, 5, 1)) end, "storage: append leaves a hole")
    s:close()
  end)

  it("keeps every synced entry when its writer is killed with SIGKILL mid-stream", function()
    -- a child luajit appends and syncs entries in a bounded loop, recording after each sync the
    -- last durable index; it is killed by pid while writing
    local script = dir .. ".writer.lua"
    local f = assert(io.open(script, "w"))
    f:write(([[
      package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
      local s = require("luact.cluster.raft.storage_file").open(%q)
      s:load()
      for i = 1, 200000 do
        s:append(i, { { index = i, term = 1, data = string.rep("v", i %% 300) } })
        s:sync()
        local m = io.open(%q, "w"); m:write(i); m:close()
        os.rename(%q, %q)
      end
    ]]):format(dir, dir .. ".mark.tmp", dir .. ".mark.tmp", dir .. ".mark"))
    f:close()
    -- start it, wait (at most 10 s) until it has synced something, let it run a little more,
    -- then kill it by pid
    os.execute(("luajit %s & echo $! > %s.pid; for i in $(seq 100); do [ -s %s.mark ] && break;"
      .. " sleep 0.1; done; sleep 0.3; kill -9 $(cat %s.pid); wait 2>/dev/null")
      :format(script, dir, dir, dir))
    local mark = tonumber(read(dir .. ".mark"))
    assert.is_true(mark > 0)
    local st = storage_file.open(dir):load()
    assert.is_true(#st.entries >= mark)
    for i, e in ipairs(st.entries) do
      assert.equal(i, e.index)
      assert.equal(string.rep("v", i % 300), e.data)
    end
    os.remove(script); os.remove(dir .. ".mark"); os.remove(dir .. ".mark.tmp")
    os.remove(dir .. ".pid")
  end)

  it("lets a single raft node restart from its directory with its log and term", function()
    local function node()
      return raft.new({ id = 1, peers = { 1 }, random = function(lo) return lo end,
                        storage = raft.storage_file(dir) })
    end
    local n = node()
    local applied = {}
    local function drain(x)
      for _ = 1, 40 do
        x:tick()
        local rd = x:ready()
        while rd do
          for _, e in ipairs(rd.committed) do if e.data then applied[#applied + 1] = e.data end end
          x:advance(rd)
          rd = x:ready()
        end
      end
    end
    drain(n)
    assert.equal("leader", n:status().role)
    assert.truthy(n:propose("a"))
    assert.truthy(n:propose("b"))
    drain(n)
    assert.same({ "a", "b" }, applied)
    local term = n:status().term
    n.storage:close()
    applied = {}
    local n2 = node()
    assert.equal(term, n2:status().term)
    drain(n2)
    assert.same({ "a", "b" }, applied)
    assert.equal("leader", n2:status().role)
    assert.is_true(n2:status().term > term)
  end)

  -- flips one bit of the file at byte offset `at` (0-based)
  local function flip(path, at, mask)
    local full = read(path)
    local b = full:byte(at + 1)
    local f = assert(io.open(path, "wb"))
    f:write(full:sub(1, at) .. string.char(bit.bxor(b, mask or 4)) .. full:sub(at + 2))
    f:close()
  end

  local function write_log(n)
    local s = storage_file.open(dir)
    s:load()
    s:append(1, ents(1, n, 1))
    s:set_hard_state({ term = 1, vote = 1, commit = n })
    s:sync()
    local offsets = {}
    for i = 1, n do offsets[i] = s.offsets[i] end
    s:close()
    return offsets
  end

  it("computes CRC32C (the iSCSI check value)", function()
    assert.equal(0xE3069283, record.crc32c("123456789"))
    assert.equal(0, record.crc32c(""))
  end)

  it("refuses to load a log with one flipped bit in a middle record, naming file, record and " ..
     "offset", function()
    local offsets = write_log(10)
    flip(dir .. "/log", offsets[4] + 12) -- inside entry 4's payload
    local ok, err = pcall(function() storage_file.open(dir):load() end)
    assert.is_false(ok)
    assert.truthy(err:find(dir .. "/log is damaged: record 4 (byte offset " .. offsets[4] ..
      ") its checksum fails", 1, true), err)
    assert.truthy(err:find("Refusing to start", 1, true))
    assert.truthy(err:find("move the directory " .. dir .. " away", 1, true))
    -- nothing was cut: the file still holds all ten records for whoever inspects it
    assert.equal(offsets[10] + #record.encode_entry(ents(10, 10, 1)[1]), #read(dir .. "/log"))
  end)

  it("refuses a flipped bit in a length field, and in the last complete record", function()
    local offsets = write_log(5)
    flip(dir .. "/log", offsets[2] + 1, 128) -- entry 2's length now runs far past the end
    local ok, err = pcall(function() storage_file.open(dir):load() end)
    assert.is_false(ok)
    assert.truthy(err:find("record 2 (byte offset " .. offsets[2] .. ") its length fails its " ..
      "checksum", 1, true), err)
    os.execute("rm -rf " .. dir)
    offsets = write_log(5)
    flip(dir .. "/log", offsets[5] + 9)
    ok, err = pcall(function() storage_file.open(dir):load() end)
    assert.is_false(ok)
    assert.truthy(err:find("record 5 (byte offset " .. offsets[5] .. ") its checksum fails",
      1, true), err)
  end)

  it("refuses a damaged hard state or snapshot", function()
    write_log(3)
    flip(dir .. "/hardstate", #record.MAGIC + 10)
    local ok, err = pcall(function() storage_file.open(dir):load() end)
    assert.is_false(ok)
    assert.truthy(err:find(dir .. "/hardstate is damaged: bad checksum", 1, true), err)
    os.execute("rm -rf " .. dir)
    local s = storage_file.open(dir)
    s:load()
    s:append(1, ents(1, 3, 1))
    s:save_snapshot({ index = 2, term = 1, conf = { voters = { 1 } }, data = "state" })
    s:sync()
    s:close()
    flip(dir .. "/snapshot", #read(dir .. "/snapshot") - 6)
    ok, err = pcall(function() storage_file.open(dir):load() end)
    assert.is_false(ok)
    assert.truthy(err:find(dir .. "/snapshot is damaged", 1, true), err)
  end)

  it("cuts a torn tail (partial record or zeros) and reports it, then appends after it",
     function()
    for _, tail in ipairs({ "partial", "zeros", "header" }) do
      os.execute("rm -rf " .. dir)
      local offsets = write_log(4)
      local full = read(dir .. "/log")
      local f = assert(io.open(dir .. "/log", "wb"))
      if tail == "partial" then
        f:write(full:sub(1, #full - 5))
      elseif tail == "zeros" then
        f:write(full:sub(1, offsets[4]) .. string.rep("\0", 300))
      else
        f:write(full:sub(1, offsets[4] + 3))
      end
      f:close()
      local lines = {}
      local s = storage_file.open(dir, { log = function(level, line)
        lines[#lines + 1] = level .. " " .. line
      end })
      local st = s:load()
      assert.equal(3, #st.entries)
      assert.equal(offsets[4], st.torn.offset)
      assert.equal(1, #lines)
      assert.truthy(lines[1]:find("^warn raft storage: " .. dir .. "/log: cut a torn tail of %d+ " ..
        "bytes at byte offset " .. offsets[4] .. " after record 3"), lines[1])
      s:append(4, ents(4, 5, 2))
      s:sync()
      s:close()
      st = storage_file.open(dir):load()
      assert.equal(5, #st.entries)
      assert.equal(2, st.entries[5].term)
      assert.is_nil(st.torn)
    end
  end)

  it("gives a new directory an identity, keeps it across restarts, and a wiped one a new one",
     function()
    local n = 0
    local function new_sid() n = n + 1; return "sid-" .. n end
    local s = storage_file.open(dir, { new_sid = new_sid })
    local st = s:load()
    assert.same({ sid = "sid-1", recovering = false, forms = {} }, st.identity)
    s:set_identity({ sid = "sid-1", cid = "c1", recovering = true, forms = { "f", "g" } })
    s:sync()
    s:close()
    st = storage_file.open(dir, { new_sid = new_sid }):load()
    assert.same({ sid = "sid-1", cid = "c1", recovering = true, forms = { "f", "g" } }, st.identity)
    os.execute("rm -rf " .. dir)
    st = storage_file.open(dir, { new_sid = new_sid }):load()
    assert.same({ sid = "sid-2", recovering = false, forms = {} }, st.identity)
    -- without new_sid a directory has no identity (and a node acts as before identities)
    assert.is_nil(storage_file.open(dir .. "x"):load().identity)
    os.execute("rm -rf " .. dir .. "x")
  end)

  it("refuses a member directory whose log file was deleted", function()
    local s = storage_file.open(dir, { new_sid = function() return "a" end })
    s:load()
    s:append(1, ents(1, 2, 1))
    s:set_identity({ sid = "a", cid = "c" })
    s:sync()
    s:close()
    os.remove(dir .. "/log")
    local ok, err = pcall(function() storage_file.open(dir):load() end)
    assert.is_false(ok)
    assert.truthy(err:find(dir .. "/log is damaged: it is missing", 1, true), err)
  end)

  it("loads a format 1 directory (FNV-1a records) and migrates its log to format 2", function()
    os.execute("mkdir -p " .. dir)
    local function frame1(payload)
      local function u32(n) return string.char(n % 256, math.floor(n / 256) % 256,
        math.floor(n / 65536) % 256, math.floor(n / 16777216) % 256) end
      return u32(#payload) .. payload .. u32(record.fnv(payload))
    end
    local log = {}
    for i = 1, 3 do log[i] = frame1(record.encode(i, 1, "e" .. i, nil)) end
    local f = assert(io.open(dir .. "/log", "wb")); f:write(table.concat(log)); f:close()
    f = assert(io.open(dir .. "/hardstate", "wb")); f:write(frame1(record.encode(1, 2, 3))); f:close()
    local lines = {}
    local s = storage_file.open(dir, { new_sid = function() return "z" end,
                                      log = function(_, l) lines[#lines + 1] = l end })
    local st = s:load()
    assert.same({ term = 1, vote = 2, commit = 3 }, st.hard_state)
    assert.equal(3, #st.entries)
    assert.equal("e3", st.entries[3].data)
    -- an old directory holds its log: it is a member, never mistaken for a fresh one
    assert.same({ sid = "z", cid = "legacy:z", recovering = false, forms = {} }, st.identity)
    assert.truthy(lines[1]:find("migrated 3 records to format 2", 1, true))
    s:append(4, ents(4, 4, 1))
    s:sync()
    s:close()
    assert.equal(record.MAGIC, read(dir .. "/log"):sub(1, #record.MAGIC))
    st = storage_file.open(dir):load()
    assert.equal(4, #st.entries)
    -- a flipped bit in a format 1 record is damage too
    os.execute("rm -rf " .. dir .. " && mkdir -p " .. dir)
    local bad = log[2]:sub(1, 6) .. "X" .. log[2]:sub(8)
    f = assert(io.open(dir .. "/log", "wb")); f:write(log[1] .. bad .. log[3]); f:close()
    local ok, err = pcall(function() storage_file.open(dir):load() end)
    assert.is_false(ok)
    assert.truthy(err:find("record 2 (byte offset " .. #log[1] .. ") its checksum fails", 1, true),
      err)
  end)
end)
