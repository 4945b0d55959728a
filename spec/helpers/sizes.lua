-- spec helper: the sizes a reader meets in luact's two layers: lines per file, and lines per
-- function (from the first line of its definition to its `end` or closing brace). Lua functions
-- are read from the compiled prototypes (jit.util: every nested function, exactly); Rust ones
-- from `fn` lines and the brace that closes them at the same indentation (rustfmt's layout).
local layers = require "helpers.layers"
local jutil = require "jit.util"

local sizes = {}

local function count_lines(s)
  local _, n = s:gsub("\n", "")
  if #s > 0 and s:sub(-1) ~= "\n" then n = n + 1 end
  return n
end

-- { { path, lines }, ... } of every .lua under lua/ and .rs under src/.
function sizes.files()
  local out = {}
  for _, dir_ext in ipairs({ { "lua", "lua" }, { "src", "rs" } }) do
    for _, path in ipairs(layers.files(dir_ext[1], dir_ext[2])) do
      out[#out + 1] = { path, count_lines(layers.read(path)) }
    end
  end
  return out
end

-- Every prototype nested in `proto` (a function or a prototype), itself first.
local function each_proto(proto, out)
  out[#out + 1] = proto
  local info = jutil.funcinfo(proto)
  for i = 1, info.gcconsts or 0 do
    local k = jutil.funck(proto, -i)
    if type(k) == "proto" then each_proto(k, out) end
  end
  return out
end

-- { { "path:line", lines }, ... } of the functions of a Lua file (the main chunk left out).
local function lua_functions(path)
  local out = {}
  local chunk = assert(loadfile(path))
  for _, p in ipairs(each_proto(chunk, {})) do
    local info = jutil.funcinfo(p)
    if info.linedefined and info.linedefined > 0 then
      out[#out + 1] = { ("%s:%d"):format(path, info.linedefined), info.lastlinedefined - info.linedefined + 1 }
    end
  end
  return out
end

-- The same for a Rust file.
local function rust_functions(path)
  local out, lines = {}, {}
  for line in (layers.read(path) .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    local indent = line:match('^(%s*)[%w_%(%)"% ]*fn%s+[%w_]+')
    -- (the signature ends at the first line ending in `{`; one ending in `;` first declares a
    -- trait method or an extern function: no body)
    local body_at = nil
    if indent and not line:match("^%s*//") then
      for j = i, #lines do
        if lines[j]:match("{%s*$") then body_at = j; break end
        if lines[j]:match(";%s*$") then break end
      end
    end
    if body_at then
      local close = indent .. "}"
      for j = body_at, #lines do
        if lines[j] == close then
          out[#out + 1] = { ("%s:%d"):format(path, i), j - i + 1 }
          break
        end
      end
    end
  end
  return out
end

-- { { "path:line", lines }, ... } of every function under lua/ and src/.
function sizes.functions()
  local out = {}
  for _, path in ipairs(layers.files("lua", "lua")) do
    for _, f in ipairs(lua_functions(path)) do out[#out + 1] = f end
  end
  for _, path in ipairs(layers.files("src", "rs")) do
    for _, f in ipairs(rust_functions(path)) do out[#out + 1] = f end
  end
  return out
end

sizes.lua_functions, sizes.rust_functions = lua_functions, rust_functions
return sizes
