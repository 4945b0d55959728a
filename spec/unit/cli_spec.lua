-- luact.cli (the `luact` tool's command line) and luact.cli.format (what it prints): parsing,
-- the secret's sources, and the text and JSON of answers. No node: spec/nodes/cli_spec.lua runs
-- the tool against a cluster.
local cli = require "luact.cli"
local format = require "luact.cli.format"

local function usage_of(argv)
  local ok, e = pcall(cli.parse, argv)
  assert.is_false(ok)
  return e.usage
end

describe("luact.cli", function()
  it("parses commands, ADDR, arguments and options in any order", function()
    local r = cli.parse({ "actors", "127.0.0.1:7001", "--thread", "2", "--limit=5", "--json" })
    assert.equal("actors", r.cmd)
    assert.equal("127.0.0.1:7001", r.addr)
    assert.same({ thread = 2, limit = 5 }, r.opts)
    assert.is_true(r.json)
    r = cli.parse({ "--timeout", "2", "db", "set", "10.0.0.1:1", "k", "v w" })
    assert.same({ "db", "set", "10.0.0.1:1", { "k", "v w" }, 2 }, { r.cmd, r.sub, r.addr, r.args, r.timeout })
    r = cli.parse({ "db", "set", "10.0.0.1:1", "--", "k", "-1" })
    assert.same({ "k", "-1" }, r.args)
    r = cli.parse({ "help", "top" })
    assert.same({ true, "top" }, { r.help, r.cmd })
  end)

  it("says what is wrong with bad usage", function()
    assert.equal("missing COMMAND", usage_of({}))
    assert.equal("unknown command 'stat'", usage_of({ "stat", "1.2.3.4:5" }))
    assert.equal("missing ADDR (ip:port of a node)", usage_of({ "status" }))
    assert.equal("bad ADDR '1.2.3.400:5' (ip:port of a node expected, e.g. 127.0.0.1:7001)", usage_of({ "status", "1.2.3.400:5" }))
    assert.equal("bad ADDR 'host:5' (ip:port of a node expected, e.g. 127.0.0.1:7001)", usage_of({ "status", "host:5" }))
    assert.equal("too many arguments for 'status': x", usage_of({ "status", "1.2.3.4:5", "x" }))
    assert.equal("'db set' needs 1 more argument", usage_of({ "db", "set", "1.2.3.4:5", "k" }))
    assert.equal("missing db command (get, set or keys)", usage_of({ "db" }))
    assert.equal("unknown option '--thread' for 'status'", usage_of({ "status", "1.2.3.4:5", "--thread", "2" }))
    assert.equal("option --limit needs a value", usage_of({ "actors", "1.2.3.4:5", "--limit" }))
    assert.equal("bad value '1001' for --limit (an integer 1..1000 expected)", usage_of({ "actors", "1.2.3.4:5", "--limit", "1001" }))
    assert.truthy(usage_of({ "status", "1.2.3.4:5", "--secret", "x" }):find("not taken from the command line", 1, true))
  end)

  it("reads the secret from --secret-file, else from LUACT_SECRET", function()
    local f = os.tmpname()
    local h = io.open(f, "w"); h:write("from-file\nsecond line\n"); h:close()
    local env = function(k) return k == "LUACT_SECRET" and "from-env" or nil end
    assert.equal("from-file", cli.secret({ secret_file = f }, env))
    assert.equal("from-env", cli.secret({}, env))
    h = io.open(f, "w"); h:close()
    local ok, e = pcall(cli.secret, { secret_file = f }, env)
    assert.is_false(ok)
    assert.equal(("the secret file %s is empty"):format(f), e.usage)
    os.remove(f)
    ok, e = pcall(cli.secret, {}, function() return nil end)
    assert.is_false(ok)
    assert.equal("no cluster secret: set LUACT_SECRET or use --secret-file FILE", e.usage)
  end)
end)

describe("luact.cli.tls", function()
  it("takes the three files from options or the environment, all or none", function()
    local none = function() return nil end
    assert.is_nil(cli.tls({}, none))
    assert.same({ cert = "c", key = "k", ca = "a" }, cli.tls({ tls = { cert = "c", key = "k", ca = "a" } }, none))
    local env = { LUACT_TLS_CERT = "ec", LUACT_TLS_KEY = "ek", LUACT_TLS_CA = "ea" }
    assert.same({ cert = "c", key = "ek", ca = "ea" }, cli.tls({ tls = { cert = "c" } }, function(k) return env[k] end))
    local ok, e = pcall(cli.tls, { tls = { cert = "c" } }, none)
    assert.is_false(ok)
    assert.truthy(e.usage:find("TLS needs all three", 1, true))
  end)
end)

describe("luact.cli.format", function()
  it("writes JSON with sorted keys, arrays, escapes and no NaN", function()
    assert.equal('{"a":[1,2.5,"x\\"y\\n"],"b":{},"c":null,"d":true}',
      format.json({ d = true, a = { 1, 2.5, 'x"y\n' }, b = {}, c = 0 / 0 }))
  end)

  it("aligns columns, numbers to the right", function()
    assert.equal("ID  NAME\n 1  a\n12  bcd\n", format.table({ "ID", "NAME" }, { { 1, "a" }, { 12, "bcd" } }, { [1] = true }))
    assert.equal("1.5K", format.bytes(1536))
    assert.equal("-", format.rate(nil))
    assert.equal("3.5", format.rate(3.5))
  end)
end)
