-- luact.actor.host: the actors that live on this thread. It creates them, runs their methods
-- (turning errors into exceptions), kills them, restarts supervised ones within their budget,
-- and fires their monitors once when they die for good. It knows nothing of messages: callers
-- and the inbox handlers live in luact.actor.call.
local C = require("luact.ffi").C
local ref = require "luact.actor.ref"
local exception = require "luact.exception"
local scheduler = require "luact.scheduler"
local clock = require "luact.clock"
local metrics = require "luact.metrics"
local ACTORS = metrics.SLOT.actors
local now_precise = C.luact_clock_monotonic

local host = {}

local actors = {}                 -- local id -> record
local EPOCH = C.luact_epoch()
local ID_BLOCK = 4096
local next_id, last_id = 0, -1

-- This process's machine id (a node's address once started as a node: luact.runtime refreshes it).
host.EPOCH, host.MACHINE = EPOCH, C.luact_machine_id()

function host.refresh_machine()
  host.MACHINE = C.luact_machine_id()
end

-- hooks set by luact.actor.call: abort(call, reason_exception) ends a call another thread waits
-- for; notify_monitor(watcher, target_ref, reason) delivers a death to a remote watcher
local hooks = {}
function host.set_hooks(h) hooks = h end

local function new_id()
  if next_id > last_id then
    next_id = C.luact_id_block(ID_BLOCK)
    last_id = next_id + ID_BLOCK - 1
  end
  local id = next_id
  next_id = id + 1
  return id
end
host.new_id = new_id

local SUPERVISE_DEFAULTS = { maxr = 5, maxt = 5.0, restart_pause = 0.05, restart_pause_max = 5.0 }
host.SUPERVISE_OPTIONS = { "maxr", "maxt", "restart_pause", "restart_pause_max" }  -- (luact.supervise, luact.register)

local function make_body(ctor, args)
  local body = ctor
  if type(ctor) == "function" then
    body = ctor(unpack(args, 1, args.n))
  end
  local tb = type(body)
  if tb ~= "table" and tb ~= "cdata" then
    error(("an actor body must be a table or cdata (the constructor returned %s)"):format(tb), 0)
  end
  return body
end

local thread = require "luact.thread"   -- (not luact.runtime, which requires this module: a
                                        -- lazy `require` here would keep the spawn path interpreted)
local function thread_id()
  return thread.id or 1
end

-- Creates an actor on this thread from a body (table/cdata) or a constructor and its args;
-- `sup` (table or nil) makes it supervised; `id` reuses a reserved local id.
function host.create(ctor, args, sup, id)
  local body = make_body(ctor, args)
  local timed = metrics.timed_methods(body)
  id = id or new_id()
  local r = ref.new(host.MACHINE, thread_id(), EPOCH, id)
  -- (two fields, so the record's hash part has two slots: an idle actor costs its record, its
  -- reference and a slot in `actors`, about 230 bytes; `state` is nil while it is alive
  -- ("restarting", "dead" after), `served` counts calls from the first one, and calls,
  -- monitors, last_error, the name, the timed methods and the supervision fields are added
  -- when used; the id is r[4])
  local rec = { body = body, ref = r }
  if timed then rec.timed, rec.slow = timed, true end
  if sup then
    local opts = {}
    for k, v in pairs(SUPERVISE_DEFAULTS) do opts[k] = v end
    for k, v in pairs(sup) do opts[k] = v end
    rec.sup = opts
    rec.ctor = ctor
    rec.args = args
    rec.restarts = {}
  end
  actors[id] = rec
  local mb = metrics.b
  mb[ACTORS] = mb[ACTORS] + 1
  return r, rec
end

-- The local id of an actor's record (its reference's fourth field; a record keeps no copy).
function host.id(rec)
  return rec.ref[4]
end

-- The record of a live or restarting actor of this thread, or nil.
function host.get(l, e)
  local rec = actors[l]
  if rec and e == EPOCH then return rec end
  return nil
end

-- Up to `limit` records of this thread's actors with ids above `after`, in id order (one pass
-- over the actors, keeping the lowest ids: the cost of a page is the number of actors, never
-- a sort of all of them), the number of actors, and whether more follow the page.
function host.page(after, limit)
  local best, n, above = {}, 0, 0
  for id, rec in pairs(actors) do
    n = n + 1
    if id > after then above = above + 1 end
    if id > after and (#best < limit or id < host.id(best[#best])) then
      local i = #best
      if i == limit then best[i] = nil; i = i - 1 end
      while i >= 1 and host.id(best[i]) > id do best[i + 1] = best[i]; i = i - 1 end
      best[i + 1] = rec
    end
  end
  return best, n, above > limit
end

function host.count()
  local n = 0
  for _ in pairs(actors) do n = n + 1 end
  return n
end

-- Turns any error into an exception with the callee's traceback.
local function to_exception(err)
  if exception.is_exception(err) then
    if err.traceback == nil or err.traceback == "" then
      err.traceback = exception.traceback(2)
    end
    return err
  end
  local e = exception.new("actor_runtime_error", tostring(err))
  e.traceback = exception.traceback(2)
  return e
end

-- What a failed method's caller gets: a plain table (no metatable: `error({ code = 1 })`) as
-- it was raised, on every placement (the codec moves it like any result); anything else as an
-- exception with the callee's traceback (a string: actor_runtime_error with that message).
local function to_error(err)
  if type(err) == "table" and getmetatable(err) == nil then return err end
  return to_exception(err)
end

local function after_call(rec, ok, ...)
  if ok then return true, ... end
  local e = ...
  metrics.error(exception.is_exception(e) and e.name or nil)
  rec.last_error = e
  -- (a plain table is the application's own error value: recoverable, as a Lua error is)
  if not e.recoverable and exception.is_exception(e) and rec.state == nil then
    host.failed(rec, e)
  end
  return false, e
end

-- A virtual actor's activation (the cluster) whose node's lease does not let it serve now: a
-- lease that ran out refuses until it is renewed (actor_temporary_fail: the call did not run,
-- calls by name retry); an ended one (its process was condemned, left or stops) for good.
local function lease_refusal(rec, method)
  if rec.moving and method == "__actor_handoff__" then return nil end
  if not rec.moving and C.luact_lease_valid(rec.lease_gen, C.luact_clock_monotonic()) == 1 then return nil end
  if rec.moving then
    return exception.new("actor_temporary_fail", ("'%s' (%s) is moving to another node (or going idle)"):format(
      tostring(rec.vid), tostring(rec.ref)))
  end
  if C.luact_lease_current() ~= rec.lease_gen then
    rec.superseded = true
    return exception.new("actor_no_body", ("'%s' (%s) was superseded: its node's lease ended (the node was given " ..
      "up for dead, or left): the name lives elsewhere now"):format(tostring(rec.vid), tostring(rec.ref)))
  end
  return exception.new("actor_temporary_fail", ("'%s' (%s) did not run '%s': its node's lease ran out (no Raft " ..
    "leader confirmed it lately); it serves again once renewed"):format(tostring(rec.vid), tostring(rec.ref), tostring(method)))
end

-- The persistent virtual actor whose method runs in each coroutine now (luact.save finds its
-- actor here): set around the method, restored after it (calls on one thread nest).
local serving = setmetatable({}, { __mode = "k" })
local MAIN = {}

local invoke_body

local function restore_serving(co, prev, ...)
  serving[co] = prev
  return ...
end

local function invoke_serving(rec, method, has_self, ...)
  local co = coroutine.running() or MAIN
  local prev = serving[co]
  serving[co] = rec
  return restore_serving(co, prev, invoke_body(rec, method, has_self, ...))
end

-- The record of the persistent virtual actor whose method is running in this coroutine, or nil.
function host.serving()
  local rec = serving[coroutine.running() or MAIN]
  if rec and rec.state == nil then return rec end
  return nil
end

local function timed_end(k, t0, ...)
  metrics.observe_method(k, now_precise() - t0)
  return ...
end

-- host.invoke for an actor with `slow` set: a virtual actor's activation (its lease, its idle
-- clock, the persistent one it serves) or one with timed methods (__actor_metrics__).
local function invoke_slow(rec, method, has_self, ...)
  if rec.lease_gen then
    local refused = lease_refusal(rec, method)
    if refused then return false, refused end
    if rec.idle then rec.used = clock.get() end
  end
  local timed = rec.timed
  local k = timed and timed[method]
  if k then
    if rec.persist then return timed_end(k, now_precise(), invoke_serving(rec, method, has_self, ...)) end
    return timed_end(k, now_precise(), invoke_body(rec, method, has_self, ...))
  end
  if rec.persist then return invoke_serving(rec, method, has_self, ...) end
  return invoke_body(rec, method, has_self, ...)
end

-- Runs body[method] in the calling tentacle: returns true, results... or false, exception.
-- (One field read decides: an actor that is neither virtual nor timed goes straight to its
-- body, so a method that is not marked costs no timing.)
function host.invoke(rec, method, has_self, ...)
  if rec.slow then return invoke_slow(rec, method, has_self, ...) end
  return invoke_body(rec, method, has_self, ...)
end

-- Marks a record as a virtual actor's activation (luact.cluster.activations): its lease is
-- checked before each call.
function host.set_virtual(rec, lease_gen, vid, key)
  rec.lease_gen, rec.vid, rec.vkey, rec.slow = lease_gen, vid, key, true
end

invoke_body = function(rec, method, has_self, ...)
  local body = rec.body
  local fn = body[method]
  if fn == nil then
    return false, exception.new("actor_no_method", ("the actor has no method '%s'"):format(tostring(method)))
  end
  if has_self then
    return after_call(rec, xpcall(fn, to_error, body, ...))
  end
  return after_call(rec, xpcall(fn, to_error, ...))
end
-- (luact.stall finds the method a stalled thread runs by this function's frame: its first two
-- locals are the actor's record and the method)
host.invoke_frame = invoke_body

local function destroy_hook(body)
  return body.__actor_destroy__
end

local function destroy(rec, reason)
  local body = rec.body
  local ok, d = pcall(destroy_hook, body)   -- (a cdata body may raise on an unknown field)
  if ok and d ~= nil then
    local dok, err = pcall(d, body, reason)
    if not dok then
      require("luact.logger").error(("%s: __actor_destroy__ failed: %s"):format(tostring(rec.ref), tostring(err)))
    end
  end
end

-- Ends every call in progress on the actor (except the running one), telling their callers the
-- exception `name` with the message `fmt` formatted with the actor (made only when there is a
-- call to end: making one takes a traceback, which was most of the cost of killing an idle actor).
local function abort_calls(rec, name, fmt)
  local calls = rec.calls
  if not calls then return end
  rec.calls = nil
  local e = exception.new(name, fmt:format(tostring(rec.ref)))
  local current = scheduler.running()
  for t, call in pairs(calls) do
    if t ~= current then
      -- a call runs in a tentacle or in a task runner (which has no end event to fire)
      local tentacle = require "luact.tentacle"
      if t.co then serving[t.co] = nil end      -- (its method never returns to restore it)
      if tentacle.is_tentacle(t) then tentacle.cancel(t) else scheduler.kill(t) end
      if hooks.abort then hooks.abort(call, e) end
    end
  end
  if current and calls[current] then rec.calls = { [current] = calls[current] } end
end

-- Registers a call running in tentacle t (so kill can end it).
function host.track(rec, t, call)
  local calls = rec.calls
  if not calls then calls = {}; rec.calls = calls end
  calls[t] = call
end

function host.untrack(rec, t)
  if rec.calls then rec.calls[t] = nil end
end

local function fire_monitors(rec, reason)
  local monitors = rec.monitors
  rec.monitors = nil
  if not monitors then return end
  for _, m in ipairs(monitors) do
    if not m.cancelled then
      local ok, err = pcall(m.fire, m, rec.ref, reason)
      if not ok then
        require("luact.logger").error(("%s: monitor failed: %s"):format(tostring(rec.ref), tostring(err)))
      end
    end
  end
end

-- Kills the actor for good: no restart. reason: nil for a normal kill, else why.
function host.kill(rec, reason)
  if rec.state == "dead" then return false end
  local was_alive = rec.state == nil
  rec.state = "dead"
  actors[host.id(rec)] = nil
  local mb = metrics.b
  mb[ACTORS] = mb[ACTORS] - 1
  if rec.timer then clock.cancel(rec.timer) end
  if was_alive then destroy(rec, reason) end
  abort_calls(rec, "actor_no_body", "%s was killed")
  if rec.on_death then
    for _, f in ipairs(rec.on_death) do pcall(f, rec) end
  end
  fire_monitors(rec, reason)
  return true
end

-- Runs f(rec) when the actor dies for good (the name registry uses it).
function host.on_death(rec, f)
  rec.on_death = rec.on_death or {}
  table.insert(rec.on_death, f)
end

local function restart(rec)
  rec.timer = nil
  if rec.state ~= "restarting" then return end
  local ok, body = pcall(make_body, rec.ctor, rec.args)
  local timed
  if ok then ok, timed = pcall(metrics.timed_methods, body) end
  if not ok then
    rec.state = nil          -- alive, so failed() applies the budget again
    host.failed(rec, to_exception(ok == false and timed or body))
    return
  end
  rec.body = body
  rec.timed = timed
  rec.slow = (timed or rec.lease_gen) and true or nil
  rec.state = nil          -- alive
end

-- A non-recoverable failure: restart within the budget, or kill.
function host.failed(rec, e)
  if not rec.sup then return host.kill(rec, e) end
  local now = clock.get()
  local opts = rec.sup
  local recent = {}
  for _, t in ipairs(rec.restarts) do
    if now - t < opts.maxt then recent[#recent + 1] = t end
  end
  if #recent >= opts.maxr then
    require("luact.logger").warn(("%s: %d restarts within %gs; giving up: %s"):format(
      tostring(rec.ref), #recent, opts.maxt, tostring(e.message)))
    return host.kill(rec, e)
  end
  recent[#recent + 1] = now
  rec.restarts = recent
  rec.state = "restarting"
  destroy(rec, e)
  abort_calls(rec, "actor_temporary_fail", "%s is restarting")
  local pause = math.min(opts.restart_pause * 2 ^ (#recent - 1), opts.restart_pause_max)
  rec.timer = clock.at(clock.get() + pause, function() restart(rec) end)
end

-- Adds a monitor: m.fire(m, target_ref, reason) runs once when the actor dies for good. When
-- the actor is already gone, fires at once with actor_no_body.
function host.monitor(l, e, m)
  local rec = host.get(l, e)
  if not rec then
    m.fire(m, ref.new(host.MACHINE, thread_id(), e, l), exception.new("actor_no_body", "not alive when monitored"))
    return false
  end
  rec.monitors = rec.monitors or {}
  table.insert(rec.monitors, m)
  return true
end

function host.unmonitor(l, e, matches)
  local rec = host.get(l, e)
  if not rec or not rec.monitors then return 0 end
  local kept, removed = {}, 0
  for _, m in ipairs(rec.monitors) do
    if matches(m) then removed = removed + 1 else kept[#kept + 1] = m end
  end
  rec.monitors = kept
  return removed
end

-- Forgets every actor without running anything (between two runs of luact.start in one VM).
function host.reset()
  actors = {}
end

return host
