-- luact.cluster.gossip: owns one SWIM gossip node as a pure state machine: the public API,
-- the probe cycle (direct ping, k indirect probes through relays, Lifeguard nacks), the
-- precedence rules that apply membership updates (incarnations, suspicion, refutation),
-- dissemination piggybacked on every message, push-pull anti-entropy, joining through seeds and
-- graceful leave. It never reads a clock, a socket or math.random: time passes only through
-- tick() (one tick is 100 ms with the default options) and randomness comes only from the
-- injected random(lo, hi). See README.md beside this file.

local membership = require "luact.cluster.gossip.membership"
local bqueue = require "luact.cluster.gossip.broadcast_queue"
local suspicion = require "luact.cluster.gossip.suspicion"
local health = require "luact.cluster.gossip.health"
local messages = require "luact.cluster.gossip.messages"

local type, ipairs, pairs, setmetatable, error = type, ipairs, pairs, setmetatable, error
local max, min, floor, log10 = math.max, math.min, math.floor, math.log10
local is_live = membership.is_live
local copy_meta, meta_equal, copy_update = messages.copy_meta, messages.meta_equal,
  messages.copy_update

local gossip = {}

-- every duration is in ticks
gossip.DEFAULTS = {
  probe_interval = 4,           -- start one probe every 4 ticks (x health multiplier)
  probe_timeout = 2,            -- direct ack window (x health multiplier)
  indirect_timeout = 5,         -- further window for indirect acks (x health multiplier)
  indirect_checks = 3,          -- k relays asked to probe for us
  suspicion_mult = 3,           -- min suspicion = mult * probe_interval * max(1, log10(n))
  suspicion_max_mult = 6,       -- max suspicion = max_mult * min suspicion
  suspicion_confirmations = 3,  -- confirmations that bring the timeout down to min
  gossip_interval = 2,          -- a gossip round every 2 ticks ...
  gossip_nodes = 3,             -- ... to 3 random members
  gossip_to_dead = 300,         -- members dead for less than this still get gossip
  retransmit_mult = 8,          -- each update is sent retransmit_mult * ceil(log10(n + 1)) times
  max_piggyback = 8,            -- updates carried by one message
  push_pull_interval = 300,     -- full state exchange with a random live member
  reconnect_interval = 100,     -- full state exchange with a random dead member (or a seed)
  join_retry = 10,              -- first retry of an unanswered join; doubles up to reconnect
  awareness_max = 8,            -- health multiplier ranges over 1 .. awareness_max
  reap_after = 36000,           -- dead and left members are forgotten after this long
  meta_max_bytes = 512,         -- bound on one member's metadata map
}

local Node = {}
Node.__index = Node

local function bad(name, level)
  error(("bad '%s' option"):format(name), (level or 2) + 1)
end

function gossip.new(opts)
  if type(opts) ~= "table" then error("bad options: a table expected", 2) end
  if not messages.is_id(opts.id) then bad("id") end
  if type(opts.random) ~= "function" then bad("random") end
  local o = {}
  for k, v in pairs(gossip.DEFAULTS) do
    local given = opts[k]
    if given ~= nil then
      if type(given) ~= "number" or given ~= floor(given) or given < 0 then bad(k) end
      o[k] = given
    else
      o[k] = v
    end
  end
  if o.probe_interval < 1 then bad("probe_interval") end
  if o.gossip_interval < 1 then bad("gossip_interval") end
  if o.push_pull_interval < 1 then bad("push_pull_interval") end
  if o.reconnect_interval < 1 then bad("reconnect_interval") end
  if o.join_retry < 1 then bad("join_retry") end
  if o.awareness_max < 1 then bad("awareness_max") end
  if o.retransmit_mult < 1 then bad("retransmit_mult") end
  local seeds = {}
  if opts.seeds ~= nil then
    if type(opts.seeds) ~= "table" then bad("seeds") end
    for _, s in ipairs(opts.seeds) do
      if not messages.is_id(s) then bad("seeds") end
      if s ~= opts.id then seeds[#seeds + 1] = s end
    end
  end
  local meta
  if opts.meta ~= nil then
    local size = messages.meta_size(opts.meta)
    if not size or size > o.meta_max_bytes then bad("meta") end
    meta = copy_meta(opts.meta)
  end

  local random = opts.random
  local self = setmetatable({
    id = opts.id,
    o = o,
    random = random,
    seeds = seeds,
    now = 0,
    ms = membership.new(opts.id),
    queue = bqueue.new(),
    health = health.new(o.awareness_max),
    out = {},
    events = {},
    seq = 0,
    probes = {},        -- probes in flight, oldest first
    probing = {},       -- id -> true while a probe of it is in flight
    relays = {},        -- indirect probes we run for others, oldest first
    priority = {},      -- ids to probe before the round-robin order (learned suspicions)
    asked = {},         -- id -> tick of the last sync sent to it because it was unknown
    asked_n = 0,
    joined = #seeds == 0,
    join_wait = o.join_retry,
    leaving = false,
    done = false,
    counters = { dropped_bad = 0, received = 0, sent = 0, probes = 0, probe_failures = 0,
                 indirect_probes = 0, suspicions = 0, refutations = 0, late_acks = 0,
                 syncs = 0 },
  }, Node)
  self.me = self.ms:add({ id = opts.id, state = "alive", inc = 0, meta = meta, since = 0 }, random)
  -- spread the periodic work over time so that nodes started together do not act in step
  self.next_probe = random(1, o.probe_interval)
  self.next_gossip = random(1, o.gossip_interval)
  self.next_push_pull = random(1, o.push_pull_interval)
  self.next_reconnect = random(1, o.reconnect_interval)
  self.next_join = o.join_retry
  self.next_reap = 100
  for _, s in ipairs(seeds) do self:_send_sync(s, false) end
  return self
end

---------------------------------------------------------------------------------------------
-- output
---------------------------------------------------------------------------------------------

function Node:_event(kind, id)
  self.events[#self.events + 1] = { type = kind, id = id }
end

function Node:_limit()
  return bqueue.limit(self.o.retransmit_mult, self.ms:live_count())
end

-- address and piggyback a message, then queue it. Whatever we send to a member we suspect
-- carries that suspicion first, so that it can refute at once (Lifeguard's buddy system,
-- applied to every message rather than only to probes: a suspicion whose broadcasts were all
-- lost, say while this node was cut off, still reaches the member it is about).
function Node:_send(to, msg)
  msg.to, msg.from = to, self.id
  local ups = {}
  local rec = self.ms:get(to)
  local buddy = rec and rec.state == "suspect" and rec or nil
  if buddy then
    ups[1] = { kind = "suspect", id = to, inc = buddy.inc, from = self.id }
  end
  self.queue:take(self.o.max_piggyback - #ups, self:_limit(), ups, buddy and to)
  if #ups > 0 then
    for i = 1, #ups do ups[i] = copy_update(ups[i]) end
    msg.updates = ups
  end
  self.out[#self.out + 1] = msg
  self.counters.sent = self.counters.sent + 1
end

function Node:_broadcast(u)
  self.queue:push(u.id, u)
end

function Node:_alive_update(rec)
  return { kind = "alive", id = rec.id, inc = rec.inc, meta = copy_meta(rec.meta) }
end

function Node:_state()
  local st = {}
  for _, rec in ipairs(self.ms:records()) do
    local r = { id = rec.id, state = rec.state, inc = rec.inc }
    if is_live(rec.state) then r.meta = copy_meta(rec.meta) end
    st[#st + 1] = r
  end
  return st
end

function Node:_send_sync(to, reply)
  self.counters.syncs = self.counters.syncs + 1
  self.out[#self.out + 1] = { to = to, from = self.id, type = "sync", reply = reply,
                              state = self:_state() }
  self.counters.sent = self.counters.sent + 1
end

---------------------------------------------------------------------------------------------
-- precedence rules: apply one update (from gossip or from a sync)
---------------------------------------------------------------------------------------------

function Node:_refute(inc)
  local me = self.me
  me.inc = max(me.inc, inc) + 1
  self.health:apply(1)
  self.counters.refutations = self.counters.refutations + 1
  self:_broadcast(self:_alive_update(me))
end

-- an accusation about us: outbid it, or, if it is older than our incarnation (its sender
-- missed our refutation), repeat our current alive so that the sender hears it first
function Node:_accused(inc)
  if self.leaving then return end
  if inc >= self.me.inc then
    self:_refute(inc)
  else
    self:_broadcast(self:_alive_update(self.me))
  end
end

function Node:_suspicion_timer(from)
  local o = self.o
  local n = self.ms:live_count()
  local k = min(o.suspicion_confirmations, n - 2)
  if k < 0 then k = 0 end
  local lo = o.suspicion_mult * o.probe_interval * max(1, log10(max(n, 1)))
  return suspicion.new(from, k, lo, o.suspicion_max_mult * lo, self.now)
end

-- `quiet`: a brand-new member learned from a peer's full state (other than the peer itself) is
-- not re-broadcast, the peer's other members know it already; any change to a known member is.
function Node:_on_alive(u, quiet)
  local id, inc = u.id, u.inc
  if id == self.id then
    local me = self.me
    if self.leaving then return end
    -- a claim about us we did not make (an earlier life of this id): outbid it
    if inc > me.inc or (inc == me.inc and not meta_equal(u.meta, me.meta)) then
      self:_refute(inc)
    end
    return
  end
  local ms = self.ms
  local rec = ms:get(id)
  if not rec then
    ms:add({ id = id, state = "alive", inc = inc, meta = copy_meta(u.meta), since = self.now },
      self.random)
    self:_event("join", id)
    if not quiet then self:_broadcast(copy_update(u)) end
    return
  end
  if inc <= rec.inc then return end
  local old = rec.state
  local changed = not meta_equal(rec.meta, u.meta)
  rec.inc, rec.meta, rec.timer = inc, copy_meta(u.meta), nil
  if old ~= "alive" then
    ms:set_state(rec, "alive")
    rec.since = self.now
  end
  if old == "suspect" then
    self:_event("alive", id)
  elseif old == "dead" or old == "left" then
    self:_event("join", id)
  end
  if changed and is_live(old) then self:_event("update", id) end
  self:_broadcast(copy_update(u))
end

function Node:_on_suspect(u)
  local id, inc = u.id, u.inc
  if id == self.id then return self:_accused(inc) end
  local rec = self.ms:get(id)
  if not rec or inc < rec.inc or not is_live(rec.state) then return end
  if rec.state == "suspect" then
    if rec.timer:confirm(u.from) then
      if inc > rec.inc then rec.inc = inc end
      self:_broadcast({ kind = "suspect", id = id, inc = inc, from = u.from })
    end
    return
  end
  self.ms:set_state(rec, "suspect")
  rec.inc, rec.since = inc, self.now
  rec.timer = self:_suspicion_timer(u.from)
  self:_event("suspect", id)
  self:_broadcast({ kind = "suspect", id = id, inc = inc, from = u.from })
  -- heard from someone else: check for ourselves soon, so that a real failure gathers its
  -- confirmations quickly and a false one is not confirmed
  if u.from ~= self.id and not self.probing[id] then
    self.priority[#self.priority + 1] = id
  end
end

function Node:_on_dead(u)
  local id, inc = u.id, u.inc
  if id == self.id then return self:_accused(inc) end
  local rec = self.ms:get(id)
  if not rec or inc < rec.inc or not is_live(rec.state) then return end
  -- Another member's verdict on a member this node sees alive (it never heard it suspected) is
  -- a suspicion here, which the member refutes if it lives. A member cut off by a partition
  -- declares every other one dead; when the partition heals, its verdicts would otherwise
  -- spread and kill the members that were fine all along. A real death was suspected
  -- everywhere first (the suspicion is broadcast), so it is taken at once where it was.
  if u.from ~= self.id and rec.state == "alive" then
    return self:_on_suspect({ kind = "suspect", id = id, inc = inc, from = u.from })
  end
  self.ms:set_state(rec, "dead")
  rec.inc, rec.since, rec.timer = inc, self.now, nil
  self:_event("dead", id)
  self:_broadcast({ kind = "dead", id = id, inc = inc, from = u.from })
end

function Node:_on_left(u)
  local id, inc = u.id, u.inc
  if id == self.id then return self:_accused(inc) end
  local rec = self.ms:get(id)
  if not rec or inc < rec.inc or rec.state == "left" then return end
  self.ms:set_state(rec, "left")
  rec.inc, rec.since, rec.timer = inc, self.now, nil
  self:_event("leave", id)
  self:_broadcast({ kind = "left", id = id, inc = inc })
end

function Node:_apply(u)
  local k = u.kind
  if k == "alive" then self:_on_alive(u, false)
  elseif k == "suspect" then self:_on_suspect(u)
  elseif k == "dead" then self:_on_dead(u)
  else self:_on_left(u) end
end

-- a record from a peer's full state. A peer's "dead" only makes us suspect the member: it may
-- be a stale view from the other side of a partition, and a live member refutes a suspicion.
function Node:_merge(r, from)
  local s = r.state
  if s == "alive" then
    self:_on_alive({ kind = "alive", id = r.id, inc = r.inc, meta = r.meta }, r.id ~= from)
  elseif s == "left" then
    self:_on_left({ kind = "left", id = r.id, inc = r.inc })
  elseif r.id == self.id then
    self:_on_dead({ kind = s, id = r.id, inc = r.inc, from = from })
  else
    self:_on_suspect({ kind = "suspect", id = r.id, inc = r.inc, from = from })
  end
end

---------------------------------------------------------------------------------------------
-- probing
---------------------------------------------------------------------------------------------

local function probeable(node)
  return function(rec)
    return is_live(rec.state) and not node.probing[rec.id]
  end
end

function Node:_next_target()
  local pr = self.priority
  while #pr > 0 do
    local id = table.remove(pr, 1)
    local rec = self.ms:get(id)
    if rec and rec.state == "suspect" and not self.probing[id] then return rec end
  end
  return self.ms:next_probe(probeable(self))
end

function Node:_start_probe()
  local rec = self:_next_target()
  if not rec then return end
  local o, h = self.o, self.health
  self.seq = self.seq + 1
  local p = { seq = self.seq, id = rec.id, inc = rec.inc, start = self.now,
              direct_at = self.now + h:scale(o.probe_timeout),
              deadline = self.now + h:scale(o.probe_timeout + o.indirect_timeout),
              relays = {}, nacks = 0, indirect = false }
  self.probes[#self.probes + 1] = p
  self.probing[rec.id] = true
  self.counters.probes = self.counters.probes + 1
  self:_send(rec.id, { type = "ping", seq = p.seq })
end

function Node:_go_indirect(p, rec)
  p.indirect = true
  self.counters.indirect_probes = self.counters.indirect_probes + 1
  local target = p.id
  local relays = self.ms:pick(self.random, self.o.indirect_checks, function(r)
    return r.state == "alive" and r.id ~= target
  end)
  for _, r in ipairs(relays) do
    p.relays[#p.relays + 1] = r.id
    self:_send(r.id, { type = "ping_req", seq = p.seq, target = target })
  end
  -- and ask once more directly, over what may be a different path (memberlist's TCP ping)
  self:_send(target, { type = "ping", seq = p.seq })
end

function Node:_probe_failed(p)
  local expected = #p.relays
  local delta = 1
  if expected > 0 then delta = expected - p.nacks end
  if delta > 0 then self.health:apply(delta) end
  self.counters.probe_failures = self.counters.probe_failures + 1
  local rec = self.ms:get(p.id)
  if rec and is_live(rec.state) and rec.inc == p.inc then
    if rec.state == "alive" then self.counters.suspicions = self.counters.suspicions + 1 end
    self:_on_suspect({ kind = "suspect", id = p.id, inc = p.inc, from = self.id })
  end
end

function Node:_check_probes()
  local now, keep = self.now, {}
  for _, p in ipairs(self.probes) do
    local rec = self.ms:get(p.id)
    if not rec or not is_live(rec.state) then
      self.probing[p.id] = nil
    elseif now > p.deadline then
      self.probing[p.id] = nil
      self:_probe_failed(p)
    else
      if not p.indirect and now > p.direct_at then self:_go_indirect(p, rec) end
      keep[#keep + 1] = p
    end
  end
  self.probes = keep
end

function Node:_check_relays()
  local now, keep = self.now, {}
  for _, r in ipairs(self.relays) do
    if now > r.deadline then
      self:_send(r.origin, { type = "nack", seq = r.oseq })
    else
      keep[#keep + 1] = r
    end
  end
  self.relays = keep
end

function Node:_check_suspicions()
  if self.ms:suspect_count() == 0 then return end
  local now = self.now
  for _, rec in ipairs(self.ms:records()) do
    local t = rec.timer
    if t and rec.state == "suspect" and t:expired(now) then
      self:_on_dead({ kind = "dead", id = rec.id, inc = rec.inc, from = self.id })
    end
  end
end

local function find_seq(list, seq)
  for i = 1, #list do
    if list[i].seq == seq then return i, list[i] end
  end
  return nil
end

function Node:_on_ack(msg)
  local from, seq = msg.from, msg.seq
  local i, p = find_seq(self.probes, seq)
  if p then
    local ok = from == p.id
    if not ok then
      for _, r in ipairs(p.relays) do
        if r == from then ok = true break end
      end
    end
    if ok then
      if from == p.id and self.now <= p.direct_at then self.health:apply(-1) end
      table.remove(self.probes, i)
      self.probing[p.id] = nil
      return
    end
  end
  local j, r = find_seq(self.relays, seq)
  if r and from == r.target then
    table.remove(self.relays, j)
    self:_send(r.origin, { type = "ack", seq = r.oseq })
    return
  end
  self.counters.late_acks = self.counters.late_acks + 1
end

function Node:_on_nack(msg)
  local _, p = find_seq(self.probes, msg.seq)
  if not p then return end
  for _, r in ipairs(p.relays) do
    if r == msg.from then p.nacks = p.nacks + 1 return end
  end
end

function Node:_on_ping_req(msg)
  self.seq = self.seq + 1
  self.relays[#self.relays + 1] = { seq = self.seq, origin = msg.from, oseq = msg.seq,
    target = msg.target, deadline = self.now + self.health:scale(self.o.probe_timeout) }
  self:_send(msg.target, { type = "ping", seq = self.seq })
end

---------------------------------------------------------------------------------------------
-- periodic work
---------------------------------------------------------------------------------------------

function Node:_gossip_round()
  if self.queue:len() == 0 then return end
  local now, to_dead = self.now, self.o.gossip_to_dead
  local targets = self.ms:next_gossip(self.o.gossip_nodes, function(r)
    return is_live(r.state) or (r.state == "dead" and now - r.since < to_dead)
  end)
  for _, r in ipairs(targets) do
    if self.queue:len() == 0 then break end
    self:_send(r.id, { type = "gossip" })
  end
end

function Node:_push_pull()
  local peer = self.ms:pick(self.random, 1, function(r) return r.state == "alive" end)[1]
  if peer then self:_send_sync(peer.id, false) end
end

function Node:_sync_unknown(id)
  local last = self.asked[id]
  if last and self.now - last < self.o.join_retry then return end
  self.asked[id] = self.now
  self.asked_n = self.asked_n + 1
  if self.asked_n > 1024 then self.asked, self.asked_n = { [id] = self.now }, 1 end
  self:_send_sync(id, false)
end

function Node:_reconnect()
  local dead = self.ms:pick(self.random, 1, function(r) return r.state == "dead" end)[1]
  if dead then self:_send_sync(dead.id, false) end
  if self.ms:live_count() <= 1 and #self.seeds > 0 then
    local s = self.seeds[self.random(1, #self.seeds)]
    if not dead or s ~= dead.id then self:_send_sync(s, false) end
  end
end

---------------------------------------------------------------------------------------------
-- public API
---------------------------------------------------------------------------------------------

function Node:tick()
  self.now = self.now + 1
  if self.done then return end
  local now, o = self.now, self.o
  if not self.leaving then
    self:_check_probes()
    self:_check_relays()
    self:_check_suspicions()
    if now >= self.next_probe then
      self:_start_probe()
      self.next_probe = now + self.health:scale(o.probe_interval)
    end
    if now >= self.next_push_pull then
      self:_push_pull()
      self.next_push_pull = now + o.push_pull_interval
    end
    if now >= self.next_reconnect then
      self:_reconnect()
      self.next_reconnect = now + o.reconnect_interval
    end
    if not self.joined and now >= self.next_join then
      for _, s in ipairs(self.seeds) do self:_send_sync(s, false) end
      self.join_wait = min(self.join_wait * 2, o.reconnect_interval)
      self.next_join = now + self.join_wait
    end
  end
  if now >= self.next_gossip then
    self:_gossip_round()
    self.next_gossip = now + o.gossip_interval
  end
  if now >= self.next_reap then
    self.next_reap = now + 100
    local cutoff = now - o.reap_after
    self.ms:reap(function(rec)
      return (rec.state == "dead" or rec.state == "left") and rec.since <= cutoff
    end)
  end
  if self.leaving and not self.queue:has(self.id) then self.done = true end
end

function Node:step(msg)
  if self.done then return end
  local why = messages.check(msg, self.id, self.o.meta_max_bytes)
  if why then
    self.counters.dropped_bad = self.counters.dropped_bad + 1
    self.last_bad = why
    return
  end
  self.counters.received = self.counters.received + 1
  local ups = msg.updates
  if ups then
    for i = 1, #ups do self:_apply(ups[i]) end
  end
  local t = msg.type
  if t ~= "sync" and not self.leaving then
    -- a message from a member we do not know (a join whose news missed us) or think dead (a
    -- view from the other side of a healed partition): exchange full state with it
    local rec = self.ms:get(msg.from)
    if not rec or rec.state == "dead" then self:_sync_unknown(msg.from) end
  end
  if t == "ping" then
    self:_send(msg.from, { type = "ack", seq = msg.seq })
  elseif t == "ack" then
    self:_on_ack(msg)
  elseif t == "nack" then
    self:_on_nack(msg)
  elseif t == "ping_req" then
    if not self.leaving then self:_on_ping_req(msg) end
  elseif t == "sync" then
    local st = msg.state
    for i = 1, #st do self:_merge(st[i], msg.from) end
    if msg.reply then
      self.joined = true
    else
      self:_send_sync(msg.from, true)
    end
  end
end

function Node:ready()
  if #self.out == 0 and #self.events == 0 then return nil end
  return { messages = self.out, events = self.events }
end

function Node:advance(rd)
  if rd == nil then return end
  if rd.messages == self.out then self.out = {} end
  if rd.events == self.events then self.events = {} end
end

-- { [id] = "alive"|"suspect"|"dead"|"left" }, this node included
function Node:members()
  local m = {}
  for _, rec in ipairs(self.ms:records()) do m[rec.id] = rec.state end
  return m
end

-- ids in this node's (fixed) order, with state and incarnation: { {id=, state=, inc=}, ... }
function Node:member_list()
  local l = {}
  for _, rec in ipairs(self.ms:records()) do
    l[#l + 1] = { id = rec.id, state = rec.state, inc = rec.inc }
  end
  return l
end

function Node:meta(id)
  local rec = self.ms:get(id == nil and self.id or id)
  return rec and copy_meta(rec.meta) or nil
end

function Node:set_meta(tbl)
  local size = messages.meta_size(tbl)
  if not size or size > self.o.meta_max_bytes then
    error("bad metadata: a flat table of string keys and string, number or boolean values, "
      .. "at most " .. self.o.meta_max_bytes .. " bytes", 2)
  end
  if self.leaving then error("set_meta after leave", 2) end
  local me = self.me
  if meta_equal(me.meta, tbl) then return end
  me.meta = copy_meta(tbl)
  me.inc = me.inc + 1
  self:_broadcast(self:_alive_update(me))
end

function Node:incarnation() return self.me.inc end

function Node:leave()
  if self.leaving then return end
  self.leaving = true
  local me = self.me
  self.ms:set_state(me, "left")
  me.since = self.now
  local u = { kind = "left", id = self.id, inc = me.inc }
  self.queue:push(self.id, u)
  -- tell every live member once directly; the queue keeps retransmitting it through gossip
  for _, rec in ipairs(self.ms:records()) do
    if rec ~= me and is_live(rec.state) then
      self.out[#self.out + 1] = { to = rec.id, from = self.id, type = "gossip",
                                  updates = { copy_update(u) } }
      self.counters.sent = self.counters.sent + 1
    end
  end
end

-- Strong outside evidence that a live member is gone (its address refused a connection: no
-- process listens there): declares it dead now, as this node's own suspicion timing out would,
-- and disseminates that. A member that is in fact alive refutes it like any false death.
-- Returns true when the member was live.
function Node:declare_dead(id)
  if self.done or id == self.id then return false end
  local rec = self.ms:get(id)
  if not rec or not is_live(rec.state) then return false end
  self:_on_dead({ kind = "dead", id = id, inc = rec.inc, from = self.id })
  return true
end

-- true once a leave has been disseminated and the node has gone quiet
function Node:left() return self.done end

function Node:stats()
  local s = {}
  for k, v in pairs(self.counters) do s[k] = v end
  s.awareness = self.health:get()
  s.incarnation = self.me.inc
  s.queued = self.queue:len()
  s.live = self.ms:live_count()
  s.now = self.now
  return s
end

return gossip
