-- A line-protocol chat server written on luact.socket and actors (an example that
-- spec/examples/chat_spec.lua runs): a client sends "NICK name" first, then every line it sends
-- reaches every other client as "name: line"; "QUIT" leaves. Connections are accepted on every
-- thread (threads = "all"); one room actor, registered as "chat/room", knows the members, each
-- of which is an actor on its connection's thread that writes to its socket.
local chat = {}

-- The room: call on one thread before serving (other threads reach it by name).
function chat.room()
  local luact = require "luact"
  local members = {}   -- name -> member actor
  return luact.register("chat/room", {
    join = function(_, name, member)
      if members[name] then return false, "nick in use" end
      for _, m in pairs(members) do m:notify_deliver("* " .. name .. " joined\n") end
      members[name] = member
      return true
    end,
    say = function(_, name, text)
      for other, m in pairs(members) do
        if other ~= name then m:notify_deliver(name .. ": " .. text .. "\n") end
      end
    end,
    leave = function(_, name)
      members[name] = nil
      for _, m in pairs(members) do m:notify_deliver("* " .. name .. " left\n") end
    end,
  })
end

-- One connection (runs in its own tentacle on the accepting thread).
function chat.serve(sock)
  local luact = require "luact"
  local room = luact.ref("chat/room")
  local first = sock:receive("*l")
  local name = first and first:match("^NICK (%w+)$")
  if not name then sock:send("ERR say NICK name first\n"); return end
  local member = luact({ deliver = function(_, line) sock:send(line) end })
  local ok, why = room:join(name, member)
  if not ok then sock:send("ERR " .. why .. "\n"); luact.kill(member); return end
  sock:send("OK " .. name .. "\n")
  while true do
    local line = sock:receive("*l")
    if not line or line == "QUIT" then break end
    room:say(name, line)
  end
  room:leave(name)
  luact.kill(member)
end

-- Listens on url with every thread accepting.
function chat.listen(url)
  local luact = require "luact"
  return luact.socket.listen(url, function(sock) require("examples.chat").serve(sock) end,
    { threads = "all", timeout = 0 })
end

return chat
