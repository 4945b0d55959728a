-- A small Redis client written on luact.socket (an example that spec/examples/redis_spec.lua
-- runs against a real redis-server): RESP2 requests and replies, one command at a time or a
-- pipeline of many in one write. Use one client per tentacle at a time (a socket has one reader).
--   local redis = require "examples.redis"
--   local r = assert(redis.connect("tcp://127.0.0.1:6379"))
--   r:call("SET", "k", "v"); local v = r:call("GET", "k")
--   local results = r:pipeline({ { "INCR", "n" }, { "GET", "n" } })
local luact = require "luact"

local redis = {}
redis.null = setmetatable({}, { __tostring = function() return "redis.null" end })

local Client = {}
Client.__index = Client

function redis.connect(url, opts)
  local sock, err = luact.socket.connect(url, opts)
  if not sock then return nil, err end
  return setmetatable({ sock = sock }, Client)
end

-- RESP2: an array of bulk strings.
local function encode(cmd, out)
  out[#out + 1] = "*" .. #cmd .. "\r\n"
  for i = 1, #cmd do
    local s = tostring(cmd[i])
    out[#out + 1] = "$" .. #s .. "\r\n"
    out[#out + 1] = s
    out[#out + 1] = "\r\n"
  end
end

-- One reply: a value, or nil, err (a connection failure), or false, msg (an error reply).
local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then
    return rest
  elseif kind == "-" then
    return false, rest
  elseif kind == ":" then
    return tonumber(rest)
  elseif kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return redis.null end
    local data, rerr = sock:receive(n + 2)
    if not data then return nil, rerr end
    return data:sub(1, n)
  elseif kind == "*" then
    local n = tonumber(rest)
    if n < 0 then return redis.null end
    local arr = {}
    for i = 1, n do
      local v, verr = read_reply(sock)
      if v == nil then return nil, verr end
      arr[i] = v
    end
    return arr
  end
  return nil, "protocol error: " .. line
end

-- r:call(cmd, args...) -> value | nil, err (err: the server's error reply, or the socket's).
function Client:call(...)
  local out = {}
  encode({ ... }, out)
  local ok, err = self.sock:send(out)
  if not ok then return nil, err end
  local v, verr = read_reply(self.sock)
  if v == false then return nil, verr end
  return v, verr
end

-- r:pipeline({ cmd1, cmd2, ... }) -> { result1, result2, ... } (an error reply is
-- { err = msg } in its place) | nil, err: every command goes out in one write.
function Client:pipeline(cmds)
  local out = {}
  for i = 1, #cmds do encode(cmds[i], out) end
  local ok, err = self.sock:send(out)
  if not ok then return nil, err end
  local results = {}
  for i = 1, #cmds do
    local v, verr = read_reply(self.sock)
    if v == nil then return nil, verr end
    results[i] = v == false and { err = verr } or v
  end
  return results
end

function Client:close()
  return self.sock:close()
end

return redis
