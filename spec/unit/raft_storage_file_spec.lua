-- spec/unit/raft_storage_file_spec.lua: durable storage (luact.cluster.raft.storage_file)

local storage_file = require "luact.cluster.raft.storage_file"
local raft = require "luact.cluster.raft"

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
    s2:close()
    st = storage_file.open(dir):load()
    assert.equal(6, st.snapshot.index)
    assert.same({}, st.entries)
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
end)
