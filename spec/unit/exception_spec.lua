local exception = require "luact.exception"

describe("luact.exception", function()
  it("makes exceptions that know their kind, message and traceback", function()
    local e = exception.new("actor_timeout", "no reply from", 42)
    assert.is_true(e:is("actor_timeout"))
    assert.is_false(e:is("actor_error"))
    assert.equal("no reply from 42", e.message)
    local s = tostring(e)
    assert.truthy(s:find("^actor_timeout: no reply from 42\n"))
    assert.truthy(s:find("stack traceback", 1, true))
    assert.truthy(s:find("exception_spec.lua", 1, true))
  end)

  it("raises with exception.raise and is caught by pcall as the same object", function()
    local ok, e = pcall(exception.raise, "actor_error", "bomb!")
    assert.is_false(ok)
    assert.is_true(exception.is_exception(e))
    assert.is_true(e:is("actor_error"))
    assert.equal("bomb!", e.message)
    assert.is_false(e.recoverable)
  end)

  it("refuses an undefined name", function()
    assert.has_error(function() exception.new("no_such_thing") end,
      "luact.exception: undefined exception 'no_such_thing'")
    assert.has_error(function() exception.raise("no_such_thing") end,
      "luact.exception: undefined exception 'no_such_thing'")
  end)

  it("defines new kinds with options", function()
    exception.define("spec_custom", { recoverable = true, message = "default text" })
    local e = exception.new("spec_custom")
    assert.is_true(e.recoverable)
    assert.equal("default text", e.message)
    assert.has_error(function() exception.define(42) end,
      "bad 'name' argument to exception.define (non-empty string expected, got number)")
  end)

  it("predefines the names the actor layer uses", function()
    for _, name in ipairs { "actor_no_body", "actor_timeout", "actor_error", "actor_runtime_error",
                            "actor_temporary_fail", "actor_unreachable", "actor_overload" } do
      assert.is_true(exception.defined(name), name)
    end
  end)

  it("round-trips through a plain table (to cross threads)", function()
    local e = exception.new("actor_runtime_error", "oops")
    local t = exception.to_table(e)
    assert.is_nil(getmetatable(t))
    local back = exception.from_table(require("string.buffer").decode(require("string.buffer").encode(t)))
    assert.is_true(back:is("actor_runtime_error"))
    assert.equal("oops", back.message)
    assert.equal(e.traceback, back.traceback)
  end)
end)
