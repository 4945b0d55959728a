-- luact.inspect: the actors of any thread (paged), one actor, the threads, where a name lives.
local helpers = require "spec.helpers.runtime"

describe("luact.inspect", function()
  it("lists the actors of another thread in pages, with what each served and its last error", function()
    local r = helpers.start({ n_core = 2 }, function()
      local luact = require "luact"
      local h = require "spec.helpers.actors"
      if luact.thread_id == 2 then
        luact.register("/spec/maker", { make = function(self, n)
          local refs = {}
          for i = 1, n do
            refs[i] = require("luact")({ __name = "worker", v = i, secret = "s3cr3t",
              get = function(self) return self.v end, fail = function() error("kaput") end })
          end
          return refs
        end })
        return
      end
      local maker = h.wait_for("/spec/maker")
      local refs = maker:make(250)
      refs[7]:get(); refs[7]:get(); pcall(refs[7].fail, refs[7])
      local pages, seen, after = 0, {}, nil
      repeat
        local page = luact.inspect.actors({ thread = 2, after = after, limit = 100 })
        pages = pages + 1
        for _, a in ipairs(page.actors) do seen[#seen + 1] = a end
        after = page.next
      until not after or pages > 10
      -- a page that holds the last actor says nothing follows; one short of it says what does
      local whole = luact.inspect.actors({ thread = 2, limit = 251 })
      local short = luact.inspect.actors({ thread = 2, limit = 250 })
      local rest = luact.inspect.actors({ thread = 2, after = short.next, limit = 250 })
      local paging = { #whole.actors, whole.next, #short.actors, short.next ~= nil, #rest.actors, rest.next }
      local one = luact.inspect.actor(refs[7])
      local threads = luact.inspect.threads()
      local where = luact.inspect.where("/spec/maker")
      local bad = { pcall(luact.inspect.actors, { thread = 3 }) }
      luact.stop({ paging = paging, pages = pages, seen = seen, one = one, threads = threads, where = where, bad = tostring(bad[2]) })
    end)
    assert.equal(3, r.pages)
    assert.same({ 251, nil, 250, true, 1, nil }, r.paging)
    assert.equal(251, #r.seen)                      -- the maker and its 250 workers
    for i = 2, #r.seen do assert.is_true(r.seen[i].id > r.seen[i - 1].id) end
    local named = 0
    for _, a in ipairs(r.seen) do if a.name == "/spec/maker" then named = named + 1 end end
    assert.equal(1, named)
    assert.equal(3, r.one.calls_served)
    assert.equal("table:worker", r.one.body)
    assert.truthy(r.one.last_error:find("^actor_runtime_error: .*kaput"), r.one.last_error)
    assert.equal("number", r.one.fields.v)
    assert.equal("string", r.one.fields.secret)      -- the shape, never the value
    assert.falsy(require("luact.actor.codec") and tostring(r.one.fields.secret):find("s3cr3t"))
    assert.equal(2, #r.threads)
    assert.equal(251, r.threads[2].actors)
    assert.equal(1, #r.where.activations)
    assert.equal(2, r.where.activations[1].thread)
    assert.truthy(r.bad:find("bad 'thread' option to luact.inspect.actors (1..2 expected, got 3)", 1, true), r.bad)
  end)
end)
