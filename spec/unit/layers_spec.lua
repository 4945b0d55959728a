-- The layers import only downward: no module may join an import cycle. Lazy requires inside
-- functions and package.loaded lookups count (spec/helpers/layers.lua). The cycles that still
-- exist would be listed below (neither layer has one); a module that joins one, or a new cycle,
-- fails this spec. When a cycle is cut, take its modules out of the list here.
local layers = require "helpers.layers"

-- Each known knot: the modules that are in it today. A cycle must stay inside one of them.
local KNOWN = {
  lua = {},   -- none since the cut: thread identity in luact.thread, node events through hooks
  rust = {},  -- none since the cut: leaf helpers in util.rs, the offload pool replies through
              -- offload::Replies, the body of threads 2..n in runtime.rs
}

local function inside_a_known_knot(comp, known)
  for _, knot in ipairs(known) do
    local set = {}
    for _, m in ipairs(knot) do set[m] = true end
    local all = true
    for _, m in ipairs(comp) do if not set[m] then all = false; break end end
    if all then return true end
  end
  return false
end

-- The cycles not inside a known knot, each as its modules that no knot holds whole and the
-- edges that touch them (the ones to cut).
local function new_cycles(graph, known)
  local out = {}
  for _, comp in ipairs(layers.cycles(graph)) do
    if not inside_a_known_knot(comp, known) then
      local in_knot = {}
      for _, knot in ipairs(known) do for _, m in ipairs(knot) do in_knot[m] = true end end
      local newcomers, edges = {}, {}
      for _, m in ipairs(comp) do if not in_knot[m] then newcomers[#newcomers + 1] = m; newcomers[m] = true end end
      for _, e in ipairs(layers.edges_within(graph, comp)) do
        local a, b = e:match("^(.-) %-> (.*)$")
        if newcomers[a] or newcomers[b] or #newcomers == 0 then edges[#edges + 1] = e end
      end
      out[#out + 1] = ("a cycle of %d modules, new in it: %s\n    edges: %s"):format(#comp,
        table.concat(newcomers, ", "), table.concat(edges, "; "))
    end
  end
  return out
end

describe("luact's layers", function()
  it("finds a cycle, lazy or not, and only real ones", function()
    assert.same({ { "a", "b", "c" } }, layers.cycles({ a = { b = true }, b = { c = true }, c = { a = true }, d = { a = true } }))
    assert.same({}, layers.cycles({ a = { b = true }, b = { c = true }, c = {} }))
    assert.same({ "a cycle of 2 modules, new in it: a, b\n    edges: a -> b; b -> a" },
      new_cycles({ a = { b = true }, b = { a = true } }, {}))
    assert.same({}, new_cycles({ a = { b = true }, b = { a = true } }, { { "a", "b", "c" } }))
  end)

  it("reads lazy requires and package.loaded lookups in the Lua layer", function()
    local g = layers.lua_graph()
    assert.is_true(g["luact.actor.call"]["luact.tentacle"] == true)   -- a lazy lookup (package.loaded / require)
    assert.is_truthy(next(g["luact.init"] or g["luact"]))
  end)

  it("has no import cycle in the Lua layer", function()
    local found = new_cycles(layers.lua_graph(), KNOWN.lua)
    assert.same({}, found, "new import cycles:\n  " .. table.concat(found, "\n  "))
  end)

  it("has no `crate::` cycle between the core's modules", function()
    local found = new_cycles(layers.rust_graph(), KNOWN.rust)
    assert.same({}, found, "new import cycles:\n  " .. table.concat(found, "\n  "))
  end)
end)
