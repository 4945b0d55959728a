-- luact.db: the cluster's replicated key/value store (AnyEvent::MP's small distributed
-- database), on every thread of every member. Writes return once a majority of the Raft voters
-- committed them and the leader applied them; reads are linearizable (a ReadIndex barrier on the
-- leader). Each call waits at most 5 s (DEFAULT_TIMEOUT), or `t` seconds for the timed_ form
-- (`luact.db.timed_set(t, key, value)`), while no leader is reachable, then raises
-- `cluster_unavailable`. Keys are non-empty strings; values are plain data (numbers, strings,
-- booleans, tables of those). `reg` puts a guarded key, gone when its guard is released or its
-- node leaves or is declared dead.
local requests = require "luact.cluster.requests"
local view = require "luact.cluster.view"

local db = {}

db.DEFAULT_TIMEOUT = 5.0
local MAX_KEY = 1024

local function check_key(k, who, n)
  if type(k) ~= "string" or k == "" or #k > MAX_KEY then
    error(("bad argument #%d to '%s' (non-empty string of at most %d bytes expected, got %s)"):format(
      n, who, MAX_KEY, type(k) == "string" and ("a string of " .. #k .. " bytes") or type(k)), 4)
  end
end

-- Plain data only: what every node can apply and snapshot the same way.
local function check_value(v, who, n, path, seen)
  local tv = type(v)
  if tv == "number" or tv == "string" or tv == "boolean" then return end
  if tv == "table" and getmetatable(v) == nil then
    seen = seen or {}
    if seen[v] then
      error(("bad argument #%d to '%s' (%s is a table that contains itself)"):format(n, who, path), 4)
    end
    seen[v] = true
    for k, x in pairs(v) do
      local tk = type(k)
      if tk ~= "string" and tk ~= "number" and tk ~= "boolean" then
        error(("bad argument #%d to '%s' (%s has a %s key: plain data expected)"):format(n, who, path, tk), 4)
      end
      check_value(x, who, n, path .. "." .. tostring(k), seen)
    end
    seen[v] = nil
    return
  end
  local what = tv == "table" and "a table with a metatable" or ("a " .. tv)
  error(("bad argument #%d to '%s' (%s is %s: plain data expected)"):format(n, who, path, what), 4)
end

local function check_timeout(t, who)
  if type(t) ~= "number" or t <= 0 or t ~= t then
    error(("bad timeout argument to '%s' (positive number expected, got %s)"):format(who, tostring(t)), 3)
  end
end

local function member_only(who)
  if not view.active then
    error(("%s: this node is not a cluster member (start it with 'address', 'secret' and 'seeds')"):format(who), 4)
  end
end

local ops = {}

function ops.set(who, t, k, v)
  check_key(k, who, 1)
  if v == nil then error(("bad argument #2 to '%s' (a value expected: use luact.db.del to remove a key)"):format(who), 3) end
  check_value(v, who, 2, "value")
  member_only(who)
  return requests.call("w", { op = "set", k = k, v = v }, t, who)
end

function ops.get(who, t, k)
  check_key(k, who, 1)
  member_only(who)
  return requests.call("get", k, t, who)
end

-- A read from this node's own replica (no network, no leader needed): it may miss the latest
-- writes, but never shows a write that was not committed.
function ops.local_get(who, t, k)
  check_key(k, who, 1)
  member_only(who)
  return requests.call("local_get", k, t, who)
end

function ops.del(who, t, k)
  check_key(k, who, 1)
  member_only(who)
  return requests.call("w", { op = "del", k = k }, t, who)
end

function ops.cas(who, t, k, old, new)
  check_key(k, who, 1)
  if old ~= nil then check_value(old, who, 2, "old") end
  if new ~= nil then check_value(new, who, 3, "new") end
  member_only(who)
  return requests.call("w", { op = "cas", k = k, old = old, new = new }, t, who)
end

function ops.keys(who, t, prefix)
  prefix = prefix or ""
  if type(prefix) ~= "string" then
    error(("bad argument #1 to '%s' (string expected, got %s)"):format(who, type(prefix)), 3)
  end
  member_only(who)
  return requests.call("keys", prefix, t, who)
end

local Guard = {}
Guard.__index = Guard

-- guard:release([timeout]) -> true when this guard still held its key (which is now removed).
function Guard:release(timeout)
  if self.released then return false end
  self.released = true
  return requests.call("w", { op = "release", k = self.key, owner = self.owner },
    timeout or db.DEFAULT_TIMEOUT, "guard:release")
end

function ops.reg(who, t, k, v)
  check_key(k, who, 1)
  if v == nil then v = true end
  check_value(v, who, 2, "value")
  member_only(who)
  local cluster = require "luact.cluster"
  local owner, addr = cluster.boot_of_node(), cluster.self()
  local ok = requests.call("w", { op = "reg", k = k, v = v, owner = owner, addr = addr }, t, who)
  if not ok then return nil, "taken" end
  return setmetatable({ key = k, owner = owner }, Guard)
end

for name, op in pairs(ops) do
  local who = "luact.db." .. name
  db[name] = function(...) return op(who, db.DEFAULT_TIMEOUT, ...) end
  local twho = "luact.db.timed_" .. name
  db["timed_" .. name] = function(t, ...)
    check_timeout(t, twho)
    return op(twho, t, ...)
  end
end

return db
