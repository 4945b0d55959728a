-- The chat server example (spec/examples/chat.lua): listening on both threads, one room actor,
-- clients on luact.socket (spec/run runs this directory inside unshare -n).
local process = require "helpers.process"
local helpers = require "helpers.runtime"

describe("examples.chat (on luact.socket and actors)", function()
  setup(function() process.require_netns() end)

  it("relays lines between clients, names them, and tells who joins and leaves", function()
    local seen = helpers.start({ n_core = 2, timeout = 20 }, function()
      package.path = "./spec/?.lua;" .. package.path
      local luact = require "luact"
      if luact.thread_id ~= 1 then return end
      local chat = require "examples.chat"
      chat.room()
      local l = assert(chat.listen("tcp://127.0.0.1:0"))
      local url = "tcp://127.0.0.1:" .. l.port
      local function client(name)
        local s = assert(luact.socket.connect(url, { timeout = 5 }))
        s:send("NICK " .. name .. "\n")
        assert(s:receive() == "OK " .. name)
        return s
      end
      local seen = {}
      local ann = client("ann")
      local bob = client("bob")
      seen.ann_sees_bob_join = ann:receive()
      local eve = client("eve")
      seen.ann_sees_eve_join = ann:receive()
      seen.bob_sees_eve_join = bob:receive()
      ann:send("hello all\n")
      seen.bob_hears = bob:receive()
      seen.eve_hears = eve:receive()
      bob:send("QUIT\n")
      seen.ann_sees_bob_leave = ann:receive()
      seen.bob_closed = select(2, bob:receive())
      local dup = assert(luact.socket.connect(url))
      dup:send("NICK ann\n")
      seen.duplicate = dup:receive()
      local bad = assert(luact.socket.connect(url))
      bad:send("hello?\n")
      seen.no_nick = bad:receive()
      for _, s in ipairs { ann, bob, eve, dup, bad } do s:close() end
      luact.stop(seen)
    end)
    assert.same({
      ann_sees_bob_join = "* bob joined",
      ann_sees_eve_join = "* eve joined",
      bob_sees_eve_join = "* eve joined",
      bob_hears = "ann: hello all",
      eve_hears = "ann: hello all",
      ann_sees_bob_leave = "* bob left",
      bob_closed = "closed",
      duplicate = "ERR nick in use",
      no_nick = "ERR say NICK name first",
    }, seen)
  end)
end)
