-- A node for the node specs: `luajit spec/nodes/serve.lua ADDRESS SECRET TCP_URL
-- [HTTP_URL [UDP_URL [TLS_CERT_DIR]]]`. Two threads; registers /svc/echo, /svc/factory, /svc/slow,
-- /svc/gates (thread 2), /svc/gates1 (thread 1), /svc/caller, /svc/fields and /svc/metrics, listens, prints "ready", and stops by itself after 60 s.
-- LUACT_SPEC_INBOX in the environment sets the inbox size (to make back-pressure easy to reach);
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./target/lua/?.so;" .. package.cpath
local luact = require "luact"

-- LUACT_SPEC_NODE_TLS="CERT KEY CA" makes its node links mutual TLS (`tls` option).
local node_tls
do
  local cert, key, ca = (os.getenv("LUACT_SPEC_NODE_TLS") or ""):match("^(%S+) (%S+) (%S+)$")
  if cert then node_tls = { cert = cert, key = key, ca = ca } end
end
luact.start({ n_core = 2, address = arg[1], secret = arg[2], tcp = arg[3], http = arg[4], udp = arg[5],
              tls_dir = arg[6], timeout = 90, inbox_size = tonumber(os.getenv("LUACT_SPEC_INBOX")),
              tls = node_tls }, function()
  local luact = require "luact"
  -- a gate: an actor that can block its whole thread and records what it is sent
  local function gate()
    return { seen = {},
      block = function(self, s) require("luact").util.sleep(s) end,
      note = function(self, x) self.seen[#self.seen + 1] = x end,
      list = function(self) return self.seen end }
  end
  if luact.thread_id == 2 then
    luact.register("/svc/slow", { nap = function(self, s) require("luact").clock.sleep(s); return "woke" end })
    luact.register("/svc/gates", { make = function() return require("luact")(gate()) end })
    return
  end
  luact.register("/svc/gates1", { make = function() return require("luact")(gate()) end })
  luact.register("/svc/echo", function(id)
    return {
      id = id,
      hoge = function(self) return self.id end,
      echo = function(self, ...) return ... end,
      where = function() return require("luact").machine_id, require("luact").thread_id end,
      fail = function() error("remote failure") end,
      fail_data = function(self, code) error({ code = code, why = { "plain", "data" } }) end,
    }
  end, 100)
  luact.register("/svc/factory", { make = function(self, v)
    return require("luact")({ v = v, get = function(self) return self.v end,
      fail_data = function(self, code) error({ code = code, why = { "plain", "data" } }) end })
  end })
  luact.register("/svc/caller", { call_back = function(self, target, ...) return target:echo(...) end,
    get_of = function(self, target) return target:get() end })
  -- methods named like the fields a reference might have had (url, addr, vid, tls, m, t, e, l, s)
  local fields = { me = function(self) return self.ref end }
  for _, k in ipairs { "url", "addr", "vid", "tls", "m", "t", "e", "l", "s" } do
    fields[k] = function() return k end
  end
  fields.ref = luact.register("/svc/fields", fields)
  luact.register("/svc/notes", { seen = {},
    note = function(self, x) self.seen[#self.seen + 1] = x end,
    list = function(self) return self.seen end })
  -- LUACT_SPEC_LIMITS="idle_timeout=1,max_connections=8": the tcp:// and http:// listeners' limits
  local limits
  for k, v in (os.getenv("LUACT_SPEC_LIMITS") or ""):gmatch("([%w_]+)=([%d.]+)") do
    limits = limits or {}
    limits[k] = tonumber(v)
  end
  luact.register("/svc/stats", { get = function() return require("luact").listen_stats() end })
  -- this node's handshake failures of one reason, and flow-control pauses of one side ("send",
  -- "receive"), summed over its threads (luact.metrics())
  luact.register("/svc/metrics", {
    failures = function(self, reason)
      local n = 0
      for _, t in pairs(require("luact").metrics().threads) do n = n + t.handshake_failures[reason] end
      return n
    end,
    flow = function(self, side)
      local n = 0
      for _, t in pairs(require("luact").metrics().threads) do n = n + t["flow_" .. side .. "_pauses"] end
      return n
    end })
  luact.listen(luact.opts.tcp, limits)
  if luact.opts.http then
    luact.listen(luact.opts.http, limits)
    -- a second http:// door whose calls get 0.3 s (the listener's timeout option), port + 10
    local host, port = luact.opts.http:match("^http://([^:]+):(%d+)$")
    luact.listen(("http://%s:%d"):format(host, port + 10), { timeout = 0.3 })
  end
  if luact.opts.udp and luact.opts.udp ~= "" then luact.listen(luact.opts.udp) end
  local dir = luact.opts.tls_dir
  if dir and dir ~= "" then
    -- tls:// on 8443, and tls:// with client certificates required on 8444 (same host)
    local host = luact.opts.tcp:match("^tcp://([^:]+):")
    luact.listen("tls://" .. host .. ":8443", { cert = dir .. "/server.pem", key = dir .. "/server.key" })
    luact.listen("ssl://" .. host .. ":8444", { cert = dir .. "/server.pem", key = dir .. "/server.key",
                                                client_ca = dir .. "/ca.pem" })
  end
  -- wait for /svc/slow on thread 2 before announcing
  local names = require "luact.actor.names"
  while not names.resolve("/svc/slow") do luact.clock.sleep(0.001) end
  io.stdout:write("ready\n"); io.stdout:flush()
  luact.clock.sleep(60)
  luact.stop()
end)
