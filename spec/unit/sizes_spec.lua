-- A newcomer reads luact file by file: no file over 800 lines outside the pure state machines,
-- no function over 80 lines, in the Lua layer and in the Rust core (spec/helpers/sizes.lua
-- measures them).
local sizes = require "helpers.sizes"

local MAX_FILE, MAX_FUNCTION = 800, 80

-- Files allowed to be longer, and why (a pure state machine reads as one piece: its messages
-- and its transitions side by side).
local LONG_FILES = {
  ["lua/luact/cluster/raft/init.lua"] = "the Raft state machine: pure, no sockets, clocks or disks",
}

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

describe("luact's sizes", function()
  it("measures nested Lua functions and Rust functions to their last line", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    write(dir .. "/a.lua", "local M = {}\nfunction M.f()\n  local function g()\n    return 1\n  end\n  return g\nend\nreturn M\n")
    write(dir .. "/a.rs", "trait T {\n    fn decl(&self) -> u8;\n}\n\npub(crate) fn f(\n    a: u8,\n) -> u8 {\n    if a > 0 {\n        a\n    } else {\n        0\n    }\n}\n")
    local lua = sizes.lua_functions(dir .. "/a.lua")
    local rust = sizes.rust_functions(dir .. "/a.rs")
    os.execute("rm -rf " .. dir)
    table.sort(lua, function(x, y) return x[1] < y[1] end)
    assert.same({ { dir .. "/a.lua:2", 6 }, { dir .. "/a.lua:3", 3 } }, lua)
    assert.same({ { dir .. "/a.rs:5", 9 } }, rust)
  end)

  it("keeps every file at " .. MAX_FILE .. " lines or fewer, outside the pure state machines", function()
    local long = {}
    for _, f in ipairs(sizes.files()) do
      if f[2] > MAX_FILE and not LONG_FILES[f[1]] then long[#long + 1] = ("%s: %d lines"):format(f[1], f[2]) end
    end
    assert.same({}, long, "files too long:\n  " .. table.concat(long, "\n  "))
  end)

  it("keeps every function at " .. MAX_FUNCTION .. " lines or fewer", function()
    local long = {}
    for _, f in ipairs(sizes.functions()) do
      if f[2] > MAX_FUNCTION then long[#long + 1] = ("%s: %d lines"):format(f[1], f[2]) end
    end
    assert.same({}, long, "functions too long:\n  " .. table.concat(long, "\n  "))
  end)
end)
