-- The "skynet" tree: 1 000 000 leaf actors (1 111 111 in all) spawned as a tree of 10-way
-- fan-out, written as bench/erlang/luact_bench.erl's `skynet` is: every node spawns its 10
-- children and tells each to start (notify_), a leaf sends its number to its parent
-- (notify_got), and a node that has heard from all 10 kills them and sends their sum up. The
-- root's 10 subtrees are grown on the threads in turn by one grower actor per thread (luact
-- creates an actor on the thread that asks for it, as Erlang's spawn does on the scheduler it
-- runs on); below that every node spawns its children on its own thread.
-- The sum is checked (499 999 500 000) before a rate is reported.
-- Usage: luajit bench/skynet.lua [LEAVES]; env SKYNET_THREADS (default 2).
local common = require "bench.common"
local luact = require "luact"

local LEAVES, FANOUT = tonumber(arg and arg[1]) or 1000000, 10
local threads = tonumber(os.getenv("SKYNET_THREADS")) or 2
local seconds, sum = luact.start({ n_core = threads, timeout = 600, leaves = LEAVES, fanout = FANOUT }, function()
  local luact = require "luact"
  local fanout = luact.opts.fanout

  local Node = {}
  Node.__index = Node
  local function spawn_node(parent)
    return luact(setmetatable({ parent = parent, left = fanout, total = 0, kids = nil }, Node))
  end
  -- me: this node's own reference (its children answer to it)
  function Node.start(self, me, num, size)
    if size == 1 then return self.parent:notify_got(num) end
    local per = size / fanout
    local kids = {}
    for i = 1, fanout do
      local kid = spawn_node(me)
      kids[i] = kid
      kid:notify_start(kid, num + (i - 1) * per, per)
    end
    self.kids = kids
  end
  function Node.got(self, v)
    self.total = self.total + v
    self.left = self.left - 1
    if self.left == 0 then
      for i = 1, fanout do luact.kill(self.kids[i]) end
      self.parent:notify_got(self.total)
    end
  end

  -- on every thread: a grower that starts a subtree here
  luact.register("/bench/skynet/grower/" .. luact.thread_id, {
    ping = function() return true end,
    grow = function(_, parent, num, size)
      local node = spawn_node(parent)
      node:notify_start(node, num, size)
    end,
  })
  if luact.thread_id ~= 1 then return end
  local growers = {}
  for t = 1, luact.n_core do
    local name = "/bench/skynet/grower/" .. t
    for _ = 1, 1000 do
      local ok, r = pcall(luact.ref, name)
      if ok and pcall(r.timed_ping, r, 1) then growers[t] = r; break end
      luact.clock.sleep(0.01)
    end
    assert(growers[t], "no grower on thread " .. t)
  end
  local done = luact.event.new()
  local root = luact(setmetatable({ parent = nil, left = fanout, total = 0 }, {
    __index = { got = function(self, v)
      self.total = self.total + v
      self.left = self.left - 1
      if self.left == 0 then done:emit("sum", self.total) end
    end },
  }))
  collectgarbage(); collectgarbage()
  local t0 = luact.clock.get()
  local per = luact.opts.leaves / fanout
  for i = 1, fanout do
    growers[(i - 1) % #growers + 1]:notify_grow(root, (i - 1) * per, per)
  end
  local _, _, total = luact.event.wait(nil, done)
  luact.stop(luact.clock.get() - t0, total)
end)
local want = LEAVES * (LEAVES - 1) / 2
if sum ~= want then error(("skynet: the sum is %s, not %s"):format(tostring(sum), tostring(want))) end
local actors = 0
local level = LEAVES
while level >= 1 do actors = actors + level; level = level / FANOUT end
common.report("skynet", { n = actors, leaves = LEAVES, threads = threads, seconds = seconds, rate = actors / seconds },
  { "n", "leaves", "threads", "seconds", "rate" })
