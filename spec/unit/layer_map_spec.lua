-- The maps of the two layers stay true: lua/luact/README.md names every Lua module at the layer
-- the require graph gives it (spec/helpers/layers.lua), src/README.md names every top-level Rust
-- module, and every file starts with a comment saying what it owns (a Lua file's first line
-- names its module).
local layers = require "helpers.layers"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function lines_of(cmd)
  local out = {}
  local p = io.popen(cmd)
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- Each module's layer: 0 when it requires no other luact module, else one more than the highest
-- layer it requires (the graph has no cycle: layers_spec checks that).
local function layer_numbers(g)
  local n = {}
  local function layer(m)
    if n[m] then return n[m] end
    local best = -1
    for d in pairs(g[m] or {}) do
      if g[d] then best = math.max(best, layer(d)) end
    end
    n[m] = best + 1
    return n[m]
  end
  for m in pairs(g) do layer(m) end
  return n
end

-- The rows of the Lua map: module name (or "parent.*" with the names in parentheses) -> layer.
-- A row is `| layer | `luact.x` ... | owns | requires |`.
local function lua_map_rows(text)
  local rows = {}
  for line in text:gmatch("[^\n]+") do
    local layer, name, rest = line:match("^| (%d+) | `([%w_%.%*]+)`([^|]*)|")
    if layer then rows[#rows + 1] = { layer = tonumber(layer), name = name, rest = rest } end
  end
  return rows
end

-- The layer the map gives a module, or nil when it does not name it.
local function mapped_layer(rows, m)
  for _, r in ipairs(rows) do
    if r.name == m then return r.layer end
    local parent = r.name:match("^(.*)%.%*$")
    if parent and m:sub(1, #parent + 1) == parent .. "." then
      local leaf = m:sub(#parent + 2)
      if not leaf:find(".", 1, true) and r.rest:find("%f[%w_]" .. leaf .. "%f[^%w_]") then return r.layer end
    end
  end
  return nil
end

-- What is wrong with the Lua map: modules it lacks, or shows at another layer than the graph.
local function lua_map_problems(g, text)
  local rows, n, out = lua_map_rows(text), layer_numbers(g), {}
  local names = {}
  for m in pairs(g) do names[#names + 1] = m end
  table.sort(names)
  for _, m in ipairs(names) do
    local shown = mapped_layer(rows, m)
    if shown == nil then
      out[#out + 1] = ("%s is missing (layer %d)"):format(m, n[m])
    elseif shown ~= n[m] then
      out[#out + 1] = ("%s is shown at layer %d, its requires put it at %d"):format(m, shown, n[m])
    end
  end
  return out
end

describe("the layer maps", function()
  it("finds a module missing from the Lua map, or shown at a stale layer", function()
    local g = { ["luact.a"] = {}, ["luact.b"] = { ["luact.a"] = true }, ["luact.p.x"] = {}, ["luact.p.y"] = {} }
    local text = "| 0 | `luact.a` | owns | |\n| 0 | `luact.b` | owns | a |\n| 0 | `luact.p.*` (x, z) | owns | |\n"
    assert.same({ "luact.b is shown at layer 0, its requires put it at 1", "luact.p.y is missing (layer 0)" },
      lua_map_problems(g, text))
    text = "| 0 | `luact.a` | | |\n| 1 | `luact.b` | | a |\n| 0 | `luact.p.*` (x, y) | | |\n"
    assert.same({}, lua_map_problems(g, text))
  end)

  it("lua/luact/README.md names every Lua module at its layer", function()
    local problems = lua_map_problems(layers.lua_graph(), read("lua/luact/README.md"))
    assert.same({}, problems, "lua/luact/README.md is stale (fix its table):\n  " .. table.concat(problems, "\n  "))
  end)

  it("every Lua file's first line names its module", function()
    local bad = {}
    for _, path in ipairs(lines_of("find lua/luact -name '*.lua' | sort")) do
      local m = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      local first = read(path):match("^[^\n]*")
      local after = first:sub(#m + 4, #m + 4)
      if first:sub(1, #m + 3) ~= "-- " .. m or after:match("[%w_%.]") then
        bad[#bad + 1] = ("%s: %q"):format(path, first)
      end
    end
    assert.same({}, bad, "files whose first line does not say `-- <module>: what it owns`:\n  " .. table.concat(bad, "\n  "))
  end)

  it("src/README.md names every top-level Rust module, and every Rust file starts with //!", function()
    local text = read("src/README.md")
    local missing, seen, bare = {}, {}, {}
    for _, path in ipairs(lines_of("find src -name '*.rs' | sort")) do
      local top = path:match("^src/([%w_]+)/") and path:match("^src/([%w_]+)/") .. "/" or path:match("^src/([%w_]+%.rs)$")
      local named = text:find("`" .. top .. "`", 1, true)
        or (top:match("^ffi_[%w_]+%.rs$") and text:find("`ffi_*.rs`", 1, true))
      if not named and not seen[top] then missing[#missing + 1] = top; seen[top] = true end
      if not read(path):match("^//!") then bare[#bare + 1] = path end
    end
    assert.same({}, missing, "src/README.md does not name (add a line for each):\n  " .. table.concat(missing, "\n  "))
    assert.same({}, bare, "files without a //! comment saying what they own:\n  " .. table.concat(bare, "\n  "))
  end)
end)
