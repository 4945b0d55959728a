-- luact.actor.call: what happens when a reference is called. Same thread: a sync call runs the
-- method directly in the caller's tentacle (no message, no switch); notify_ runs it as a task
-- (luact.scheduler: a tentacle of its own only once it waits), async_ in a new tentacle. Other
-- thread: the call is encoded into the target thread's inbox, run there as a task, and the reply
-- comes back through the caller's inbox; the caller waits for it until its deadline. Other machine: the same message goes through the node transport
-- (luact.node) to that machine's thread, and the reply comes back the same way. When the
-- connection to a machine is lost, every call waiting on it fails at once with
-- actor_unreachable, and monitors on its actors fire with that reason (luact.actor.monitors,
-- which also kills actors across threads).
--
-- Messages (luact.actor.codec); `rm, rt` = the machine and thread to answer:
--   call  (corr 0: notify_): a compact frame with l, e, method, has_self, corr, rt, rm,
--         seconds_left and up to 3 arguments, or the table
--         { "c", l, e, method, has_self, corr, rt, rm, seconds_left, n, args... }
--   reply: a compact frame with corr, ok, n and up to 3 results, or { "r", corr, ok, n, results... }
--   { "ge", machine, epoch }: that machine's process of that epoch is gone (a notify_ to it)
local lffi = require "luact.ffi"
local node = require "luact.node"
local loop = require "luact.loop"
local codec = require "luact.actor.codec"
local scheduler = require "luact.scheduler"
local clock = require "luact.clock"
local event = require "luact.event"
local exception = require "luact.exception"
local ref = require "luact.actor.ref"
local host = require "luact.actor.host"
local waiting = require "luact.actor.waiting"
local metrics = require "luact.metrics"
local select, unpack, setmetatable, getmetatable = select, unpack, setmetatable, getmetatable

local call = {}

call.DEFAULT_TIMEOUT = 5.0
local OVERLOAD_RETRY = 0.001         -- first pause when a target inbox is full (doubles, max 20 ms)

local ARGS = 11                      -- first argument in a "c" message
-- metrics slots (luact.metrics) bumped here
local S = metrics.SLOT
local CALLS_SENT, NOTIFIES_SENT, CALLS_RECEIVED, NOTIFIES_RECEIVED = S.calls_sent, S.notifies_sent, S.calls_received, S.notifies_received
local REPLIES_SENT, REPLIES_RECEIVED = S.replies_sent, S.replies_received
local TIME_EVERY = 16                -- one call to another thread or node in this many is timed
local time_next = TIME_EVERY
local now_precise = lffi.C.luact_clock_monotonic
call.stats = { late_replies = 0, dropped_notifies = 0 }

local thread = require "luact.thread"
local function my_tid()
  return thread.id or 1
end

local raise = exception.raise

-- raise, counting the error in this thread's metrics (for errors this thread sees first: not
-- those a method raised, which luact.actor.host counts)
local function raise_counted(name, ...)
  metrics.error(name)
  error(exception.new(name, ...), 0)
end

-- The deadline a new call gets: its own timeout from `now`, never later than the caller's
-- deadline; and `now` (the call's message carries the seconds left).
local function deadline_from(now, timeout)
  local d = now + timeout
  local t = scheduler.running()
  local inherited = t and t.deadline
  if inherited and inherited < d then return inherited, now end
  return d, now
end

-- For an explicit timeout (timed_): from the clock.
local function deadline_for(timeout)
  return deadline_from(clock.get(), timeout)
end

-- For the default timeout: from the loop's time (clock.loop_time: no clock read per call; it
-- can be behind by the CPU time of the turn so far, which makes the default 5 s a little
-- shorter, never longer).
local function default_deadline()
  return deadline_from(clock.loop_time(), call.DEFAULT_TIMEOUT)
end

local function log()
  return require "luact.logger"
end

-- (modules that require this one are looked up once, lazily: a `require` call is a C function
-- the JIT cannot compile, and it would make every remote call run interpreted. They are found
-- in package.loaded, a plain table read, when already loaded, as they are once luact started:
-- a root trace that LuaJIT starts on the first call of one of these helpers must not end in a
-- stitch at `require`, or no loop calling it could become a looping trace; see luact.thread)
local loaded = package.loaded
local tentacle_module

local function tentacle()
  tentacle_module = tentacle_module or loaded["luact.tentacle"] or require "luact.tentacle"
  return tentacle_module
end

---------------------------------------------------------------------------------------------
-- same thread

local function check_alive(rec, m, t, e, l)
  if not rec then raise_counted("actor_no_body", ("%s does not exist"):format(tostring(ref.new(m, t, e, l)))) end
  if rec.state == "restarting" then raise_counted("actor_temporary_fail", ("%s is restarting"):format(tostring(rec.ref))) end
end

local function sync_result(ok, ...)
  if ok then return ... end
  error((...), 0)
end

-- The error a sync call made inline ends with: past the deadline, an actor_timeout raised by a
-- wait of the method (or of a call it made) becomes the caller's "did not reply in time", as
-- the timer of a call to another thread says it.
local function local_failure(rec, method, deadline, err)
  if err == nil or exception.is_exception(err) and err.name == "actor_timeout" and clock.get() >= deadline then
    if err == nil then metrics.error("actor_timeout") end
    raise("actor_timeout", ("%s did not reply to '%s' in time"):format(tostring(rec.ref), method))
  end
  error(err, 0)
end

local function end_local_sync(t, saved, rec, method, deadline, ok, ...)
  t.deadline = saved
  local cut = t.cut_at
  if cut ~= nil and cut >= deadline then
    -- the method caught the end of its wait at this call's deadline and returned after it: its
    -- results are dropped, as a late reply from another thread is (the cut stays for the call
    -- this one was made in when it ends that one's deadline too)
    if saved == nil or cut < saved then t.cut_at = nil end
    return local_failure(rec, method, deadline, nil)
  end
  if ok then return ... end
  return local_failure(rec, method, deadline, (...))
end

-- A sync call to an actor of this thread runs the method in the caller's tentacle. The call's
-- deadline (timed_'s, else the default, never later than the caller's own) becomes the
-- tentacle's while the method runs: every wait of the method, and of the calls it makes, ends
-- with actor_timeout at that deadline (scheduler.suspend -> guarded_wait), so the caller gets
-- actor_timeout at the deadline, as from an actor on another thread.
local function local_sync_uncounted(rec, method, has_self, deadline, ...)
  local t = scheduler.running()
  if t == nil then
    return sync_result(host.invoke(rec, method, has_self, ...))
  end
  local saved = t.deadline
  if deadline == nil then
    deadline = clock.loop_time() + call.DEFAULT_TIMEOUT
    if saved ~= nil and saved < deadline then deadline = saved end
  end
  t.deadline = deadline
  return end_local_sync(t, saved, rec, method, deadline, host.invoke(rec, method, has_self, ...))
end

-- A same-thread sync call is a function call of about 9 machine instructions once compiled, so
-- counting it (2 more per counter) is not free: it is counted (calls sent and received, the
-- actor's calls served) only with luact.start's `local_call_metrics` option (call.count_local).
local function local_sync_counted(rec, method, has_self, deadline, ...)
  local mb = metrics.b
  mb[CALLS_SENT] = mb[CALLS_SENT] + 1
  mb[CALLS_RECEIVED] = mb[CALLS_RECEIVED] + 1
  rec.served = (rec.served or 0) + 1
  return local_sync_uncounted(rec, method, has_self, deadline, ...)
end
local local_sync = local_sync_uncounted

-- Counts same-thread sync calls from now on (on) or not (this thread).
function call.count_local(on)
  local_sync = on and local_sync_counted or local_sync_uncounted
end

-- The wait guard (see scheduler.set_wait_guard): the waiting tentacle is its own timer (as in
-- call.await); at t.deadline the wait ends with CUT, which raises actor_timeout in the method.
local CUT = {}
local function fire_cut(t)
  scheduler.wake(t, t.wait_token, CUT)
end

local function after_guarded_wait(t, first, ...)
  clock.cancel(t)
  if first == CUT then
    t.cut_at = t.at
    raise("actor_timeout", "the deadline of the call being served passed while it waited")
  end
  -- ended by something else due at the same moment (an async call's own timer, which carries
  -- the same deadline, fires first) once the deadline had passed: the call served is late all
  -- the same (see cut_if_late)
  if clock.get() >= t.at then t.cut_at = t.at end
  return first, ...
end

local function guarded_wait(t)
  t.wait_token, t.at, t.fire = t.token, t.deadline, fire_cut
  clock.schedule(t)
  return after_guarded_wait(t, scheduler.suspend_unguarded())
end
scheduler.set_wait_guard(guarded_wait)

local function run_notify(rec, method, has_self, ...)
  local mb = metrics.b
  mb[NOTIFIES_RECEIVED] = mb[NOTIFIES_RECEIVED] + 1
  rec.served = (rec.served or 0) + 1
  local ok, e = host.invoke(rec, method, has_self, ...)
  if not ok then
    log().error(("notify_%s to %s failed: %s"):format(method, tostring(rec.ref), tostring(e)))
  end
end

local function local_notify(rec, method, has_self, ...)
  scheduler.task(run_notify, rec, method, has_self, ...)
end

local function local_async(rec, method, has_self, deadline, ...)
  local mb = metrics.b
  mb[CALLS_SENT] = mb[CALLS_SENT] + 1
  mb[CALLS_RECEIVED] = mb[CALLS_RECEIVED] + 1
  rec.served = (rec.served or 0) + 1
  local ev = event.new_oneshot()
  tentacle()(function(...)
    scheduler.running().deadline = deadline
    ev:emit("reply", pcall(end_local_sync, scheduler.running(), nil, rec, method, deadline,
                           host.invoke(rec, method, has_self, ...)))
  end, ...)
  return ev
end

---------------------------------------------------------------------------------------------
-- other thread

local function send_bytes_once(m, tid, p, len)
  if m == host.MACHINE then return loop.send_bytes(tid, p, len) end
  return node.send_bytes(m, tid, p, len)
end

-- (raised before the message left: `unsent` tells a caller that may try elsewhere, such as a
-- call by name in a cluster, that the target did not run it)
local function unreachable(m, tid, rc)
  local e = exception.new("actor_unreachable", ("machine %s thread %d: %s"):format(node.name(m), tid, lffi.describe(rc)))
  metrics.error("actor_unreachable")
  e.unsent = true
  error(e, 0)
end

-- The way to tid was full: retries (pausing, doubling up to 20 ms) until sent or deadline, with
-- a copy of the bytes (the encoder's buffer is reused meanwhile).
local function send_retrying(m, tid, p, len, deadline)
  local copy = lffi.ffi.string(p, len)
  local pause = OVERLOAD_RETRY
  while true do
    if scheduler.running() == nil or clock.get() + pause > deadline then return false end
    clock.sleep(pause)
    pause = math.min(pause * 2, 0.02)
    local rc = send_bytes_once(m, tid, copy, len)
    if rc == 0 then return true end
    if rc ~= lffi.status.full then unreachable(m, tid, rc) end
  end
end

-- Sends one encoded message (len bytes at p) to thread tid of machine m, waiting (bounded by
-- deadline) while the way is full; false when it stayed full. (No loop on the first try: it
-- keeps the caller's trace whole.)
local function send_bytes_waiting(m, tid, p, len, deadline)
  local rc = send_bytes_once(m, tid, p, len)
  if rc == 0 then return true end
  if rc ~= lffi.status.full then unreachable(m, tid, rc) end
  return send_retrying(m, tid, p, len, deadline)
end

-- send_bytes_waiting for a message table (luact.actor.codec names what cannot travel).
local function send_waiting(m, tid, msg, deadline, what, first_arg, prefix)
  local p, len = codec.encode(msg, what, first_arg, prefix)
  return send_bytes_waiting(m, tid, p, len, deadline)
end
call.send_waiting = send_waiting

local new_corr = waiting.new_corr

-- Encodes a call (corr 0: a notify_): a compact frame when it can, else a table. Returns the
-- pointer and length (valid until the next encode); raises naming a value that cannot travel.
-- `left`: seconds to the deadline (0 for a notify_).
local function encode_call(l, e, method, has_self, corr, left, prefix, ...)
  if left < 0 then left = 0 end
  local n = select("#", ...)
  local a1, a2, a3 = ...
  local p, len = codec.encode_call(l, e, method, has_self, corr, my_tid(), host.MACHINE, left, n, a1, a2, a3)
  if p then return p, len end
  return codec.encode({ "c", l, e, method, has_self, corr, my_tid(), host.MACHINE, left, n, ... }, method, ARGS, prefix)
end

-- What wakes a waiting sync call: a sentinel, the one result itself, or a packed reply
-- ({ "r", corr, ok, n, values... } with the PACKED metatable) for the other shapes.
local TIMEOUT, UNREACHABLE, UNSENT, NO_RESULTS = {}, {}, {}, {}
local PACKED = {}
local fire_async_timeout

-- A sync call's waiter is the waiting tentacle itself, which is also its deadline timer (see
-- call.await); an async call's waiter is { ev = event, machine = m, timer = entry }.
local function fire_timeout(w)
  if waiting.take_if(w.corr, w) then
    scheduler.wake(w, w.wait_token, TIMEOUT)
  end
end

local function reply_values(msg)
  if msg[3] then return unpack(msg, 5, 4 + msg[4]) end
  error(msg[5], 0)
end

local function observed(t0, ...)
  metrics.observe(now_precise() - t0)
  return ...
end

-- call.await, timed into the latency histogram.
local function timed_await(t0, corr, m, deadline, method, t, e, l)
  return observed(t0, call.await(corr, m, deadline, method, t, e, l))
end

local function remote_sync(m, t, l, e, method, has_self, deadline, now, ...)
  local corr = new_corr()
  local timed = time_next == 1
  local t0 = timed and now_precise() or 0
  local p, len = encode_call(l, e, method, has_self, corr, deadline - now, "", ...)
  if not send_bytes_waiting(m, t, p, len, deadline) then
    raise_counted("actor_overload", ("thread %d's inbox stayed full until the deadline"):format(t))
  end
  if timed then
    time_next = TIME_EVERY
    return timed_await(t0, corr, m, deadline, method, t, e, l)
  end
  time_next = time_next - 1
  return call.await(corr, m, deadline, method, t, e, l)
end

-- Names the target of a failed call (only built when a call fails).
local function describe_target(m, t, e, l)
  if type(t) == "string" then return ("actor(%s%s)"):format(e, t) end   -- a listener's name
  return tostring(ref.new(m, t, e, l))
end

-- A call made while serving one, with that one's deadline, that ends in actor_timeout (its own
-- timer, or the callee's answer that it ran out of the same deadline) once the deadline has
-- passed: the call being served is late too, whatever the method does with this error. Noted
-- as `cut_at`, so that its answer is actor_timeout (finish_call, end_local_sync), as the
-- caller's own timer says (or would have said, had the answer not come first).
local function cut_if_late(me, err)
  if exception.is_exception(err) and err.name == "actor_timeout" and clock.get() >= me.at then
    me.cut_at = me.at
  end
end

-- Waits for the reply to `corr` (a call sent to machine m) until deadline; returns its values
-- or raises actor_timeout / actor_unreachable / the callee's error. The target, for errors:
-- thread t, epoch e, local id l on machine m; or t = a name behind the listener at address e.
function call.await(corr, m, deadline, method, t, e, l)
  local me, token = scheduler.prepare_wait("actor call")
  -- A tentacle waits for one thing at a time: it is the waiter and the deadline timer, so a call
  -- allocates nothing here (the timer fields stay on it for its next call).
  me.wait_token, me.machine, me.corr, me.at, me.fire = token, m, corr, deadline, fire_timeout
  local td = me.deadline                -- (a call made while serving one ends by that one's deadline)
  if td ~= nil and td < deadline then me.at = td end
  waiting.add(corr, me)
  clock.schedule(me)
  local r, because = scheduler.suspend_unguarded()
  clock.cancel(me)
  if r == NO_RESULTS then
    return
  elseif getmetatable(r) == PACKED then
    if not r[3] and td ~= nil and me.at >= td then cut_if_late(me, r[5]) end
    return reply_values(r)
  elseif r == TIMEOUT then
    if td ~= nil and me.at >= td then me.cut_at = me.at end   -- (see cut_if_late)
    raise_counted("actor_timeout", ("%s did not reply to '%s' in time"):format(describe_target(m, t, e, l), method))
  elseif r == UNREACHABLE then
    raise_counted("actor_unreachable", ("lost the connection to %s during '%s'%s"):format(describe_target(m, t, e, l), method, because or ""))
  elseif r == UNSENT then
    local e = exception.new("actor_unreachable", ("could not connect to %s for '%s' (the call was not sent)%s"):format(
      describe_target(m, t, e, l), method, because or ""))
    metrics.error("actor_unreachable")
    e.unsent = true
    error(e, 0)
  end
  return r
end

-- Registers an async waiter for `corr`: ev fires ('reply', ok, values...).
function call.await_async(corr, m, deadline, method, ev)
  local w = { ev = ev, machine = m, corr = corr }
  waiting.add(corr, w)
  local timer = clock.at(deadline, fire_async_timeout)
  timer.corr, timer.waiter, timer.method = corr, w, method
  w.timer = timer
end

call.new_corr = new_corr
call.deadline_for = deadline_for

-- Epochs of other machines' processes known to be gone: machine -> { [epoch] = true }. A
-- notify_ that reaches a machine whose process has restarted since the reference was made is
-- answered with { "ge", machine, epoch } (there is nobody to run it); from then on, a notify_ from
-- this thread to a reference of that epoch fails at once with actor_no_body instead of being
-- sent into the void. (Calls learn it from their actor_no_body reply.) At most GONE_MAX epochs
-- are kept per machine.
local gone = {}
local GONE_MAX = 16

loop.on("ge", function(msg)
  local m, e = msg[2], msg[3]
  local g = gone[m]
  if not g or g.n >= GONE_MAX then
    g = { n = 0 }
    gone[m] = g
  end
  if not g[e] then
    g[e], g.n = true, g.n + 1
  end
end)

local function remote_notify(m, t, l, e, method, has_self, ...)
  local g = gone[m]
  if g and g[e] then
    raise("actor_no_body", ("%s is gone: its process on %s has restarted; notify_%s was not sent"):format(
      tostring(ref.new(m, t, e, l)), node.name(m), method))
  end
  local p, len = encode_call(l, e, method, has_self, 0, 0, "notify_", ...)
  local rc = send_bytes_once(m, t, p, len)
  if rc == lffi.status.full then
    raise("actor_overload", ("thread %d's inbox is full; notify_%s was not sent"):format(t, method))
  elseif rc ~= 0 then
    raise("actor_unreachable", ("thread %d: %s"):format(t, lffi.describe(rc)))
  end
end

function fire_async_timeout(entry)
  if waiting.take_if(entry.corr, entry.waiter) then
    local w = entry.waiter
    metrics.error("actor_timeout")
    w.ev:emit("reply", false, exception.new("actor_timeout", ("no reply to '%s' in time"):format(entry.method)))
  end
end

local function remote_async(m, t, l, e, method, has_self, deadline, now, ...)
  local ev = event.new_oneshot()
  local corr = new_corr()
  local p, len = encode_call(l, e, method, has_self, corr, deadline - now, "async_", ...)
  if not send_bytes_waiting(m, t, p, len, deadline) then
    raise_counted("actor_overload", ("thread %d's inbox stayed full until the deadline"):format(t))
  end
  call.await_async(corr, m, deadline, method, ev)
  return ev
end

-- The waiter of the call `corr`, which a reply has just ended; nil when it ended before.
local function take_waiter(corr)
  local w = waiting.take(corr)
  if not w then
    call.stats.late_replies = call.stats.late_replies + 1
    return nil
  end
  local mb = metrics.b
  mb[REPLIES_RECEIVED] = mb[REPLIES_RECEIVED] + 1
  return w
end

-- A reply arrived as a table (luact.listener's replies come this way too).
local function on_reply(msg)
  local w = take_waiter(msg[2])
  if not w then return end
  if w.ev then
    clock.cancel(w.timer)
    if msg[3] then
      w.ev:emit("reply", true, unpack(msg, 5, 4 + msg[4]))
    else
      w.ev:emit("reply", false, msg[5])
    end
  else
    scheduler.wake(w, w.wait_token, setmetatable(msg, PACKED))
  end
end
loop.on("r", on_reply)
call.on_reply = on_reply

-- A reply arrived as a compact frame: n (<= 3) values, or ok = false and the exception.
local function on_reply_frame(corr, ok, n, v1, v2, v3)
  local w = take_waiter(corr)
  if not w then return end
  local ev = w.ev
  if ev then
    clock.cancel(w.timer)
    if not ok then ev:emit("reply", false, v1)
    elseif n == 1 then ev:emit("reply", true, v1)
    elseif n == 0 then ev:emit("reply", true)
    elseif n == 2 then ev:emit("reply", true, v1, v2)
    else ev:emit("reply", true, v1, v2, v3) end
  elseif ok and n == 1 then
    scheduler.wake(w, w.wait_token, v1)
  elseif ok and n == 0 then
    scheduler.wake(w, w.wait_token, NO_RESULTS)
  elseif ok then
    scheduler.wake(w, w.wait_token, setmetatable({ "r", corr, true, n, v1, v2, v3 }, PACKED))
  else
    scheduler.wake(w, w.wait_token, setmetatable({ "r", corr, false, 0, v1 }, PACKED))
  end
end

-- Encodes a reply: a compact frame when it can, else a table; nil and why when the results
-- cannot travel.
local function encode_reply(corr, ok, ...)
  local n = ok and select("#", ...) or 1
  local a1, a2, a3 = ...
  local p, len = codec.encode_reply(corr, ok, n, a1, a2, a3)
  if p then return p, len end
  local msg
  if ok then msg = { "r", corr, true, n, ... } else msg = { "r", corr, false, 0, (...) } end
  local enc_ok, p, len = pcall(codec.encode, msg, "the result", 5)
  if enc_ok then return p, len end
  return nil, p
end

local function send_reply(m, tid, corr, deadline, ok, ...)
  local mb = metrics.b
  mb[REPLIES_SENT] = mb[REPLIES_SENT] + 1
  local p, len = encode_reply(corr, ok, ...)
  if not p then
    -- a result that cannot travel becomes an error the caller sees
    local e = exception.new("actor_runtime_error", "cannot send the result back: " .. tostring(len))
    p, len = encode_reply(corr, false, e)
  end
  local sent_ok, err = pcall(send_bytes_waiting, m, tid, p, len, deadline + 1)
  if not sent_ok then
    if exception.is_exception(err) and err:is("actor_unreachable") then return end  -- caller gone
    log().warn(("reply to thread %d failed: %s"):format(tid, tostring(err)))
  elseif not err then
    log().warn(("reply to thread %d dropped: its inbox stayed full"):format(tid))
  end
end

-- hooks for host: a killed/restarting actor's in-flight calls fail with e. A tracked call is its
-- record (see call_record): what its answer needs.
host.set_hooks({
  abort = function(c, e)
    send_reply(c.rm, c.rt, c.corr, clock.get(), false, e)
  end,
})

-- Records of calls that arrived ({ rec, corr, rt, rm, left }: the actor, and what the answer
-- needs) are reused: one per call in flight. The record carries the actor so that a queued call
-- is run_call and at most 6 values (record, method, has_self, 3 arguments), which the scheduler
-- keeps inline (luact.scheduler: MAX_INLINE).
local free_calls, nfree_calls = {}, 0

local function call_record(rec, corr, rt, rm, left)
  local c
  if nfree_calls > 0 then
    c = free_calls[nfree_calls]
    free_calls[nfree_calls] = nil
    nfree_calls = nfree_calls - 1
    c.rec, c.corr, c.rt, c.rm, c.left = rec, corr, rt, rm, left
  else
    c = { rec = rec, corr = corr, rt = rt, rm = rm, left = left }
  end
  return c
end

local function finish_call(t, c, deadline, ok, ...)
  local cut = t.cut_at
  if cut ~= nil and cut >= deadline then
    -- the method caught the end of its wait at the deadline and returned: its results are
    -- dropped and the caller told actor_timeout, as on the caller's own thread (end_local_sync),
    -- even when this thread's deadline came a little before the caller's
    t.cut_at = nil
    return finish_call(t, c, deadline, false, exception.new("actor_timeout",
      ("%s did not reply to its call in time"):format(tostring(c.rec.ref))))
  end
  host.untrack(c.rec, t)
  local rm, rt, corr = c.rm, c.rt, c.corr
  c.rec = nil                                   -- (a pooled record keeps no actor alive)
  if nfree_calls < 256 then
    nfree_calls = nfree_calls + 1
    free_calls[nfree_calls] = c
  end
  send_reply(rm, rt, corr, deadline, ok, ...)
end

-- A call that arrived ends this long after the seconds its message says are left, counted from
-- the loop's time. That time can be a few microseconds behind the moment the caller counted
-- from (the call arrived during the turn), which would end the callee first: a method whose
-- nested call was cut at the deadline and that caught the error could answer before the
-- caller's own timer fired, and its answer would count as in time. With the grace, the caller
-- (each link of a chain) runs out first. A callee may so work up to this long past its
-- caller's deadline; its answer is then dropped as late.
local CALLEE_GRACE = 0.001

-- Runs a call that arrived from another thread (a task: its own tentacle once it waits).
local function run_call(c, method, has_self, ...)
  local mb = metrics.b
  mb[CALLS_RECEIVED] = mb[CALLS_RECEIVED] + 1
  local rec = c.rec
  rec.served = (rec.served or 0) + 1
  local t = scheduler.running()
  -- (the loop's time: when the call arrived; plus CALLEE_GRACE, so that a chain of calls ends
  -- from the caller inwards: see CALLEE_GRACE)
  local deadline = clock.loop_time() + c.left + CALLEE_GRACE
  t.deadline = deadline
  host.track(rec, t, c)
  return finish_call(t, c, deadline, host.invoke(rec, method, has_self, ...))
end

-- What runs a call that arrived, and its first value: run_call and the call's record, or, for a
-- notify_ (corr 0: nobody waits for it, so no deadline and nothing to abort), run_notify and
-- the actor.
local function runner_for(rec, corr, rt, rm, left)
  if corr == 0 then return run_notify, rec end
  return run_call, call_record(rec, corr, rt, rm, left)
end

-- The actor a call from another thread is for, or nil when there is none to run it (the caller
-- is told why; a notify_ is counted and logged).
local function arrived_for(l, e, method, corr, rt, rm, left)
  local rec = host.get(l, e)
  local err
  if not rec then
    err = exception.new("actor_no_body", ("%s does not exist"):format(tostring(ref.new(host.MACHINE, my_tid(), e, l))))
  elseif rec.state == "restarting" then
    err = exception.new("actor_temporary_fail", ("%s is restarting"):format(tostring(rec.ref)))
  else
    return rec
  end
  metrics.error(err.name)
  if corr ~= 0 then
    tentacle()(send_reply, rm, rt, corr, clock.get() + left, false, err)
  else
    call.stats.dropped_notifies = call.stats.dropped_notifies + 1
    log().warn(("notify_%s dropped: %s"):format(method, err.message))
    if e ~= host.EPOCH and rm ~= host.MACHINE then
      -- a reference from before this process started: tell the sender, so that its next
      -- notify_ to that epoch fails instead of vanishing like this one
      local p, len = codec.encode({ "ge", host.MACHINE, e })
      send_bytes_once(rm, rt, p, len)
    end
  end
  return nil
end

-- A call arrived from another thread as a table.
loop.on("c", function(msg)
  local l, e, method, has_self, corr, rt, rm, left = msg[2], msg[3], msg[4], msg[5], msg[6], msg[7], msg[8], msg[9]
  local rec = arrived_for(l, e, method, corr, rt, rm, left)
  if not rec then return end
  local fn, x = runner_for(rec, corr, rt, rm, left)
  scheduler.task(fn, x, method, has_self, unpack(msg, ARGS, ARGS - 1 + msg[10]))
end)

-- A call arrived as a compact frame (n <= 3 arguments). Queued with exactly n arguments.
local function on_call_frame(l, e, method, has_self, corr, rt, rm, left, n, a1, a2, a3)
  local rec = arrived_for(l, e, method, corr, rt, rm, left)
  if not rec then return end
  local fn, x = runner_for(rec, corr, rt, rm, left)
  if n == 1 then scheduler.task(fn, x, method, has_self, a1)
  elseif n == 0 then scheduler.task(fn, x, method, has_self)
  elseif n == 2 then scheduler.task(fn, x, method, has_self, a1, a2)
  else scheduler.task(fn, x, method, has_self, a1, a2, a3) end
end
loop.on_frames(on_call_frame, on_reply_frame)

---------------------------------------------------------------------------------------------
-- the entry point of every reference call

-- Raises (blaming the caller of the timed_ method) unless `timeout` is a number >= 0; every kind
-- of reference checks its timed_ calls here.
local function check_timeout(method, timeout)
  if type(timeout) ~= "number" or not (timeout >= 0) then
    error(("bad timeout argument to 'timed_%s' (non-negative number expected, got %s)"):format(method,
      type(timeout) == "number" and tostring(timeout) or type(timeout)), 4)
  end
end
call.check_timeout = check_timeout

local function dispatch(m, t, e, l, kind, method, has_self, ...)
  local here = m == host.MACHINE and t == my_tid()
  local mb = metrics.b
  if kind == "notify" then
    mb[NOTIFIES_SENT] = mb[NOTIFIES_SENT] + 1
  elseif not here then
    mb[CALLS_SENT] = mb[CALLS_SENT] + 1   -- (same thread: local_sync or local_async counts)
  end
  if kind == "timed" then
    local timeout = ...
    check_timeout(method, timeout)
    local deadline, now = deadline_for(timeout)
    if here then
      local rec = host.get(l, e)
      check_alive(rec, m, t, e, l)
      return local_sync(rec, method, has_self, deadline, select(2, ...))
    end
    return remote_sync(m, t, l, e, method, has_self, deadline, now, select(2, ...))
  end
  if here then
    local rec = host.get(l, e)
    check_alive(rec, m, t, e, l)
    if kind == "sync" then
      return local_sync(rec, method, has_self, nil, ...)
    elseif kind == "notify" then
      return local_notify(rec, method, has_self, ...)
    else
      return local_async(rec, method, has_self, (default_deadline()), ...)
    end
  end
  if kind == "notify" then
    return remote_notify(m, t, l, e, method, has_self, ...)
  end
  local deadline, now = default_deadline()
  if kind == "sync" then
    return remote_sync(m, t, l, e, method, has_self, deadline, now, ...)
  end
  return remote_async(m, t, l, e, method, has_self, deadline, now, ...)
end
call.dispatch = dispatch

-- What else must learn that a machine was lost (luact.actor.monitors, which requires this
-- module, sets it): on_machine_lost(m, why), why the actor_unreachable exception.
local on_machine_lost = function() end
function call.on_machine_lost(fn) on_machine_lost = fn end

-- The connection to machine m was lost: calls waiting on it fail now, monitors of its actors
-- fire with actor_unreachable (through on_machine_lost). `unsent`: the connection never authenticated, so none of those
-- calls left (their exception says so: a caller may try elsewhere). reason: why it was lost, as
-- the core said it ("peer closed: authentication failed (wrong cluster secret?)", a TLS error,
-- ...), which the failed calls' messages carry.
function call.machine_lost(m, unsent, reason)
  local because = (reason and reason ~= "") and (": " .. reason) or ""
  local why = exception.new("actor_unreachable", ("lost the connection to machine %s%s"):format(node.name(m), because))
  if unsent then why.unsent = true end
  for _, w in ipairs(waiting.remove_if(function(w) return w.machine == m end)) do
    if w.ev then
      clock.cancel(w.timer)
      w.ev:emit("reply", false, why)
    else
      scheduler.wake(w, w.wait_token, unsent and UNSENT or UNREACHABLE, because)
    end
  end
  on_machine_lost(m, why)
end

-- Forgets pending calls (between two runs of luact.start in one VM).
function call.reset()
  waiting.reset()
  gone = {}
end

node.on_lost(call.machine_lost)

return call
