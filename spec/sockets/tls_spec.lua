-- luact.socket over TLS (tls://): against `openssl s_server` in another process (its -rev mode
-- answers each line reversed), with a CA, a name to verify and a client certificate; inside
-- spec/run's network namespace.
local process = require "helpers.process"
local helpers = require "helpers.runtime"

-- A CA, a server certificate for IP 127.0.0.1, a client certificate, and another CA.
local function make_certs() return require("helpers.certs").make("127.0.0.1") end

describe("luact.socket tls://", function()
  local dir, server
  local PORT = 4433
  setup(function()
    process.require_netns()
    dir = make_certs()
    -- one connection at a time; a client certificate signed by the CA is required
    server = process.spawn(("openssl s_server -accept 127.0.0.1:%d -cert %s/server.pem -key %s/server.key -rev -Verify 1 -CAfile %s/ca.pem"):format(PORT, dir, dir, dir))
    process.wait_for(server, "ACCEPT", 10)
  end)
  teardown(function()
    process.cleanup(server)
    if dir then os.execute("rm -rf " .. dir) end
  end)

  it("talks to a TLS server that checks the client's certificate, and refuses a server the CA did not sign or a wrong name", function()
    local r = helpers.start({ n_core = 1, timeout = 30, certs = dir, port = PORT }, function()
      local luact = require "luact"
      local d, url = luact.opts.certs, "tls://127.0.0.1:" .. luact.opts.port
      local r = {}
      local s = assert(luact.socket.connect(url, { ca = d .. "/ca.pem", cert = d .. "/client.pem", key = d .. "/client.key", timeout = 5 }))
      s:send("hello over tls\n")
      r.reply = s:receive("*l")
      -- 20 lines of 8000 bytes (s_server reverses lines up to its 16 KiB buffer): 160 KB, many
      -- TLS records each way
      local lines = {}
      for i = 1, 20 do lines[i] = ("%02d"):format(i) .. ("x"):rep(7997) .. "\n" end
      s:send(lines)
      local ok = true
      for i = 1, 20 do
        local back = s:receive("*l")
        ok = ok and back == ("x"):rep(7997) .. ("%02d"):format(i):reverse()
      end
      r.long = ok
      s:close()
      r.wrong_ca = { luact.socket.connect(url, { ca = d .. "/other.pem", timeout = 5 }) }
      r.wrong_name = { luact.socket.connect(url, { ca = d .. "/ca.pem", sni = "example.com", timeout = 5 }) }
      r.no_ca = { pcall(luact.socket.connect, url) }
      r.bad_ca_file = { pcall(luact.socket.connect, url, { ca = d .. "/missing.pem" }) }
      luact.stop(r)
    end)
    assert.equal("slt revo olleh", r.reply)
    assert.is_true(r.long)
    assert.same({ nil, "tls handshake failed" }, r.wrong_ca)
    assert.same({ nil, "tls handshake failed" }, r.wrong_name)
    assert.is_false(r.no_ca[1])
    assert.matches("tls:// needs 'ca'", r.no_ca[2], 1, true)
    assert.is_false(r.bad_ca_file[1])
    assert.matches("missing.pem", r.bad_ca_file[2], 1, true)
  end)

  it("serves tls:// with its own listener: a luact client and openssl s_client, a required client certificate", function()
    local r = helpers.start({ n_core = 2, timeout = 30, certs = dir }, function()
      local luact = require "luact"
      if luact.thread_id ~= 1 then return end
      local d = luact.opts.certs
      local l = assert(luact.socket.listen("tls://127.0.0.1:0", function(sock, peer)
        while true do
          local line = sock:receive("*l")
          if not line then return end
          sock:send("tls echo: " .. line .. "\n")
        end
      end, { cert = d .. "/server.pem", key = d .. "/server.key", client_ca = d .. "/ca.pem", timeout = 5,
             threads = "all" }))
      local url = "tls://127.0.0.1:" .. l.port
      local r = {}
      local s = assert(luact.socket.connect(url, { ca = d .. "/ca.pem", cert = d .. "/client.pem", key = d .. "/client.key", timeout = 5 }))
      s:send("one\n")
      r.one = s:receive()
      s:close()
      -- openssl s_client from another process, with the client certificate
      local process = require "helpers.process"
      local out = os.tmpname()
      local p = process.spawn(("sh -c '(echo hello from openssl; sleep 1) | openssl s_client -connect 127.0.0.1:%d -CAfile %s/ca.pem -cert %s/client.pem -key %s/client.key -quiet >%s 2>/dev/null'"):format(l.port, d, d, d, out))
      for _ = 1, 100 do
        local f = io.open(out)
        local text = f and f:read("*a") or ""
        if f then f:close() end
        if text:find("\n") then r.openssl = text break end
        luact.clock.sleep(0.05)
      end
      process.cleanup(p)
      os.remove(out)
      -- no client certificate: the handshake fails and the handler never runs
      local s2, err = luact.socket.connect(url, { ca = d .. "/ca.pem", timeout = 5 })
      if s2 then
        s2:send("no cert\n")
        r.no_cert = { s2:receive() }
        s2:close()
      else
        r.no_cert = { nil, err }
      end
      r.bad_listen = { pcall(luact.socket.listen, "tls://127.0.0.1:0", function() end) }
      r.bad_cert = { pcall(luact.socket.listen, "tls://127.0.0.1:0", function() end, { cert = d .. "/missing.pem", key = d .. "/server.key" }) }
      luact.stop(r)
    end)
    assert.equal("tls echo: one", r.one)
    assert.equal("tls echo: hello from openssl\n", r.openssl)
    assert.is_nil(r.no_cert[1])
    assert.matches("^tls ", r.no_cert[2])
    assert.is_false(r.bad_listen[1])
    assert.matches("tls:// needs 'cert' and 'key'", r.bad_listen[2], 1, true)
    assert.is_false(r.bad_cert[1])
    assert.matches("missing.pem", r.bad_cert[2], 1, true)
  end)
end)
