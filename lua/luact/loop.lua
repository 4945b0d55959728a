-- luact.loop: one thread's event loop. Each turn: resume ready tentacles, fire due timers, then
-- ask the core for completions (sleeping in io_uring until the next deadline when there is
-- nothing to do), and dispatch the completions and the inbox messages that arrived. Messages
-- are tables (encoded by luact.actor.codec) whose first element names a handler; what this
-- thread sends to other threads goes out in one batch per thread before the loop waits
-- (luact.outbox), and an inbox entry may hold several messages.
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C
local codec = require "luact.actor.codec"
local outbox = require "luact.outbox"
local scheduler = require "luact.scheduler"
local clock = require "luact.clock"
local metrics = require "luact.metrics"

local loop = {}

-- Messages queued for other nodes so far (luact.node counts them): a turn that sent some polls
-- sooner.
loop.node_sends = 0

-- The node transport's connection events, drained after each poll that saw some (luact.node,
-- which requires this module, sets it).
local node_events = function() end
function loop.on_node_events(fn) node_events = fn end

-- Tentacle resumes per turn before the loop looks at I/O and sends what they produced: a short
-- turn lets the peer start on the first calls sooner instead of both sides taking turns with
-- whole batches. A turn that sent nothing to another node goes on for RUN_BUDGET more resumes:
-- what it sends to threads of this process needs no poll to leave (an idle thread gets it at
-- once), so there a longer turn only saves turns (across nodes a second budget costs). The
-- figures behind both choices: README, "Figures behind tuning constants". Queued messages
-- (luact.scheduler's tasks) have a budget of their own per turn, shared by both halves: 1024.
local RUN_BUDGET = 32
local MAX_COMPLETIONS = 256
local MAX_DRAIN = 256
local IDLE_TIMEOUT = 3600     -- seconds to sleep when no timer is pending
local RETRY_FULL = 0.0005     -- longest sleep while a batch waits for room in a full inbox

local ctx = nil               -- this thread's luact_thread_ctx*, while attached
local handlers = {}           -- message kind -> function(msg)
local io_handlers = {}        -- user_data -> function(res, flags): what the core reports to Lua (luact.socket's handles)
local completions = ffi.new("luact_completion_t[?]", MAX_COMPLETIONS)
local turn_state = ffi.new("luact_turn_state_t")
local ptrs = ffi.new("const uint8_t*[?]", MAX_DRAIN)
local lens = ffi.new("size_t[?]", MAX_DRAIN)

loop.stats = { messages = 0, bad_messages = 0, turns = 0 }

-- Binds this VM to thread tid's context; n_core and inbox_size are the runtime's options.
function loop.attach(tid, n_core, inbox_size)
  local c = C.luact_thread_attach(tid)
  if c == nil then
    error("luact: cannot start thread " .. tid .. "'s loop: " .. lffi.last_error(), 0)
  end
  ctx = c
  metrics.attach(tid)
  outbox.attach(c, n_core, inbox_size)
  return c
end

function loop.detach()
  outbox.detach()
  metrics.detach()
  if ctx ~= nil then C.luact_thread_detach(ctx) end
  ctx = nil
end

function loop.context()
  return ctx
end

-- Registers the handler of messages whose first element is `kind`.
function loop.on(kind, fn)
  handlers[kind] = fn
end

-- Routes completions whose user_data is `key` to fn(res, flags) (nil: stop routing them).
function loop.on_io(key, fn)
  io_handlers[key] = fn
end

-- Encodes `msg` (a table; first element the kind) for thread `tid`'s inbox (it goes out with
-- this turn's batch, see luact.outbox). Returns the core's status: lffi.status.ok, or .full when
-- the inbox and the batch waiting for it are both at capacity (nothing was queued).
-- Raises when msg holds a value that cannot travel (see luact.actor.codec).
function loop.send(tid, msg, what, first_arg, prefix)
  local p, len = codec.encode(msg, what, first_arg, prefix)
  return outbox.send(tid, p, len)
end

-- Queues one message already encoded (len bytes at p) for thread tid; statuses as loop.send.
loop.send_bytes = outbox.send

local function report(what, err)
  local log = require "luact.logger"
  log.error(what .. ": " .. tostring(err))
end

local decoding = false         -- true while handle is decoding (an error then leaves the entry unreadable)
local KIND_CALL, KIND_REPLY = codec.KIND_CALL, codec.KIND_REPLY
local on_call, on_reply       -- the handlers of the compact call and reply frames (luact.actor.call)

-- Registers the handlers of compact call and reply frames (see luact.actor.codec):
-- call(l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3), reply(corr, ok, n, v1, v2, v3).
function loop.on_frames(call, reply)
  on_call, on_reply = call, reply
end

-- Decodes the entry's next message and runs its handler; returns nil when it did, else why it
-- could not. (Raises when the bytes do not decode or the handler fails: dispatch's one pcall
-- per message catches both.)
local function handle()
  decoding = true
  local msg = codec.decode_next()
  if msg == KIND_CALL then
    local l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3 = codec.read_call()
    decoding = false
    return on_call(l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3)
  elseif msg == KIND_REPLY then
    local corr, ok, n, v1, v2, v3 = codec.read_reply()
    decoding = false
    return on_reply(corr, ok, n, v1, v2, v3)
  end
  decoding = false
  if type(msg) ~= "table" then return "dropped an inbox message that is not a table", type(msg) end
  local h = handlers[msg[1]]
  if not h then return "no handler for inbox message kind", msg[1] end
  h(msg)
end

-- Runs the entry's next message; false when the rest of the entry cannot be read.
local function dispatch_one(stats)
  local ok, why, what = pcall(handle)
  if ok and why == nil then
    stats.messages = stats.messages + 1
    return true
  end
  stats.bad_messages = stats.bad_messages + 1
  if ok then
    report("luact: " .. why, what)
  elseif decoding then
    decoding = false
    report("luact: an inbox message could not be decoded (the rest of its batch is dropped)", why)
    return false
  else
    report("luact: an inbox message's handler failed", why)
  end
  return true
end

-- Runs every message of one inbox entry, in order. (The first one before the loop: an entry of
-- one message, the common case when messages trickle in, then enters no loop, and a loop entered
-- for one pass keeps the caller's trace from forming; the same holds for the loops below.)
local function dispatch(p, len)
  local stats = loop.stats
  codec.begin(p, len)
  if not dispatch_one(stats) then return end
  while codec.remaining() > 0 do
    if not dispatch_one(stats) then return end
  end
end

-- The I/O half of a turn, after the tentacles ran: fire due timers, push the outbox, wait (as
-- long as nothing is ready) and dispatch what arrived. Returns false once luact.stop was called.
-- (A function of its own, so the JIT can compile it from its entry: the turn's loop in
-- loop.run cannot become a trace, since resuming tentacles switches coroutines, and its FFI
-- calls and cdata reads are slow when interpreted.)
local function poll_and_dispatch()
  local now = C.luact_clock_monotonic()
  clock.fire_due(now)
  local all_sent = outbox.flush()
  local timeout = 0
  if not scheduler.has_ready() then
    local deadline = clock.next_deadline(now)
    timeout = deadline and math.max(deadline - now, 0) or IDLE_TIMEOUT
    if not all_sent and timeout > RETRY_FULL then timeout = RETRY_FULL end
  end
  -- one call waits, drains the inbox and says whether there is more to look at
  local n = C.luact_turn(ctx, now, timeout, completions, MAX_COMPLETIONS, ptrs, lens, MAX_DRAIN, turn_state)
  if n < 0 then
    error("luact: the loop's poll failed: " .. lffi.describe(n), 0)
  end
  clock.set_loop_time(turn_state.now)
  metrics.maybe_refresh(turn_state.now)
  for i = 0, n - 1 do
    local c = completions[i]
    local h = io_handlers[tonumber(c.user_data)]
    if h then h(c.res, c.flags) end
  end
  if turn_state.events > 0 then node_events(ctx) end
  if turn_state.stopping ~= 0 then return false end
  local drained = turn_state.drained
  if drained > 0 then
    dispatch(ptrs[0], lens[0])
    for i = 1, drained - 1 do
      dispatch(ptrs[i], lens[i])
    end
  end
  return true
end

-- Runs until luact.stop is called (from any thread).
function loop.run()
  local stats = loop.stats
  clock.set_loop_time(C.luact_clock_monotonic())
  repeat
    stats.turns = stats.turns + 1
    local node_sends = loop.node_sends
    scheduler.new_turn()
    if scheduler.run(RUN_BUDGET) == RUN_BUDGET and loop.node_sends == node_sends then
      scheduler.run(RUN_BUDGET)
    end
  until not poll_and_dispatch()
end

-- The decoder's next object: the body that follows a message's header (listener calls).
loop.decode_rest = codec.decode_rest

-- Forgets handler state tied to one run of luact.start.
function loop.reset()
  io_handlers = {}
end

return loop
