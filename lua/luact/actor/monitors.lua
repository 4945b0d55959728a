-- luact.actor.monitors: killing an actor and watching one die, on this thread or across threads
-- and nodes. `kill` kills an actor of this thread at once, or sends { "k", l, e, reason } to its
-- thread. `monitor` files a monitor record (watch id -> record, on the watcher's thread) and has
-- the target's host (luact.actor.host) fire it: directly on this thread, else through
-- { "m", l, e, rt, watch_id, rm } to the target's thread, which answers { "d", watch_id, target,
-- reason } when the target dies for good (`unmonitor`: { "u", ... }). When the connection to a
-- machine is lost, every monitor of an actor there fires with actor_unreachable (call.machine_lost
-- tells this module through call.on_machine_lost).
local call = require "luact.actor.call"
local ref = require "luact.actor.ref"
local host = require "luact.actor.host"
local clock = require "luact.clock"
local loop = require "luact.loop"
local exception = require "luact.exception"
local logger = require "luact.logger"
local tentacle = require "luact.tentacle"
local thread = require "luact.thread"

local monitors = {}

local send_waiting = call.send_waiting

local function my_tid()
  return thread.id or 1
end

local raise = exception.raise

-- Kills the actor behind a reference (asynchronously when it lives on another thread).
function monitors.kill(target, reason)
  local m, t, e, l = ref.parts(target)
  if m == host.MACHINE and t == my_tid() then
    local rec = host.get(l, e)
    if rec then return host.kill(rec, reason) end
    return false
  end
  if not send_waiting(m, t, { "k", l, e, reason }, clock.get() + call.DEFAULT_TIMEOUT, "kill reason") then
    raise("actor_overload", ("thread %d's inbox stayed full; kill not delivered"):format(t))
  end
  return true
end

loop.on("k", function(msg)
  local rec = host.get(msg[2], msg[3])
  if rec then host.kill(rec, msg[4]) end
end)

local watchers = {}      -- watch id -> monitor record on the watcher's thread
local next_watch = 0

-- Fires a monitor record: m.handler is a function, or a reference to notify or to kill.
local function deliver(m, target, reason)
  if m.cancelled then return end
  m.cancelled = true
  watchers[m.id] = nil
  local h = m.handler
  if type(h) == "function" then
    tentacle(function()
      local ok, err = pcall(h, target, reason)
      if not ok then logger.error("monitor handler failed: " .. tostring(err)) end
    end)
  elseif m.method then
    pcall(h["notify_" .. m.method], h, target, reason)
  elseif reason ~= nil then
    -- a link: an abnormal death kills the watcher too, with the same reason
    pcall(monitors.kill, h, reason)
  end
end

-- Monitor `target` with handler (function(target, reason), or an actor: with `method` it gets
-- notify_<method>(target, reason); without, it is killed with the same reason when the target
-- dies abnormally). Returns a handle for monitors.unmonitor.
function monitors.monitor(target, handler, method)
  next_watch = next_watch + 1
  local m = { id = next_watch, handler = handler, method = method, target = target, fire = deliver }
  watchers[m.id] = m
  local tm, tt, te, tl = ref.parts(target)
  if tm == host.MACHINE and tt == my_tid() then
    host.monitor(tl, te, m)
  else
    local remote = { "m", tl, te, my_tid(), m.id, host.MACHINE }
    if not send_waiting(tm, tt, remote, clock.get() + call.DEFAULT_TIMEOUT, "monitor") then
      raise("actor_overload", ("thread %d's inbox stayed full; monitor not registered"):format(tt))
    end
  end
  return m
end

function monitors.unmonitor(m)
  if m.cancelled then return false end
  m.cancelled = true
  watchers[m.id] = nil
  local target = m.target
  local tm, tt, te, tl = ref.parts(target)
  if tm == host.MACHINE and tt == my_tid() then
    host.unmonitor(tl, te, function(x) return x == m end)
  else
    pcall(send_waiting, tm, tt, { "u", tl, te, my_tid(), m.id, host.MACHINE },
          clock.get() + call.DEFAULT_TIMEOUT, "unmonitor")
  end
  return true
end

local function remote_watch_fire(w, target, reason)
  local msg = { "d", w.watch_id, target, reason }
  local ok = pcall(send_waiting, w.machine, w.tid, msg, clock.get() + call.DEFAULT_TIMEOUT, "death reason")
  if not ok then
    -- a reason that cannot travel: send its description instead
    pcall(send_waiting, w.machine, w.tid, { "d", w.watch_id, target, tostring(reason) }, clock.get() + call.DEFAULT_TIMEOUT)
  end
end

loop.on("m", function(msg)
  local w = { tid = msg[4], watch_id = msg[5], machine = msg[6], fire = function(w, target, reason)
    tentacle(remote_watch_fire, w, target, reason)
  end }
  host.monitor(msg[2], msg[3], w)
end)

loop.on("u", function(msg)
  host.unmonitor(msg[2], msg[3], function(w)
    return w.tid == msg[4] and w.watch_id == msg[5] and w.machine == msg[6]
  end)
end)

loop.on("d", function(msg)
  local m = watchers[msg[2]]
  if m then deliver(m, msg[3], msg[4]) end
end)

-- Every monitor of an actor on machine m fires with why (the connection to m was lost).
call.on_machine_lost(function(m, why)
  for _, watcher in pairs(watchers) do
    if ref.parts(watcher.target) == m then deliver(watcher, watcher.target, why) end
  end
end)

-- Forgets the monitors (between two runs of luact.start in one VM).
function monitors.reset()
  watchers = {}
end

return monitors
