-- luact.logger: levelled log lines (debug < info < notice < warn < error < fatal). Each line
-- carries the time, the level and the thread id; colours only on a terminal. Lines go through
-- one process-wide sink in the core, so lines from many threads never interleave, and the level
-- filter and the redirection apply to every thread at once.
local C = require("luact.ffi").C
local thread = require "luact.thread"

local logger = {}

local LEVELS = { "debug", "info", "notice", "warn", "error", "fatal" }
local LEVEL_OF = {}
for i, name in ipairs(LEVELS) do LEVEL_OF[name] = i end
local COLOURS = { "\27[90m", "\27[32m", "\27[36m", "\27[33m", "\27[31m", "\27[1;35m" }
local RESET = "\27[0m"

local function thread_label()
  local tid = thread.id
  return tid and ("t" .. tid) or "t-"
end

local function format_args(...)
  local n = select("#", ...)
  if n == 1 then return tostring((...)) end
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  return table.concat(parts, " ")
end

local function emit(level, ...)
  if level < C.luact_log_level() then return end
  local t = C.luact_clock_wall()
  local secs = math.floor(t)
  local stamp = os.date("!%Y-%m-%d %H:%M:%S", secs) .. (".%03d"):format(math.floor((t - secs) * 1000))
  local name = LEVELS[level]:upper()
  local head
  if C.luact_log_is_tty() ~= 0 then
    head = ("%s %s%-6s%s [%s] "):format(stamp, COLOURS[level], name, RESET, thread_label())
  else
    head = ("%s %-6s [%s] "):format(stamp, name, thread_label())
  end
  local line = head .. format_args(...):gsub("\n", "\n    ") .. "\n"
  C.luact_log_write(line, #line)
end

-- logger.debug(...), logger.info(...), ...: arguments are joined like print's.
for i, name in ipairs(LEVELS) do
  logger[name] = function(...) return emit(i, ...) end
end

-- logger.level() -> current level name; logger.level(name) sets the minimum level.
function logger.level(name)
  if name == nil then return LEVELS[C.luact_log_level()] end
  local l = LEVEL_OF[name]
  if not l then
    error("bad 'level' argument to logger.level (one of debug, info, notice, warn, error, fatal expected, got " .. tostring(name) .. ")", 2)
  end
  C.luact_log_set_level(l)
end

-- logger.redirect(path) appends lines to a file; logger.redirect() goes back to stderr.
function logger.redirect(path)
  if path ~= nil and type(path) ~= "string" then
    error("bad 'path' argument to logger.redirect (string or nil expected, got " .. type(path) .. ")", 2)
  end
  local rc = C.luact_log_redirect(path, path and #path or 0)
  if rc ~= 0 then
    return nil, require("luact.ffi").last_error()
  end
  return true
end

return logger
