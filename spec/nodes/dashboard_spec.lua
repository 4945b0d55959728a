-- The live dashboard (GET /_luact/ of an http:// listener opened with `dashboard = true`) in a
-- real browser: headless Chromium driven by selenium (spec/nodes/dashboard_browser.py) watches
-- member 1's page while member 3 is killed with kill -9, and must show it `dead` within 2 s
-- (polling the DOM). Also: the state the page polls, and that the page and its state are not
-- served by a listener without the option. Saves the screenshot to spec/tmp/dashboard.png
-- (README's rockspec/dashboard.png is one of these).
local procs = require "helpers.cluster_procs"
local process = require "helpers.process"

local function http(url, method)
  return process.run(("curl -s -m 5 -X %s -w '\\n%%{http_code}' %s"):format(method or "GET", url))
end

describe("the dashboard", function()
  setup(function()
    procs.setup()
    for i = 1, 3 do procs.start(i) end
    assert.is_truthy(procs.settle(40), "the cluster did not settle")
  end)
  teardown(function() procs.teardown() end)

  it("serves its page and the state it polls, nothing secret, only where enabled", function()
    local page = http("http://127.0.0.1:9001/_luact/")
    assert.truthy(page:find("<title>luact dashboard</title>", 1, true))
    assert.truthy(page:find("\n200$"), page:sub(-20))
    -- nothing loaded from elsewhere: no external script, style sheet, image or import
    for _, pat in ipairs { "<script src", "<link", "<img", "url%(", "@import" } do
      assert.falsy(page:find(pat), pat)
    end
    assert.is_true(procs.value(1, "set", "dash/secretish", "v4lue"))
    local state = http("http://127.0.0.2:9002/_luact/state.json")
    assert.truthy(state:find("\n200$"), state)
    assert.truthy(state:find('"node":"127.0.0.2:7002"', 1, true), state)
    for i = 1, 3 do assert.truthy(state:find(('"address":"%s","incarnation":%%d+,"state":"alive"'):format(procs.addr(i):gsub("%.", "%%."))), state) end
    assert.truthy(state:find('"threads":[{"actors":', 1, true), state)
    assert.falsy(state:find("s3cret", 1, true))
    assert.falsy(state:find("v4lue", 1, true))
    -- a listener without the option serves neither (and /_luact is then an ordinary path)
    local port = procs.value(1, "listen", "http://127.0.0.1:0")
    local refused = http(("http://127.0.0.1:%d/_luact/"):format(port))
    assert.equal([[{"error":"not_found","message":"/_luact/ is not enabled on this listener (luact.listen's 'dashboard' option)"}]] .. "\n404", refused)
    refused = http(("http://127.0.0.1:%d/_luact/state.json"):format(port))
    assert.truthy(refused:find("\n404$"), refused)
    refused = http(("http://127.0.0.1:%d/_luact/state"):format(port), "POST")
    assert.truthy(refused:find('"error":"actor_no_body"', 1, true), refused)
    -- on a listener with it, /_luact answers 'state' only
    local other = http("http://127.0.0.1:9001/_luact/other", "POST")
    assert.truthy(other:find('"error":"actor_no_method"', 1, true), other)
    -- and the option is for http:// listeners only
    local r = procs.call(1, "listen", "tcp://127.0.0.1:0", { dashboard = true })
    assert.is_false(r[1])
    assert.truthy(tostring(r[2]):find("the 'dashboard' option needs an http:// listener (got tcp://)", 1, true), tostring(r[2]))
  end)

  it("pages the placements by name past 200: ?after=NAME, a malformed query refused", function()
    assert.equal(450, procs.value(1, "vreg_many", "/pg/", 450))
    -- the names of a page (in the order given), its `next`, the registry's total
    local function page(after)
      local url = "'http://127.0.0.2:9002/_luact/state.json" .. (after and ("?after=" .. after:gsub("/", "%%2F")) or "") .. "'"
      local state = http(url)
      assert.truthy(state:find("\n200$"), state:sub(-300))
      local p = state:match('"placements":(%b{})')
      assert.truthy(p, state:sub(1, 300))
      local names = {}
      for n in p:gmatch('"name":"(/pg/%d+)"') do names[#names + 1] = n end
      return names, p:match('"next":"([^"]+)"'), tonumber(p:match('"total":(%d+)'))
    end
    local seen, after, pages = {}, nil, 0
    repeat
      local names, nxt, total = page(after)
      assert.is_true(total >= 450)
      pages = pages + 1
      for _, n in ipairs(names) do seen[#seen + 1] = n end
      if nxt then assert.equal(200, #names) end
      after = nxt
    until not after or pages > 5
    assert.equal(3, pages)
    assert.equal(450, #seen)
    for i, n in ipairs(seen) do assert.equal(("/pg/%04d"):format(i), n) end
    local bad = http("'http://127.0.0.2:9002/_luact/state.json?after=%zz'")
    assert.truthy(bad:find("\n400$"), bad)
    assert.truthy(bad:find("bad percent-encoding in a query value", 1, true), bad)
  end)

  it("shows a member going dead within 2 s of a kill -9", function()
    -- something to show: a virtual actor placed somewhere, and calls across threads
    assert.is_true(procs.value(1, "vreg", "/dash/room", "room"))
    assert.is_true((procs.value(2, "vcall", "/dash/room", "where", 10)))
    assert.is_true(procs.value(1, "start_pinger", 20, 0.005))
    os.execute("mkdir -p spec/tmp")
    local shot = "spec/tmp/dashboard.png"
    os.remove(shot)
    local out = process.run(("timeout -k 5 90 python3 spec/nodes/dashboard_browser.py http://127.0.0.1:9001/_luact/ %d %s 3 %s"):format(
      procs.pid(3), procs.addr(3), shot))
    local line = out:match("({.-})%s*$")
    assert.truthy(line, out)
    local function field(name) return line:match('"' .. name .. '": ([^,}]+)') end
    assert.equal("true", field("ready"), out)
    local after = tonumber(field("dead_after"))
    assert.truthy(after, "the page never showed the member dead: " .. out)
    assert.is_true(after <= 2.0, ("the page showed it dead after %.2f s: %s"):format(after, out))
    assert.truthy(line:find(('"%s": "dead"'):format(procs.addr(3)), 1, true), line)
    assert.truthy(line:find(('"%s": "alive"'):format(procs.addr(1)), 1, true), line)
    assert.truthy(line:find('"threads": 2', 1, true), line)
    assert.truthy(line:find('"placements": "451 names registered', 1, true), line)
    -- the page's "next" button: 200 names a page in name order (/dash/room, /pg/0001../pg/0199)
    assert.equal('"/dash/room"', field("page1_first"))
    assert.equal('"/pg/0200"', field("page2_first"))
    assert.equal('"after /pg/0199"', field("page_at"))
    assert.truthy(line:find("dead " .. procs.addr(3), 1, true), line)
    local f = io.open(shot, "rb")
    assert.truthy(f, "no screenshot")
    assert.equal("\137PNG", f:read(4))
    f:close()
    procs.kill(3)
  end)
end)
