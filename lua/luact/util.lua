-- luact.util: small helpers: formatting, a blocking sleep, the process id, CPU count, random
-- identities (from C), and the check every public options table goes through (unknown keys
-- raise).
local lffi = require "luact.ffi"
local ffi, C = lffi.ffi, lffi.C

local util = {}

util.sprintf = string.format

-- Blocks the whole OS thread (every tentacle of this VM) for `sec` seconds; use clock.sleep to
-- pause one tentacle.
function util.sleep(sec)
  if type(sec) ~= "number" or sec < 0 then
    error("bad 'sec' argument to util.sleep (non-negative number expected, got " .. tostring(sec) .. ")", 2)
  end
  C.luact_util_sleep(sec)
end

function util.getpid()
  return C.luact_util_getpid()
end

function util.n_cpu()
  return C.luact_util_n_cpu()
end

-- Edit distance between two short strings (insertions, deletions, substitutions and swaps of
-- two neighbours each cost 1: "log_levle" is 1 from "log_level").
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    local ai = a:byte(i)
    for j = 1, lb do
      local cost = ai == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and ai == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

-- The known name closest to `name` (ties: the first in sorted order) and its distance.
local function closest(name, known)
  local best, bd
  local names = {}
  for k in pairs(known) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local dk = distance(name:lower(), k)
    if bd == nil or dk < bd then best, bd = k, dk end
  end
  return best, bd
end

-- A name this close to a known one may be a typo of it (1 edit for names of up to 7 bytes, 2
-- for longer ones; never a name of 1 or 2 bytes).
local function is_near(name, d)
  return #name > 2 and d <= (#name <= 7 and 1 or 2)
end

-- Raises on a key of `opts` that is not in `known` (a set: name -> true), naming the key and the
-- closest known option: "bad 'n_cores' option to luact.start (unknown option; did you mean
-- 'n_core'?)". `level`: what the calling function would give error() (2 blames its caller).
-- `app_types` (luact.start): other keys are the application's, except a typo: a key near a
-- known option (see is_near) whose value has the type that option takes (app_types[option]:
-- a type name, or nil for any), so `n_cores = 3` raises while `seed = 42` (seeds: a table) or
-- `counter = 1` (cluster: a string) pass.
function util.check_options(opts, known, who, level, app_types)
  if type(opts) ~= "table" then return end
  for k, v in pairs(opts) do
    if not known[k] then
      if type(k) ~= "string" then
        if app_types then goto continue end
        error(("bad options to %s (option names are strings, got %s %s)"):format(who, type(k), tostring(k)), level + 1)
      end
      local best, d = closest(k, known)
      if not app_types or (best and is_near(k, d) and (app_types[best] == nil or app_types[best] == type(v))) then
        error(("bad '%s' option to %s (unknown option; did you mean '%s'?)"):format(k, who, tostring(best)), level + 1)
      end
    end
    ::continue::
  end
end

-- A set from a list of names (for util.check_options).
function util.set(list, ...)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  for i = 1, select("#", ...) do for _, k in ipairs((select(i, ...))) do s[k] = true end end
  return s
end

-- A new random uuid (v4, 36 characters): an identity unique across machines and restarts (a
-- Raft storage directory, a process's boot id).
local uuid_buf = ffi.new("uint8_t[36]")
function util.uuid()
  if C.luact_uuid_v4(uuid_buf) ~= 0 then error("luact.util.uuid: the core could not make a uuid", 2) end
  return ffi.string(uuid_buf, 36)
end

return util
