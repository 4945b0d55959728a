-- spec helper: the import graph of luact's two layers, and its cycles. The Lua graph counts every
-- way one module reaches another: top-level and lazy `require "luact.x"` (inside functions too)
-- and `package.loaded["luact.x"]` lookups; the Rust graph counts `crate::x` paths between the
-- crate's top-level modules (src/x.rs or src/x/). Comments are ignored. `cycles(graph)` returns
-- the strongly connected components of more than one module (Tarjan), each a sorted list.
local layers = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function files(dir, ext)
  local out = {}
  local p = io.popen(("find %s -name '*.%s' | sort"):format(dir, ext))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function strip_lua_comments(s)
  s = s:gsub("%-%-%[(=*)%[.-%]%1%]", "")
  return (s:gsub("%-%-[^\n]*", ""))
end

local function strip_rust_comments(s)
  s = s:gsub("/%*.-%*/", "")
  return (s:gsub("//[^\n]*", ""))
end

-- lua/luact/a/b.lua -> luact.a.b; lua/luact/a/init.lua -> luact.a
local function lua_module(path)
  local m = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return m
end

-- { module = { dep = true, ... } } for lua/luact (run from the repository's top).
function layers.lua_graph(root)
  local g = {}
  for _, path in ipairs(files((root or "lua") .. "/luact", "lua")) do
    local m = lua_module(path)
    local deps = g[m] or {}
    g[m] = deps
    local src = strip_lua_comments(read(path))
    for dep in src:gmatch("require%s*%(?%s*[\"'](luact[%w_%.]*)[\"']") do deps[dep] = true end
    for dep in src:gmatch("package%.loaded%s*%[%s*[\"'](luact[%w_%.]*)[\"']%s*%]") do deps[dep] = true end
    deps[m] = nil
  end
  return g
end

-- { module = { dep = true } } for the crate's top-level modules (src/x.rs, src/x/...).
function layers.rust_graph(root)
  local g = {}
  for _, path in ipairs(files(root or "src", "rs")) do
    local m = path:match("^[^/]+/([%w_]+)")
    if m == "lib.rs" or m == nil then m = "lib" end
    m = m:gsub("%.rs$", "")
    local deps = g[m] or {}
    g[m] = deps
    for dep in strip_rust_comments(read(path)):gmatch("crate::([%w_]+)") do
      if dep ~= m then deps[dep] = true end
    end
    -- `use crate::{a, b::c}` groups
    for group in strip_rust_comments(read(path)):gmatch("crate::%{(.-)%}") do
      for dep in group:gmatch("([%w_]+)[^,]*") do
        if dep ~= m and dep ~= "self" then deps[dep] = true end
      end
    end
  end
  return g
end

-- Strongly connected components with more than one member, each sorted, sorted by first name.
function layers.cycles(g)
  local index, low, on_stack, stack, out, n = {}, {}, {}, {}, {}, 0
  local function connect(v)
    n = n + 1
    index[v], low[v] = n, n
    stack[#stack + 1] = v
    on_stack[v] = true
    for w in pairs(g[v] or {}) do
      if g[w] then
        if not index[w] then
          connect(w)
          low[v] = math.min(low[v], low[w])
        elseif on_stack[w] then
          low[v] = math.min(low[v], index[w])
        end
      end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack)
        on_stack[w] = nil
        comp[#comp + 1] = w
      until w == v
      if #comp > 1 then
        table.sort(comp)
        out[#out + 1] = comp
      end
    end
  end
  local names = {}
  for v in pairs(g) do names[#names + 1] = v end
  table.sort(names)
  for _, v in ipairs(names) do if not index[v] then connect(v) end end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return out
end

-- One edge of each cycle that closes it, for a message: a -> b where both are in comp.
function layers.edges_within(g, comp)
  local set = {}
  for _, m in ipairs(comp) do set[m] = true end
  local edges = {}
  for _, m in ipairs(comp) do
    local deps = {}
    for d in pairs(g[m]) do if set[d] then deps[#deps + 1] = d end end
    table.sort(deps)
    for _, d in ipairs(deps) do edges[#edges + 1] = m .. " -> " .. d end
  end
  return edges
end

layers.read, layers.files = read, files   -- (also for spec/helpers/sizes.lua)

return layers
