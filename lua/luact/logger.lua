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

-- JSON lines (opts.log_format = "json"): strings escaped per RFC 8259, numbers as numbers.
local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function json_string(v)
  return '"' .. tostring(v):gsub('[%c"\\]', function(c) return ESC[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

local function json_value(v)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return ("%.17g"):format(v)
  elseif t == "boolean" then
    return tostring(v)
  elseif v == nil then
    return "null"
  end
  return json_string(v)
end

-- A plain table as the last of several arguments: the line's fields.
local function split_fields(...)
  local n = select("#", ...)
  if n < 2 then return nil, ... end
  local last = select(n, ...)
  if type(last) ~= "table" or getmetatable(last) ~= nil then return nil, ... end
  local args = { ... }
  return last, unpack(args, 1, n - 1)
end

local function json_line(t, level, fields, ...)
  local secs = math.floor(t)
  local parts = {
    '{"time":' .. json_string(os.date("!%Y-%m-%dT%H:%M:%S", secs) .. (".%03dZ"):format(math.floor((t - secs) * 1000))),
    '"level":' .. json_string(LEVELS[level]),
  }
  parts[#parts + 1] = '"thread":' .. json_value(thread.id)
  local opts = thread.opts
  parts[#parts + 1] = '"node":' .. json_value(type(opts) == "table" and opts.address or nil)
  parts[#parts + 1] = '"message":' .. json_string(format_args(...))
  if fields then
    local f = {}
    for k, v in pairs(fields) do f[#f + 1] = json_string(k) .. ":" .. json_value(v) end
    table.sort(f)
    parts[#parts + 1] = '"fields":{' .. table.concat(f, ",") .. "}"
  end
  return table.concat(parts, ",") .. "}\n"
end

local function emit(level, ...)
  if level < C.luact_log_level() then return end
  local t = C.luact_clock_wall()
  if C.luact_log_format() == 1 then
    local line = json_line(t, level, split_fields(...))
    C.luact_log_write(line, #line)
    return
  end
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

-- logger.format() -> "text" or "json"; logger.format(name) sets it for every thread: "json"
-- writes one object per line { time, level, thread, node, message, fields } (fields: a plain
-- table given as the last of several arguments).
function logger.format(name)
  if name == nil then return C.luact_log_format() == 1 and "json" or "text" end
  if name ~= "text" and name ~= "json" then
    error("bad 'format' argument to logger.format ('text' or 'json' expected, got " .. tostring(name) .. ")", 2)
  end
  C.luact_log_set_format(name == "json" and 1 or 0)
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
