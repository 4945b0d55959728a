-- A reference shadows no method name: methods named like the fields a reference might hold
-- (m, t, e, l, s on a plain reference, vid on a named one) are called like any other, on the
-- caller's thread and on another thread.
local helpers = require "helpers.runtime"

describe("luact references", function()
  local NAMES = { "m", "t", "e", "l", "s", "vid", "url", "addr", "tls" }

  local function run(n_core)
    return helpers.start({ n_core = n_core }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      local NAMES = { "m", "t", "e", "l", "s", "vid", "url", "addr", "tls" }
      if luact.thread_id == luact.n_core then
        local body = {}
        for _, k in ipairs(NAMES) do body[k] = function(self, x) return k, x end end
        luact.register("/spec/fields", body)
      end
      if luact.thread_id ~= 1 then return end
      local named = h.wait_for("/spec/fields")
      local plain = luact.resolve("/spec/fields")
      local out = {}
      for _, k in ipairs(NAMES) do
        out[#out + 1] = table.concat({ plain[k](plain, 1) }, ",")
        out[#out + 1] = table.concat({ named[k](named, 2) }, ",")
        out[#out + 1] = table.concat({ plain["timed_" .. k](plain, 1, 3) }, ",")
      end
      out[#out + 1] = tostring(plain == luact.resolve("/spec/fields"))
      luact.stop(out)
    end)
  end

  local expected = {}
  for _, k in ipairs(NAMES) do
    expected[#expected + 1] = k .. ",1"
    expected[#expected + 1] = k .. ",2"
    expected[#expected + 1] = k .. ",3"
  end
  expected[#expected + 1] = "true"

  it("shadow no method name on the caller's thread", function()
    assert.same(expected, run(1))
  end)

  it("shadow no method name on another thread", function()
    assert.same(expected, run(2))
  end)
end)
