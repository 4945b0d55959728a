-- luact.actor.ref's cache of parsed message names: names come from listener clients too, so it
-- must stay bounded however many distinct names arrive.
local ref = require "luact.actor.ref"

describe("luact.actor.ref message names", function()
  it("keeps at most PARSED_MAX names cached, and parses every name right past the bound", function()
    for i = 1, 3 * ref.PARSED_MAX do
      local p = ref.parse(("notify_m%d"):format(i))
      assert(p[1] == "notify" and p[2] == ("m%d"):format(i))
    end
    assert.is_true(ref.parsed_count() <= ref.PARSED_MAX)
    assert.same({ "timed", "x" }, ref.parse("timed_x"))
    assert.same({ "sync", "notify_" }, ref.parse("notify_"))
  end)
end)
