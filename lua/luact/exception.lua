-- luact.exception: luact's error values. An exception has a registered name, a message built
-- from its arguments and the traceback where it was made; `e:is(name)` tests its kind.
local util = require "luact.util"

local exception = {}
local DEFINE_OPTIONS = util.set { "recoverable", "message" }

local definitions = {}
local Exception = {}
Exception.__index = Exception

function Exception:is(name)
  return self.name == name
end

function Exception:__tostring()
  local s = self.name
  if self.message ~= "" then s = s .. ": " .. self.message end
  if self.traceback and self.traceback ~= "" then s = s .. "\n" .. self.traceback end
  return s
end

local function message_of(n, args)
  local parts = {}
  for i = 1, n do parts[i] = tostring(args[i]) end
  return table.concat(parts, " ")
end

-- exception.define(name, { recoverable = bool, message = "default text" })
function exception.define(name, opts)
  if type(name) ~= "string" or name == "" then
    error("bad 'name' argument to exception.define (non-empty string expected, got " .. type(name) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad 'opts' argument to exception.define (table expected, got " .. type(opts) .. ")", 2)
  end
  util.check_options(opts, DEFINE_OPTIONS, "exception.define", 2)
  opts = opts or {}
  definitions[name] = { recoverable = opts.recoverable and true or false, message = opts.message }
end

function exception.defined(name)
  return definitions[name] ~= nil
end

-- The traceback of the caller `level` frames up (1 = the function calling this), without the
-- leading newline debug.traceback puts before "stack traceback:".
function exception.traceback(level)
  return (debug.traceback("", (level or 1) + 1):gsub("^\n", ""))
end

-- Builds an exception; `level` (internal) chooses where the traceback starts.
local function make(name, level, ...)
  local def = definitions[name]
  if not def then
    error("luact.exception: undefined exception '" .. tostring(name) .. "'", level + 1)
  end
  local n = select("#", ...)
  local args = { n = n, ... }
  local message = n > 0 and message_of(n, args) or (def.message or "")
  return setmetatable({
    name = name,
    args = args,
    message = message,
    recoverable = def.recoverable,
    traceback = exception.traceback(level + 1),
  }, Exception)
end

function exception.new(name, ...)
  local e = make(name, 2, ...)   -- not a tail call: the traceback starts at our caller
  return e
end

function exception.raise(name, ...)
  error(make(name, 2, ...), 0)
end

function exception.is_exception(v)
  return getmetatable(v) == Exception
end

-- A plain table (no metatable) that can cross threads and machines; `from_table` rebuilds it.
function exception.to_table(e)
  return { __exception = e.name, message = e.message, traceback = e.traceback,
           recoverable = e.recoverable, args = e.args }
end

function exception.from_table(t)
  if not definitions[t.__exception] then
    exception.define(t.__exception, { recoverable = t.recoverable })
  end
  return setmetatable({ name = t.__exception, message = t.message or "", traceback = t.traceback,
                        recoverable = t.recoverable, args = t.args or { n = 0 } }, Exception)
end

for _, def in ipairs {
  { "actor_no_body", true, "the actor does not exist (killed, or never existed)" },
  { "actor_timeout", true, "no reply before the deadline" },
  { "actor_error", false, "the actor failed" },
  { "actor_runtime_error", true, "a Lua error in the actor" },
  { "actor_temporary_fail", true, "the actor is restarting" },
  { "actor_unreachable", true, "the actor's machine cannot be reached" },
  { "actor_overload", true, "the actor's inbox is full" },
  { "actor_no_method", true, "the actor has no such method" },
  { "vid_registered", true, "the name is registered already" },
  { "bad_request", false, "a listener client sent a call that is malformed or not allowed" },
  { "tentacle_cancelled", true, "the tentacle was cancelled" },
} do
  exception.define(def[1], { recoverable = def[2], message = def[3] })
end

return exception
