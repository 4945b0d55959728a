-- luact.inspect: a look inside a running system, from any thread: the actors of a thread (paged),
-- one actor, the threads' load, the cluster as this node sees it, and where a name lives. A
-- question about another thread (or another node's thread, by address) travels as a message
-- { "IQ", corr, thread, machine, what, a, b } and is answered on that thread with an ordinary
-- reply, so the asker waits as for a call (and gets actor_timeout / actor_unreachable the same
-- way). Answers are plain data, bounded in size (pages of at most MAX_PAGE actors, strings cut
-- at MAX_TEXT bytes) and hold nothing secret: no cluster secret, keys or actor state values.
local lffi = require "luact.ffi"
local C = lffi.C
local loop = require "luact.loop"
local codec = require "luact.actor.codec"
local host = require "luact.actor.host"
local call = require "luact.actor.call"
local node = require "luact.node"
local clock = require "luact.clock"
local exception = require "luact.exception"
local metrics = require "luact.metrics"
local thread = require "luact.thread"
local view = require "luact.cluster.view"
local wire = require "luact.cluster.wire"
local consensus = require "luact.cluster.consensus"
local replica = require "luact.cluster.replica"
local moves = require "luact.cluster.moves"
local ref = require "luact.actor.ref"

local inspect = {}

local MAX_PAGE, DEFAULT_PAGE = 1000, 100
local MAX_TEXT = 512
local MAX_FIELDS = 64
local TIMEOUT = 5
local MAX_LOCAL = 256
local addr_buf = lffi.ffi.new("luact_address_t[?]", MAX_LOCAL)

local function cut(s)
  s = tostring(s)
  if #s > MAX_TEXT then return s:sub(1, MAX_TEXT) .. "..." end
  return s
end

local function my_tid() return thread.id or 1 end

local function error_text(e)
  if e == nil then return nil end
  if exception.is_exception(e) then return cut(e.name .. ": " .. tostring(e.message)) end
  return cut(e)
end

local function body_type(body)
  local t = type(body)
  if t == "table" then
    local mt = getmetatable(body)
    local name = (type(mt) == "table" and rawget(mt, "__name")) or rawget(body, "__name")
    if type(name) == "string" then return "table:" .. cut(name) end
  end
  return t
end

local function summary(rec)
  local in_progress = 0
  if rec.calls then for _ in pairs(rec.calls) do in_progress = in_progress + 1 end end
  return { id = host.id(rec), ref = tostring(rec.ref), name = rec.name or rec.vid, body = body_type(rec.body),
           state = rec.state or "alive", supervised = rec.sup ~= nil, calls_served = rec.served or 0,
           calls_in_progress = in_progress, last_error = error_text(rec.last_error) }
end

-- The answers, computed on the thread asked.
local answer = {}

function answer.actors(after, limit)
  local recs, total, more = host.page(after, limit)
  local out = {}
  for i, rec in ipairs(recs) do out[i] = summary(rec) end
  return { thread = my_tid(), total = total, inbox_depth = C.luact_metrics_inbox_depth(my_tid()),
           actors = out, next = more and host.id(recs[#recs]) or nil }
end

function answer.actor(l, e)
  local rec = host.get(l, e)
  if not rec then return nil end
  local s = summary(rec)
  -- the shape of its state: field names and the types of their values (never the values)
  local fields, n = {}, 0
  if type(rec.body) == "table" then
    for k, v in pairs(rec.body) do
      n = n + 1
      if n > MAX_FIELDS then s.more_fields = true break end
      fields[cut(k)] = type(v)
    end
  end
  s.fields = fields
  return s
end

local function thread_row(tid)
  local b = C.luact_metrics_block(tid)
  local S = metrics.SLOT
  return { thread = tid, actors = b[S.actors], tentacles = b[S.tentacles], inbox_depth = C.luact_metrics_inbox_depth(tid),
           inbox_high_water = b[S.inbox_high_water], calls_received = b[S.calls_received],
           calls_sent = b[S.calls_sent], loop_turns = b[S.loop_turns], stalls = b[S.stalls],
           lua_memory_bytes = b[S.lua_memory_bytes] }
end

function answer.threads()
  local out = {}
  for tid = 1, thread.n_core or 1 do out[tid] = thread_row(tid) end
  return out
end

-- (thread 1: where the cluster services run)
function answer.cluster()
  local out = { member = view.active, self = view.active and (thread.opts or {}).address or nil,
                leader = view.leader, members = {} }
  for i, m in ipairs(view.members or {}) do
    out.members[i] = { address = m.address, state = m.state, voter = m.voter, incarnation = m.incarnation }
  end
  local st = consensus.status()
  if st then
    out.raft = { role = st.role, term = st.term, commit = st.commit, applied = st.applied,
                 last_index = st.last_index, snapshot_index = st.snapshot_index, leader = st.leader,
                 voters = st.voters }
  end
  local R = view.active and replica.state() or nil
  if R then out.applied = R.applied end
  local now = C.luact_clock_monotonic()
  local untl = C.luact_lease_until()
  out.lease = { held = untl > now, seconds_left = untl > now and untl - now or 0 }
  out.failovers = moves.recent()
  return out
end

function answer.where(vid)
  local R = view.active and replica.state() or nil
  local out = { name = vid, activations = {} }
  if R then
    local entry = R:vid(vid)
    if entry then
      out.multi = entry.multi
      for _, act in pairs(entry.acts or {}) do
        out.activations[#out.activations + 1] = { node = act.node, state = act.state, thread = act.t }
        if #out.activations >= MAX_PAGE then break end
      end
      table.sort(out.activations, function(a, b) return tostring(a.node) < tostring(b.node) end)
      return out
    end
  end
  -- a name of this node only (luact.register outside a cluster, or scope = "node")
  out.node_only = true
  local n = C.luact_names_list(vid, #vid, addr_buf, MAX_LOCAL)
  for i = 0, n - 1 do
    local a = addr_buf[i]
    out.activations[#out.activations + 1] = { node = (thread.opts or {}).address, thread = a.thread,
      ref = tostring(ref.new(a.machine, a.thread, a.epoch, a["local"])) }
  end
  return out
end

-- (thread 1) Where the virtual actors live: how many names the registry holds, activations per
-- node, and the activations of a page of at most `limit` names in name (byte) order, those
-- after `after` (nil: from the first); `next`: the page's last name when more follow. One pass
-- over the names keeping the lowest `limit` above `after` (the cost of a page is the number of
-- names, never a sort of all of them).
function answer.placements(limit, after)
  local R = view.active and replica.state() or nil
  local out = { total = 0, by_node = {}, names = {} }
  if not R then return out end
  local page, above = {}, 0            -- the lowest names above `after`, sorted
  for vid, entry in pairs(R.vids or {}) do
    out.total = out.total + 1
    for _, act in pairs(entry.acts or {}) do
      if act.node then out.by_node[act.node] = (out.by_node[act.node] or 0) + 1 end
    end
    if after == nil or vid > after then
      above = above + 1
      local n = #page
      if n < limit or vid < page[n] then
        if n == limit then page[n] = nil; n = n - 1 end
        while n >= 1 and page[n] > vid do page[n + 1] = page[n]; n = n - 1 end
        page[n + 1] = vid
      end
    end
  end
  for _, vid in ipairs(page) do
    local acts = {}
    for _, act in pairs(R.vids[vid].acts or {}) do acts[#acts + 1] = act end
    table.sort(acts, function(a, b) return tostring(a.node) < tostring(b.node) end)
    for _, act in ipairs(acts) do
      out.names[#out.names + 1] = { name = cut(vid), node = act.node, thread = act.t, state = act.state }
    end
  end
  if above > limit then out.next = page[#page] end
  out.more = out.next ~= nil or nil
  return out
end

-- Runs a question on this thread; returns its answer (raises on a bad question).
local function ask_here(what, a, b)
  local f = answer[what]
  if not f then error("luact.inspect: unknown question " .. tostring(what), 0) end
  return f(a, b)
end

loop.on("IQ", function(msg)
  local corr, rt, rm, what, a, b = msg[2], msg[3], msg[4], msg[5], msg[6], msg[7]
  local ok, r = pcall(ask_here, what, a, b)
  if not ok then r = exception.new("actor_runtime_error", cut(r)) end
  local reply = { "r", corr, ok, 1, r }
  local okenc, p, len = pcall(codec.encode, reply, "inspect answer", 5)
  if not okenc then
    p, len = codec.encode({ "r", corr, false, 1, exception.new("actor_runtime_error", cut(p)) })
  end
  if rm == host.MACHINE then loop.send_bytes(rt, p, len) else node.send_bytes(rm, rt, p, len) end
end)

-- Asks thread tid of `addr` (nil: this node) question `what`; waits `timeout` s (default 5).
local function ask(addr, tid, what, a, b, timeout)
  local m = addr and wire.machine(addr) or host.MACHINE
  if not m then error(("luact.inspect: bad node address '%s' (ip:port expected)"):format(tostring(addr)), 3) end
  if m == host.MACHINE and tid == my_tid() then return ask_here(what, a, b) end
  local corr = call.new_corr()
  local p, len = codec.encode({ "IQ", corr, my_tid(), host.MACHINE, what, a, b })
  local rc
  if m == host.MACHINE then rc = loop.send_bytes(tid, p, len) else rc = node.send_bytes(m, tid, p, len) end
  if rc ~= 0 then
    exception.raise("actor_unreachable", ("luact.inspect: cannot reach thread %d%s: %s"):format(tid,
      addr and (" of " .. addr) or "", lffi.describe(rc)))
  end
  return call.await(corr, m, clock.get() + (timeout or TIMEOUT), "inspect." .. what, tid, host.EPOCH, 0)
end

local function check_opts(opts, who)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad 'opts' argument to %s (table or nil expected, got %s)"):format(who, type(opts)), 3)
  end
  opts = opts or {}
  if opts.node ~= nil and type(opts.node) ~= "string" then
    error(("bad 'node' option to %s (\"ip:port\" expected, got %s)"):format(who, type(opts.node)), 3)
  end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or not (t > 0) or t == math.huge) then
    error(("bad 'timeout' option to %s (seconds above 0 expected, got %s)"):format(who, tostring(t)), 3)
  end
  return opts
end

local function check_thread(tid, who, addr)
  if tid == nil then return my_tid() end
  local n = addr and 1024 or (thread.n_core or 1)
  if type(tid) ~= "number" or tid < 1 or tid > n or tid % 1 ~= 0 then
    error(("bad 'thread' option to %s (1..%d expected, got %s)"):format(who, n, tostring(tid)), 3)
  end
  return tid
end

-- luact.inspect.actors([opts]) -> { thread, total, inbox_depth, actors = { summary... }, next }
-- opts: thread (default this one), node ("ip:port": another node), after (an id: the page after
-- it; use the previous answer's `next`), limit (default 100, at most 1000).
function inspect.actors(opts)
  opts = check_opts(opts, "luact.inspect.actors")
  local tid = check_thread(opts.thread, "luact.inspect.actors", opts.node)
  local after, limit = opts.after or -1, opts.limit or DEFAULT_PAGE
  if type(after) ~= "number" then error("bad 'after' option to luact.inspect.actors (an actor id expected)", 2) end
  if type(limit) ~= "number" or limit < 1 or limit > MAX_PAGE then
    error(("bad 'limit' option to luact.inspect.actors (1..%d expected, got %s)"):format(MAX_PAGE, tostring(limit)), 2)
  end
  return ask(opts.node, tid, "actors", after, math.floor(limit), opts.timeout)
end

-- luact.inspect.actor(ref) -> one actor's summary and the shape of its state, or nil when gone.
function inspect.actor(r)
  if not ref.is_plain(r) then error("bad 'actor' argument to luact.inspect.actor (actor reference expected)", 2) end
  local m, t, e, l = ref.parts(r)
  if m ~= host.MACHINE then
    return ask(node.name(m), t, "actor", l, e)
  end
  return ask(nil, t, "actor", l, e)
end

-- luact.inspect.threads([opts]) -> { per thread: actors, tentacles, inbox depth and high-water,
-- calls, loop turns, stalls, Lua memory }
function inspect.threads(opts)
  opts = check_opts(opts, "luact.inspect.threads")
  return ask(opts.node, opts.node and 1 or my_tid(), "threads", nil, nil, opts.timeout)
end

-- luact.inspect.cluster([opts]) -> { member, self, leader, members, raft, applied, lease,
-- failovers = the last 50 this node saw: { time, name, from, to } }
function inspect.cluster(opts)
  opts = check_opts(opts, "luact.inspect.cluster")
  return ask(opts.node, 1, "cluster", nil, nil, opts.timeout)
end

-- luact.inspect.placements([opts]) -> { total, by_node = { [addr] = n }, names = { { name, node,
-- thread, state } }, next, more }: the activations of opts.limit names (default 100, at most
-- 1000) in name order after opts.after (a name; pass the previous answer's `next`).
function inspect.placements(opts)
  opts = check_opts(opts, "luact.inspect.placements")
  local limit = opts.limit or DEFAULT_PAGE
  if type(limit) ~= "number" or limit < 1 or limit > MAX_PAGE then
    error(("bad 'limit' option to luact.inspect.placements (1..%d expected, got %s)"):format(MAX_PAGE, tostring(limit)), 2)
  end
  if opts.after ~= nil and type(opts.after) ~= "string" then
    error(("bad 'after' option to luact.inspect.placements (a name expected, got %s)"):format(type(opts.after)), 2)
  end
  return ask(opts.node, 1, "placements", math.floor(limit), opts.after, opts.timeout)
end

-- luact.inspect.where(name[, opts]) -> { name, multi, activations = { { node, state, thread } } }
function inspect.where(vid, opts)
  if type(vid) ~= "string" then error("bad 'name' argument to luact.inspect.where (string expected, got " .. type(vid) .. ")", 2) end
  opts = check_opts(opts, "luact.inspect.where")
  return ask(opts.node, 1, "where", vid, nil, opts.timeout)
end

return inspect
