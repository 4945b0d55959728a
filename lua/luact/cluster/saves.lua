-- luact.cluster.saves: the durable state of persistent virtual actors (`luact.register(vid,
-- { persist = true }, ctor, ...)`). `luact.save(state)`, called from a method of such an
-- activation on any thread, checks the state (plain data and actor references, at most
-- MAX_STATE bytes encoded) and this node's lease, then hands it to thread 1, which batches the
-- saves that arrive in one loop turn into one registry command ("vsaves": one Raft entry) and
-- answers each once the registry applied it. The registry applies a save only from the
-- activation it places the name on now (luact.cluster.registry_vactors), so an activation that
-- was given up for dead or moved cannot write over its successor's state.
local codec = require "luact.actor.codec"
local ref = require "luact.actor.ref"
local host = require "luact.actor.host"
local exception = require "luact.exception"
local clock = require "luact.clock"
local event = require "luact.event"
local tentacle = require "luact.tentacle"
local requests = require "luact.cluster.requests"
local lease = require "luact.cluster.lease"
local vactors = require "luact.cluster.registry_vactors"

local saves = {}

saves.MAX_STATE = vactors.MAX_STATE
saves.DEFAULT_TIMEOUT = 5.0

if not exception.defined("save_refused") then
  exception.define("save_refused", { recoverable = true,
    message = "the state was not saved" })
end

local function refused(rec, why)
  exception.raise("save_refused", ("'%s' (%s) was not saved: %s"):format(tostring(rec.vid), tostring(rec.ref), why))
end

-- Plain data (numbers, strings, booleans, tables of those without metatables) and actor
-- references; raises naming the first value that is not.
local function check_plain(v, who, path, seen)
  local tv = type(v)
  if tv == "number" or tv == "string" or tv == "boolean" or tv == "nil" then return end
  if ref.is_ref(v) then return end
  if tv == "table" and getmetatable(v) == nil then
    if seen[v] then
      error(("bad 'state' argument to %s (%s is a table that contains itself)"):format(who, path), 0)
    end
    seen[v] = true
    for k, x in pairs(v) do
      local tk = type(k)
      if tk ~= "string" and tk ~= "number" and tk ~= "boolean" then
        error(("bad 'state' argument to %s (%s has a %s key: plain data expected)"):format(who, path, tk), 0)
      end
      check_plain(x, who, path .. "." .. tostring(k), seen)
    end
    seen[v] = nil
    return
  end
  local what = tv == "table" and "a table with a metatable" or ("a " .. tv)
  error(("bad 'state' argument to %s (%s is %s: plain data expected)"):format(who, path, what), 0)
end
saves.check_plain = function(v, who, path) return check_plain(v, who, path, {}) end

local WHY = {
  moved = "the registry no longer places the name on this activation (its node was given up for dead, or " ..
          "the name moved): the name lives elsewhere now, with the state saved before",
  gone = "the name was unregistered",
  too_large = "the encoded state is too large",
  bad = "the registry refused it as malformed",
}

-- luact.save / luact.timed_save: saves `state` for the persistent virtual actor whose method
-- is running; returns true once a majority of the voters committed it.
function saves.save(state, timeout, who)
  local rec = host.serving()
  if not rec then
    error(("%s: not called from a method of a persistent virtual actor (register it with { persist = true }; " ..
           "call it in the method itself, not in a tentacle the method started)"):format(who), 0)
  end
  check_plain(state, who, "state", {})
  local data = codec.to_string(state, "the state given to " .. who)
  if #data > saves.MAX_STATE then
    error(("bad 'state' argument to %s (%d bytes encoded; at most %d)"):format(who, #data, saves.MAX_STATE), 0)
  end
  if not lease.valid(rec.lease_gen) then
    if lease.current() ~= rec.lease_gen then
      refused(rec, "its node's lease ended (the node was given up for dead, or left): the name lives elsewhere now")
    end
    refused(rec, "its node's lease ran out (no Raft leader confirmed it lately: cut off, or no majority); " ..
                 "it may save again once the lease is renewed")
  end
  rec.save_seq = (rec.save_seq or 0) + 1
  local _, t, e, l = ref.parts(rec.ref)
  local item = { vid = rec.vid, key = rec.vkey, boot = rec.vboot, t = t, e = e, l = l, seq = rec.save_seq, data = data }
  local ok, r = pcall(requests.call, "save", item, timeout, who)
  if not ok then
    if exception.is_exception(r) and r:is("cluster_unavailable") and not lease.valid(rec.lease_gen) then
      r.message = r.message .. " (this node's lease ran out while the save waited: it may or may not have been saved)"
    end
    error(r, 0)
  end
  if r ~= true then refused(rec, WHY[r] or tostring(r)) end
  -- a supervised activation restarted after an error starts from what it saved last
  if rec.args and rec.args.n > 0 then rec.args[rec.args.n] = codec.from_string(data) end
  return true
end

---------------------------------------------------------------------------------------------
-- thread 1: one registry command per loop turn for the saves that arrived in it

local queue = {}                -- list of { item =, ev =, deadline = }
local scheduled = false

local function flush()
  scheduled = false
  local batch = queue
  queue = {}
  if #batch == 0 then return end
  local items, deadline = {}, 0
  for i, w in ipairs(batch) do
    items[i] = w.item
    if w.deadline > deadline then deadline = w.deadline end
  end
  tentacle(function()
    -- (the saving activation reads nothing back: the leader's answer is the commit; the next
    -- activation, wherever it starts, applies the save before the move that placed it)
    local ok, r = pcall(requests.run, "w", { op = "vsaves", items = items }, deadline, "luact.save", true)
    for i, w in ipairs(batch) do
      if ok then w.ev:emit("done", true, type(r) == "table" and r[i] or "bad") else w.ev:emit("done", false, r) end
    end
  end)
end

-- A save from this node (runs in a tentacle of thread 1): its registry result.
requests.local_ops.save = function(item, deadline)
  local ev = event.new_oneshot()
  queue[#queue + 1] = { item = item, ev = ev, deadline = deadline }
  if not scheduled then
    scheduled = true
    clock.at(clock.loop_time(), flush)
  end
  local left = deadline - clock.get()
  local alarm = clock.alarm(left > 0 and left or 0)
  local tp, _, ok, r = event.wait(nil, ev, alarm)
  alarm.cancel()
  if tp ~= "done" then
    exception.raise("cluster_unavailable", "luact.save: no registry leader committed the save before the deadline " ..
      "(it may or may not have been saved)")
  end
  if not ok then error(r, 0) end
  return r
end

return saves
