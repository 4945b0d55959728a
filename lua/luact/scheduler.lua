-- luact.scheduler: the tentacle run queue of one VM. Tentacles are pooled coroutines; a tentacle
-- that waits takes a token (`prepare_wait`), hands it to whatever will wake it, and suspends;
-- `wake(t, token, ...)` with a stale token (the wait ended another way, or the tentacle was
-- cancelled) does nothing. No clock, no I/O: the loop (luact.loop) drives `run`.
local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume, coroutine.yield, coroutine.status
local select, unpack = select, unpack

local scheduler = {}

local WAIT, DONE = {}, {}     -- what a tentacle's coroutine yields to the scheduler
local NO_VALUES = { n = 0 }   -- resume values of a wake with none (shared, never written)
local POOL_MAX = 256

local current = nil           -- the running tentacle
local pool = {}               -- idle coroutines
local queue = {}              -- ready tentacles: queue[i] = t (resume values: t.rv, or t.rv1 alone)
local head, tail = 1, 0
local on_finish               -- set by luact.tentacle: called with (t, ok, ...) when a body ends

local function traceback(err)
  if type(err) == "table" then
    if err.traceback == nil then err.traceback = require("luact.exception").traceback(2) end
    return err
  end
  return debug.traceback(tostring(err), 2)
end

local runner_failed   -- set below: what a task runner does when a task raised

local function finish(t, ok, ...)
  if not ok and t.runs_tasks then runner_failed(t, ...) end
  on_finish(t, ok, ...)
end

-- Runs one body after another in the same coroutine; a proper tail call keeps the stack flat.
local function body(fn, ...)
  finish(current, xpcall(fn, traceback, ...))
  return body(co_yield(DONE))
end

function scheduler.set_finish_handler(fn)
  on_finish = fn
end

local function push(t)
  tail = tail + 1
  queue[tail] = t
end

-- Makes `t` (a table the caller owns) a tentacle running fn(...), queued to run.
function scheduler.spawn(t, fn, ...)
  t.token = 0
  t.status = "ready"
  t.fn = fn
  t.rv = { n = select("#", ...), ... }
  t.co = nil
  push(t)
  return t
end

function scheduler.running()
  return current
end

---------------------------------------------------------------------------------------------
-- Tasks: work that needs a tentacle of its own only if it waits (a message handler). A runner
-- tentacle runs queued tasks one after another; when a task waits, the runner becomes that
-- task's tentacle and a new runner takes the rest of the queue. So a handler that never waits
-- costs a function call, not a coroutine, and one that waits still blocks no other.
-- The queue is one flat array, STRIDE slots per task: fn, argument count, up to MAX_INLINE
-- arguments (more spill into a table), so queuing a task allocates nothing. A runner whose queue
-- runs dry stays, waiting (`runner_idle`) for the next task: a message that arrives alone costs a
-- resume, not a new tentacle.
local STRIDE, MAX_INLINE = 8, 6
-- The queue is a ring: positions only grow (task_head: the next task to run, task_tail: the next
-- to fill; both count slots from 0) and position p lives in slot band(p, mask) + 1; a full ring
-- doubles. So a queue that never runs dry (a task that queues the next, as a ring of actors
-- passing a token does) stays in the same slots instead of creeping up the table.
local band = require("bit").band
local TASKS_CAP = 64 * STRIDE           -- slots at first (a power of two; small stays in the L1 cache)
local tasks = {}
local cap, mask = TASKS_CAP, TASKS_CAP - 1
local task_head, task_tail = 0, 0
local runner = nil            -- the tentacle currently draining the task queue
local runner_idle = false     -- it waits for a task (its queue ran dry)

local spawn_runner

local function hand_off(t)
  t.is_runner = false
  if runner == t then
    runner = nil
    runner_idle = false
    if task_head < task_tail then spawn_runner() end
  end
end

local function report_task_failure(err)
  local log = package.loaded["luact.logger"]
  local msg = "task failed: " .. tostring(err)
  if log then log.error(msg) else io.stderr:write(msg, "\n") end
end

-- Doubles the ring, keeping the queued tasks in order from slot 1.
local function grow_tasks()
  local old, n = tasks, task_tail - task_head
  local new = {}
  for k = 0, n - 1 do new[1 + k] = old[band(task_head + k, mask) + 1] end
  tasks, cap = new, cap * 2
  mask = cap - 1
  task_head, task_tail = 0, n
end

-- Tasks run per loop turn, by all runners together: when a turn's budget is spent, the runner
-- steps aside until the next turn (see scheduler.new_turn), so timers, I/O and other threads'
-- messages get their turn after at most this many tasks.
local TURN_TASKS = 1024
local tasks_left = TURN_TASKS  -- of this turn's budget
local deferred = nil           -- the runner that spent the turn's budget, resumed on the next turn

local DRAINED, HANDED_OFF, MORE = 1, 2, 3

-- Runs queued tasks until the queue is empty (DRAINED), a task waited and t handed the queue on
-- (HANDED_OFF), or the turn's task budget is spent (MORE). (A loop of its own, with no wait
-- inside, so the JIT compiles it tight.)
local function drain_tasks(t)
  while task_head < task_tail do
    if tasks_left <= 0 then return MORE end
    tasks_left = tasks_left - 1           -- (spent before the call: a task may wait or raise)
    local q = tasks                     -- (a task may have grown the ring)
    local i = band(task_head, mask) + 1
    local fn, n = q[i], q[i + 1]
    local a1, a2, a3, a4, a5, a6 = q[i + 2], q[i + 3], q[i + 4], q[i + 5], q[i + 6], q[i + 7]
    q[i], q[i + 1], q[i + 2], q[i + 3], q[i + 4], q[i + 5], q[i + 6], q[i + 7] = nil, nil, nil, nil, nil, nil, nil, nil
    task_head = task_head + STRIDE
    t.deadline = nil
    -- Called unprotected (a pcall per task cost a third of notify_'s throughput): a task that
    -- raises ends this runner, and runner_failed hands the queue to a new one. Called with
    -- exactly the values queued (select("#", ...) in fn must not see padding).
    if n == 2 then fn(a1, a2)
    elseif n == 3 then fn(a1, a2, a3)
    elseif n == 4 then fn(a1, a2, a3, a4)
    elseif n == 1 then fn(a1)
    elseif n == 0 then fn()
    elseif n == 5 then fn(a1, a2, a3, a4, a5)
    elseif n == 6 then fn(a1, a2, a3, a4, a5, a6)
    else fn(unpack(a1, 1, n)) end
    if not t.is_runner then return HANDED_OFF end  -- it waited: another runner has the queue
  end
  task_head, task_tail = 0, 0
  return DRAINED
end

local function run_tasks(t)
  while true do
    local state = drain_tasks(t)
    if state == HANDED_OFF then return end
    if state == DRAINED then
      -- idle until scheduler.task wakes it (resume values: none)
      runner_idle = true
      t.token = t.token + 1
      t.status = "waiting"
      co_yield(WAIT)
      if not t.is_runner then return end
    else
      -- MORE: let the loop have its turn (timers, I/O, other threads' messages, stop) before
      -- going on, so tasks that keep queuing tasks cannot starve the thread: new_turn queues it
      -- again (not this turn's queue: scheduler.run would resume it again at once)
      t.status = "ready"
      t.rv = NO_VALUES
      deferred = t
      co_yield(WAIT)
    end
  end
end

-- A task raised in t (still the runner, or a task's own tentacle after it waited).
runner_failed = function(t, err)
  report_task_failure(err)
  if t.is_runner then hand_off(t) end
end

local function no_end_event() end

spawn_runner = function()
  -- a runner is a plain tentacle record: nobody waits for its end, so it emits nothing (and a
  -- failure is reported by runner_failed, not as an unobserved tentacle)
  local t = { is_runner = true, runs_tasks = true, name = "runner", oneshot = true, emit = no_end_event,
              watched = true }
  runner = t
  scheduler.spawn(t, run_tasks, t)
end

-- Queues fn(...) to run soon in a runner tentacle (see above); fn gets exactly these values.
function scheduler.task(fn, ...)
  if task_tail - task_head >= cap then grow_tasks() end
  local q, i = tasks, band(task_tail, mask) + 1
  local n = select("#", ...)
  q[i], q[i + 1] = fn, n
  if n <= MAX_INLINE then
    local a1, a2, a3, a4, a5, a6 = ...
    q[i + 2], q[i + 3], q[i + 4], q[i + 5], q[i + 6], q[i + 7] = a1, a2, a3, a4, a5, a6
  else
    -- (not `{ ... }`: compiled from a call site with 4 or more fixed arguments, this LuaJIT
    -- builds that table with room for thousands of slots, 13-26 KB per task; with a hash key
    -- first it sizes it right)
    q[i + 2] = { n = n, ... }
  end
  task_tail = task_tail + STRIDE
  -- (upvalues, not fields of the runner: a field lookup here costs every task a hash lookup)
  if runner == nil then
    spawn_runner()
  elseif runner_idle then
    runner_idle = false
    scheduler.wake(runner, runner.token)
  end
end

-- Starts a wait of the running tentacle; returns it and the token its waker must present.
function scheduler.prepare_wait(who)
  local t = current
  if t == nil then
    error((who or "luact") .. ": must be called inside a tentacle (e.g. in luact.start's main)", 3)
  end
  if t.is_runner then hand_off(t) end
  local token = t.token + 1
  t.token = token
  t.status = "waiting"
  return t, token
end

-- A tentacle that runs a call with a deadline (t.deadline: an actor call made to this thread,
-- or a sync call made inline in it) waits no longer than that deadline: `suspend` hands such a
-- wait to the guard luact.actor.call sets here, which ends it with actor_timeout at the deadline.
local wait_guard = nil
function scheduler.set_wait_guard(fn)
  wait_guard = fn
end

-- Suspends the running tentacle until `wake`; returns the values given to wake (or raises
-- actor_timeout when the running call's deadline passes first, see set_wait_guard).
function scheduler.suspend()
  if current.deadline ~= nil and wait_guard ~= nil then return wait_guard(current) end
  return co_yield(WAIT)
end

-- suspend for a wait that is bounded by the call's deadline already (a call's own reply).
function scheduler.suspend_unguarded()
  return co_yield(WAIT)
end

-- Queues `t` to resume with the given values if it still waits with `token`.
function scheduler.wake(t, token, ...)
  if t.token ~= token or t.status ~= "waiting" then return false end
  t.token = token + 1
  t.status = "ready"
  local n = select("#", ...)
  if n == 1 then
    t.rv, t.rv1 = nil, ...                -- the common cases (a reply, a signal, a timer): no table
  elseif n == 0 then
    t.rv = NO_VALUES
  else
    t.rv = { n = select("#", ...), ... }
  end
  push(t)
  return true
end

-- Ends `t` without resuming it: its coroutine is dropped (the GC takes it).
function scheduler.kill(t)
  if t.is_runner then hand_off(t) end
  t.token = t.token + 1
  t.status = "dead"
  t.co = nil
  if t == current then co_yield(WAIT) end   -- never resumed: the token is stale
end

function scheduler.has_ready()
  return head <= tail or deferred ~= nil
end

-- Starts a loop turn: a fresh task budget, and the runner that spent the last one queued again.
function scheduler.new_turn()
  tasks_left = TURN_TASKS
  if deferred ~= nil then
    push(deferred)
    deferred = nil
  end
end

local function resume(t)
  local rv = t.rv
  t.rv = nil
  local rv1 = t.rv1
  t.rv1 = nil
  t.status = "running"
  current = t
  local co = t.co
  local ok, signal
  if co == nil then
    co = pool[#pool]
    if co then pool[#pool] = nil else co = co_create(body) end
    t.co = co
    local fn = t.fn
    t.fn = nil
    ok, signal = co_resume(co, fn, unpack(rv, 1, rv.n))
  else
    if rv then
      ok, signal = co_resume(co, unpack(rv, 1, rv.n))
    else
      ok, signal = co_resume(co, rv1)
    end
  end
  current = nil
  if signal == DONE then
    t.co = nil
    if #pool < POOL_MAX then pool[#pool + 1] = co end
  elseif not ok then
    -- Only the scheduler's own code runs unprotected here; report it loudly.
    t.status = "dead"
    t.co = nil
    io.stderr:write("luact: tentacle crashed outside its body: ", tostring(signal), "\n")
  elseif t.status == "running" then
    -- The body yielded by itself (coroutine.yield instead of a luact wait): nothing will wake it.
    t.status = "waiting"
  end
end

-- Resumes ready tentacles until none is left or `budget` resumes were made; returns the count.
function scheduler.run(budget)
  local n = 0
  while head <= tail and n < budget do
    local t = queue[head]
    queue[head] = nil
    head = head + 1
    if t.status == "ready" then
      resume(t)
      n = n + 1
    end
  end
  if head > tail then head, tail = 1, 0 end
  return n
end

-- Forgets every tentacle (between two runs of luact.start in one VM).
function scheduler.reset()
  for i = head, tail do
    local t = queue[i]
    if t then t.status = "dead"; t.co = nil end
    queue[i] = nil
  end
  head, tail = 1, 0
  current = nil
  tasks, task_head, task_tail, runner, runner_idle = {}, 0, 0, nil, false
  if deferred then deferred.status = "dead"; deferred.co = nil end
  deferred, tasks_left = nil, TURN_TASKS
  cap, mask = TASKS_CAP, TASKS_CAP - 1
end

return scheduler
