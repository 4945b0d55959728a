-- spec/helpers/simnet.lua: a seeded, deterministic network simulator for pure state machines
-- (luact.cluster.raft, luact.cluster.gossip). Owns the PRNG used by simulations, the message
-- queue (drop / delay / duplicate / reorder), link cuts and partitions, and crash / restart.
--
-- A node is any object with :tick(), :step(msg), :ready() -> nil | { messages = {...}, ... }
-- and :advance(rd). Messages are plain tables with a `to` field; the simulator deep-copies them
-- (or round-trips them through string.buffer with `encode = true`) so no table is shared.
--
--   local simnet = require "helpers.simnet"
--   local net = simnet.new({ seed = 7, drop = 0.05, delay = { 0, 2 }, duplicate = 0.01,
--                            reorder = true,        -- shuffle the messages due in a tick
--                            encode = false,        -- true: copy through string.buffer
--                            on_ready = function(id, rd, net) end,        -- each ready()
--                            on_deliver = function(from, to, msg, net) end,  -- before step
--                            on_step = function(to, msg, net) end,         -- after step
--                            before_collect = function(net) end })         -- each round
--   net:add(id, node)                 -- ids may be numbers or strings; order of add is kept
--   local rnd = net:random_for(id)    -- function(lo, hi), from (seed, id, nth call for id)
--   net:tick()                        -- -> { now, sent, delivered, rounds }
--   net:run(100, function(net, info) ... end)   -- check after every tick
--   net:run_until(pred, max_ticks [, check])    -- -> ticks taken, or nil
--   net:partition({1, 2}, {3})  net:cut(from, to)  net:uncut(from, to)  net:isolate(id)
--   net:heal()  net:drop_link(from, to, p)  net:set_drop(p)  net:set_delay(lo, hi)
--   net:set_duplicate(p)  net:set_reorder(b)  net:crash(id)  net:restart(id, new_node)
--   net:send(from, msg)  net:node(id)  net:is_alive(id)  net:live_ids()  net:in_flight()
--   net.stats = { sent, delivered, dropped, duplicated, blocked, unknown, to_dead }
--   simnet.rng(seed, ...):random(lo, hi)        -- deterministic pure-Lua PRNG
--   simnet.seed_count(200)                      -- LUACT_SIM_SEEDS overrides
--   simnet.for_seeds(n, function(seed) end, first) -- errors become "seed N: ...";
--                                               -- LUACT_SIM_SEED=N runs only seed N
--
-- A tick: every live node ticks, then rounds of (collect every live node's ready(): hand its
-- messages to the network, call advance) and (deliver the messages due now) until a round
-- delivers nothing. Messages with delay 0 arrive in the same tick; delay d arrives d ticks later.
-- A message sent between ticks arrives in the next one. Cuts are checked when a message is sent
-- and again when it arrives; messages to crashed nodes are lost.
-- Everything is iterated in insertion order or queue order, never in `pairs` order, so a seed
-- replays the same run on any machine.
-- Speed: LuaJIT 2.1 does not compile the `next` loop that copies messages; suites of thousands
-- of short runs go about 3x faster with the JIT off (setup: jit.off(), teardown: jit.on()).

local bit = require "bit"
local band, bxor, lshift, rshift = bit.band, bit.bxor, bit.lshift, bit.rshift
local floor = math.floor

local simnet = {}

local TWO32 = 4294967296

local function u32(x)
  if x < 0 then return x + TWO32 end
  return x
end

-- exact (a * b) mod 2^32 for a, b in [0, 2^32)
local function mul32(a, b)
  local alo = a % 65536
  local ahi = (a - alo) / 65536
  return (alo * b + ((ahi * b) % 65536) * 65536) % TWO32
end

-- 32-bit FNV-1a over a string, continuing from h
local function fnv(h, s)
  for i = 1, #s do
    h = mul32(u32(bxor(h, s:byte(i))), 16777619)
  end
  return h
end

local function splitmix(h)
  h = mul32(u32(bxor(h, rshift(h, 16))), 0x85ebca6b)
  h = mul32(u32(bxor(h, rshift(h, 13))), 0xc2b2ae35)
  return u32(bxor(h, rshift(h, 16)))
end

---------------------------------------------------------------------------------------------
-- PRNG: xorshift128 on 32-bit words (bit ops are exact on every LuaJIT build)
---------------------------------------------------------------------------------------------
local Rng = {}
Rng.__index = Rng

local function key_string(v)
  if type(v) == "number" then
    if v == floor(v) and v >= -2^52 and v <= 2^52 then return ("n%d"):format(v) end
    return ("n%.17g"):format(v)
  end
  return "s" .. tostring(v)
end

-- simnet.rng(seed, ...): extra arguments (numbers or strings) are mixed into the seed
function simnet.rng(seed, ...)
  local h = 2166136261
  h = fnv(h, key_string(seed or 0))
  for i = 1, select("#", ...) do
    h = fnv(h, "|" .. key_string((select(i, ...))))
  end
  local s = {}
  for i = 1, 4 do
    h = splitmix(u32(bxor(h, i * 0x9e3779b9 % TWO32)))
    s[i] = h
  end
  if s[1] == 0 and s[2] == 0 and s[3] == 0 and s[4] == 0 then s[1] = 1 end
  local r = setmetatable({ x = s[1], y = s[2], z = s[3], w = s[4] }, Rng)
  for _ = 1, 16 do r:next32() end
  return r
end

-- next raw word in [0, 2^32)
function Rng:next32()
  local t = bxor(self.x, lshift(self.x, 11))
  self.x, self.y, self.z = self.y, self.z, self.w
  local w = self.w
  w = bxor(bxor(w, rshift(w, 19)), bxor(t, rshift(t, 8)))
  self.w = w
  return u32(w)
end

-- :random() -> float in [0, 1); :random(n) -> int in [1, n]; :random(lo, hi) -> int in [lo, hi]
function Rng:random(lo, hi)
  local f = (self:next32() * TWO32 + self:next32()) / (TWO32 * TWO32)
  if lo == nil then return f end
  if hi == nil then lo, hi = 1, lo end
  if hi < lo then error(("bad interval [%s, %s]"):format(tostring(lo), tostring(hi)), 2) end
  return lo + floor(f * (hi - lo + 1))
end

-- a plain function(lo, hi) drawing from this generator
function Rng:fn()
  return function(lo, hi) return self:random(lo, hi) end
end

---------------------------------------------------------------------------------------------
-- helpers for specs
---------------------------------------------------------------------------------------------

-- number of seeds to run: LUACT_SIM_SEEDS overrides the default
function simnet.seed_count(default)
  local n = tonumber(os.getenv("LUACT_SIM_SEEDS") or "")
  return n and floor(n) or default or 200
end

-- run fn(seed) for seeds first .. first+count-1, re-raising any failure as "seed N: ..."
-- so the run can be replayed with LUACT_SIM_SEED=N (which runs only that seed).
function simnet.for_seeds(count, fn, first)
  first = first or 1
  local only = tonumber(os.getenv("LUACT_SIM_SEED") or "")
  if only then first, count = only, 1 end
  for seed = first, first + count - 1 do
    local ok, err = xpcall(fn, debug.traceback, seed)
    if not ok then
      err = tostring(err)
      local tag = ("seed %d: "):format(seed)
      if err:find(tag, 1, true) then error(err, 0) end -- net:fail() already named it
      error(tag .. err, 0)
    end
  end
end

local PLAIN = { string = true, number = true, boolean = true }

local function deep_copy(v, depth)
  if depth > 32 then error("simnet: message nested too deeply (cycle?)", 0) end
  local c = {}
  for k, x in next, v do
    if not PLAIN[type(k)] then error("simnet: message has a key of type " .. type(k), 0) end
    local tx = type(x)
    if tx == "table" then
      x = deep_copy(x, depth + 1)
    elseif not PLAIN[tx] then
      error("simnet: message holds a value of type " .. tx .. " (only plain data may travel)", 0)
    end
    c[k] = x
  end
  return c
end
-- `next` loops are not compiled by LuaJIT 2.1 (beta3): keep the JIT from recording them
-- again and again, which costs more than interpreting them
if jit then jit.off(deep_copy) end

simnet.deep_copy = function(v)
  if type(v) ~= "table" then
    if v == nil or PLAIN[type(v)] then return v end
    error("simnet: message holds a value of type " .. type(v) .. " (only plain data may travel)", 0)
  end
  return deep_copy(v, 0)
end

---------------------------------------------------------------------------------------------
-- the network
---------------------------------------------------------------------------------------------
local Net = {}
Net.__index = Net

function simnet.new(opts)
  opts = opts or {}
  local delay = opts.delay or { 0, 0 }
  local net = setmetatable({
    seed = opts.seed or 1,
    now = 0,
    drop_p = opts.drop or 0,
    delay_min = delay[1] or 0,
    delay_max = delay[2] or delay[1] or 0,
    duplicate_p = opts.duplicate or 0,
    reorder = opts.reorder or false,
    encode = opts.encode or false,
    max_rounds = opts.max_rounds or 1000,
    on_ready = opts.on_ready,
    on_deliver = opts.on_deliver,
    on_step = opts.on_step,
    before_collect = opts.before_collect,   -- function(net): at the start of every collect round
    ids = {},        -- insertion order
    nodes = {},      -- id -> node
    alive = {},      -- id -> bool
    gen = {},        -- id -> how many random_for() calls were made (for restarts)
    blocked = {},    -- from -> { to -> true }
    link_drop = {},  -- from -> { to -> p }
    queue = {},      -- in flight, by due tick: at -> list of { at, seq, from, to, msg }
    queued = 0,
    seq = 0,
    stats = { sent = 0, delivered = 0, dropped = 0, duplicated = 0, blocked = 0,
              unknown = 0, to_dead = 0 },
  }, Net)
  net.rng = simnet.rng(net.seed, "net")
  if net.encode then
    local buffer = require "string.buffer"
    net.copy = function(m) return buffer.decode(buffer.encode(m)) end
  else
    net.copy = function(m) return deep_copy(m, 0) end
  end
  return net
end

function Net:fail(msg, level)
  error(("seed %d: %s"):format(self.seed, tostring(msg)), (level or 1) + 1)
end

function Net:add(id, node)
  if self.nodes[id] ~= nil then error("simnet: node " .. tostring(id) .. " already added", 2) end
  self.ids[#self.ids + 1] = id
  self.nodes[id] = node
  self.alive[id] = true
  return node
end

function Net:node(id) return self.nodes[id] end
function Net:is_alive(id) return self.alive[id] == true end

-- ids of live nodes, in insertion order
function Net:live_ids()
  local out = {}
  for _, id in ipairs(self.ids) do
    if self.alive[id] then out[#out + 1] = id end
  end
  return out
end

function Net:random_for(id)
  local g = (self.gen[id] or 0) + 1
  self.gen[id] = g
  local r = simnet.rng(self.seed, "node", id, g)
  return function(lo, hi) return r:random(lo, hi) end
end

function Net:set_drop(p) self.drop_p = p end
function Net:set_delay(min_ticks, max_ticks)
  self.delay_min, self.delay_max = min_ticks, max_ticks or min_ticks
end
function Net:set_duplicate(p) self.duplicate_p = p end
function Net:set_reorder(b) self.reorder = b and true or false end

-- drop probability on one directed link (nil or 0 clears it)
function Net:drop_link(from, to, p)
  self.link_drop[from] = self.link_drop[from] or {}
  self.link_drop[from][to] = (p and p > 0) and p or nil
end

-- one direction only: messages from `from` to `to` are lost
function Net:cut(from, to)
  self.blocked[from] = self.blocked[from] or {}
  self.blocked[from][to] = true
end

function Net:uncut(from, to)
  if self.blocked[from] then self.blocked[from][to] = nil end
end

function Net:isolate(id)
  for _, other in ipairs(self.ids) do
    if other ~= id then self:cut(id, other); self:cut(other, id) end
  end
end

-- partition({1,2}, {3}, ...): nodes in different groups cannot talk (both directions).
-- Nodes not named in any group form one more group together. Adds to existing cuts.
function Net:partition(...)
  local group = {}
  local groups = { ... }
  for gi, set in ipairs(groups) do
    for _, id in ipairs(set) do group[id] = gi end
  end
  for _, a in ipairs(self.ids) do
    for _, b in ipairs(self.ids) do
      if a ~= b and (group[a] or 0) ~= (group[b] or 0) then self:cut(a, b) end
    end
  end
end

function Net:heal()
  self.blocked = {}
  self.link_drop = {}
end

function Net:is_blocked(from, to)
  local b = self.blocked[from]
  return b ~= nil and b[to] == true
end

-- the node stops: no ticks, no ready, messages to it are lost. Its storage is the caller's.
function Net:crash(id)
  if self.nodes[id] == nil then error("simnet: unknown node " .. tostring(id), 2) end
  self.alive[id] = false
end

-- put a new node object (usually rebuilt from the crashed one's storage) in place of id
function Net:restart(id, node)
  if self.nodes[id] == nil then error("simnet: unknown node " .. tostring(id), 2) end
  self.nodes[id] = node or self.nodes[id]
  self.alive[id] = true
  return self.nodes[id]
end

-- hand one message to the network (used for ready() output; specs may inject messages too)
function Net:send(from, msg)
  local st = self.stats
  st.sent = st.sent + 1
  local to = msg.to
  if to == nil or self.nodes[to] == nil then
    st.unknown = st.unknown + 1
    return
  end
  if self:is_blocked(from, to) then
    st.blocked = st.blocked + 1
    return
  end
  local rng = self.rng
  local p = self.drop_p
  local lp = self.link_drop[from] and self.link_drop[from][to]
  if lp and lp > p then p = lp end
  if p > 0 and rng:random() < p then
    st.dropped = st.dropped + 1
    return
  end
  local copies = 1
  if self.duplicate_p > 0 and rng:random() < self.duplicate_p then
    copies = 2
    st.duplicated = st.duplicated + 1
  end
  for _ = 1, copies do
    local d = self.delay_min
    if self.delay_max > d then d = rng:random(self.delay_min, self.delay_max) end
    self.seq = self.seq + 1
    local at = self.now + d
    -- sent between ticks (by a spec): it cannot arrive before the next tick
    if not self.in_tick and at <= self.now then at = self.now + 1 end
    local bucket = self.queue[at]
    if not bucket then bucket = {}; self.queue[at] = bucket end
    bucket[#bucket + 1] = { at = at, seq = self.seq, from = from, to = to, msg = self.copy(msg) }
    self.queued = self.queued + 1
  end
end

-- collect ready() from every live node, pass messages to the network, then advance()
function Net:collect(info)
  local any = false
  if self.before_collect then self.before_collect(self) end
  for _, id in ipairs(self.ids) do
    if self.alive[id] then
      local node = self.nodes[id]
      local rd = node:ready()
      if rd then
        any = true
        if self.on_ready then self.on_ready(id, rd, self) end
        if info.on_ready then info.on_ready(id, rd, self) end
        local msgs = rd.messages
        if msgs then
          for i = 1, #msgs do
            self:send(id, msgs[i])
            info.sent = info.sent + 1
          end
        end
        -- the node may have been crashed by a hook
        if self.alive[id] and self.nodes[id] == node then node:advance(rd) end
      end
    end
  end
  return any
end

-- deliver every message due now (in send order, or shuffled with reorder); returns the count
function Net:deliver(info)
  local due = self.queue[self.now]
  if not due then return 0 end
  self.queue[self.now] = nil
  self.queued = self.queued - #due
  if self.reorder then
    local rng = self.rng
    for i = #due, 2, -1 do
      local j = rng:random(1, i)
      due[i], due[j] = due[j], due[i]
    end
  end
  local st = self.stats
  local n = 0
  for i = 1, #due do
    local m = due[i]
    if not self.alive[m.to] then
      st.to_dead = st.to_dead + 1
    elseif self:is_blocked(m.from, m.to) then
      st.blocked = st.blocked + 1   -- the link was cut while the message was in flight
    else
      if self.on_deliver then self.on_deliver(m.from, m.to, m.msg, self) end
      self.nodes[m.to]:step(m.msg)
      if self.on_step then self.on_step(m.to, m.msg, self) end
      st.delivered = st.delivered + 1
      n = n + 1
    end
  end
  info.delivered = info.delivered + n
  return n
end

-- one tick: tick every live node, then alternate collect/deliver until nothing is due.
-- Messages with delay 0 arrive within the same tick. Returns { now, sent, delivered, rounds }.
function Net:tick(hooks)
  self.now = self.now + 1
  local info = { now = self.now, sent = 0, delivered = 0, rounds = 0,
                 on_ready = hooks and hooks.on_ready }
  self.in_tick = true
  for _, id in ipairs(self.ids) do
    if self.alive[id] then self.nodes[id]:tick() end
  end
  while true do
    info.rounds = info.rounds + 1
    if info.rounds > self.max_rounds then
      self:fail(("no quiescence after %d delivery rounds in tick %d"):format(self.max_rounds,
        self.now))
    end
    self:collect(info)
    if self:deliver(info) == 0 then break end
  end
  self.in_tick = false
  return info
end

-- run `ticks` ticks, calling check_fn(net, info) after each; returns the net
function Net:run(ticks, check_fn)
  for _ = 1, ticks do
    local info = self:tick()
    if check_fn then check_fn(self, info) end
  end
  return self
end

-- tick until pred(net) is true (checked after each tick); returns ticks used, or nil
function Net:run_until(pred, max_ticks, check_fn)
  for i = 1, max_ticks do
    local info = self:tick()
    if check_fn then check_fn(self, info) end
    if pred(self) then return i end
  end
  return nil
end

function Net:in_flight() return self.queued end

return simnet
