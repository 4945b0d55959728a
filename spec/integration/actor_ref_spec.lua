-- A reference shadows no method name: methods named like the fields a reference might hold
-- (m, t, e, l, s on a plain reference, vid on a named one) are called like any other, on the
-- caller's thread and on another thread. A url that cannot be dialed raises at luact.ref, and a
-- bad timeout of a timed_ call says what it was.
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

  it("refuses a url that cannot be dialed at luact.ref, not at the first call", function()
    local luact = require "luact"
    local function err_of(url)
      local ok, e = pcall(luact.ref, url)
      assert.is_false(ok, url .. " was accepted")
      return e:match("bad .*")
    end
    assert.equal("bad 'url' argument to luact.ref (an IPv4 address and a port 1..65535 expected, got 'localhost:8080' in tcp://localhost:8080/x; use 127.0.0.1)",
      err_of("tcp://localhost:8080/x"))
    assert.equal("bad 'url' argument to luact.ref (an IPv4 address and a port 1..65535 expected, got 'example.com:80' in tcp://example.com:80/x: names are not resolved)",
      err_of("tcp://example.com:80/x"))
    assert.truthy(err_of("tcp://127.0.0.300:80/x"))
    assert.truthy(err_of("tcp://127.0.0.1:0/x"))
    assert.truthy(err_of("tcp://127.0.0.1:70000/x"))
    assert.is_true(luact.is_actor(luact.ref("tcp://127.0.0.1:8080/x")))
  end)

  it("says the bad timeout of a timed_ call, on every kind of reference", function()
    local errs = helpers.run(function()
      local luact = require "luact"
      local a = luact({ hi = function() return "hi" end })
      luact.register("/spec/timed", { hi = function() return "hi" end })
      local errs = {}
      for _, r in ipairs { a, luact.ref("/spec/timed"), luact.ref("tcp://127.0.0.1:9/x") } do
        local _, e1 = pcall(r.timed_hi, r, -1)
        local _, e2 = pcall(r.timed_hi, r, "soon")
        local _, e3 = pcall(r.timed_hi, r, 0 / 0)
        errs[#errs + 1] = { tostring(e1), tostring(e2), tostring(e3) }
      end
      luact.stop(errs)
    end)
    assert.equal(3, #errs)
    for _, e in ipairs(errs) do
      assert.matches("actor_ref_spec.lua:%d+: bad timeout argument to 'timed_hi' %(non%-negative number expected, got %-1%)$", e[1])
      assert.matches("bad timeout argument to 'timed_hi' %(non%-negative number expected, got string%)$", e[2])
      assert.matches("bad timeout argument to 'timed_hi' %(non%-negative number expected, got %-?nan%)$", e[3])
    end
  end)
end)
