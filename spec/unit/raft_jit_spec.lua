-- spec/unit/raft_jit_spec.lua: the replication path of luact.cluster.raft stays compiled by
-- LuaJIT (no "NYI" trace aborts inside the raft module while proposals flow)

local raft = require "luact.cluster.raft"

describe("luact.cluster.raft (JIT)", function()
  it("replicates and commits without NYI trace aborts in its own code", function()
    if not jit or not jit.status() then return end
    local jutil = require "jit.util"
    local vmdef = require "jit.vmdef"
    local aborts = {}
    local function on_trace(what, _, func, pc, code, info)
      if what ~= "abort" then return end
      local fi = jutil.funcinfo(func, pc)
      if fi.source and fi.source:find("cluster/raft", 1, true) then
        local msg = vmdef.traceerr[code] or tostring(code)
        if info ~= nil then msg = msg:format(tostring(info)) end
        if msg:find("NYI", 1, true) then aborts[#aborts + 1] = fi.loc .. ": " .. msg end
      end
    end
    jit.attach(on_trace, "trace")
    local ok, err = pcall(function()
      local ids = { 1, 2, 3 }
      local nodes = {}
      local seq = 0
      for _, id in ipairs(ids) do
        nodes[id] = raft.new({ id = id, peers = ids, random = function(lo, hi)
          seq = seq + 1
          return lo + seq % (hi - lo + 1)
        end })
      end
      local inbox = {}
      local function pump()
        for _ = 1, 20 do
          local moved = false
          for _, id in ipairs(ids) do
            local rd = nodes[id]:ready()
            if rd then
              for _, m in ipairs(rd.messages) do inbox[#inbox + 1] = m; moved = true end
              nodes[id]:advance(rd)
            end
          end
          local batch = inbox
          inbox = {}
          for _, m in ipairs(batch) do nodes[m.to]:step(m) end
          if not moved and #batch == 0 then return end
        end
      end
      local leader
      for _ = 1, 100 do
        for _, id in ipairs(ids) do nodes[id]:tick() end
        pump()
        for _, id in ipairs(ids) do
          if nodes[id]:leadership() == "leader" then leader = nodes[id] end
        end
        if leader then break end
      end
      assert(leader, "no leader")
      for round = 1, 300 do
        for k = 1, 20 do assert(leader:propose("p" .. round .. ":" .. k)) end
        for _, id in ipairs(ids) do nodes[id]:tick() end
        pump()
      end
      assert.is_true(leader:status().commit > 6000)
    end)
    jit.attach(on_trace)
    assert(ok, err)
    assert.same({}, aborts)
  end)
end)
