-- luact.cli: the `luact` command-line tool (rockspec/bin/luact runs `main` under LuaJIT). It
-- parses the command line, reads the cluster secret (LUACT_SECRET or --secret-file, never the
-- command line), runs the command in a node-client session (luact.cli.session) and turns the
-- outcome into an exit status: 0 done, 1 the node could not be reached or could not answer
-- (or had nothing: `db get` of a missing key, `where` of an unknown name, `leader` with none),
-- 2 bad usage. Errors go to stderr as "luact: ...".
local cli = {}

local USAGE = [[
Usage: luact [OPTIONS] COMMAND ADDR [ARGS]

Look inside a running luact node. ADDR is the node's address (ip:port, its `address` option).
The tool talks to the node over the node link, as a client holding the cluster secret: it
joins neither gossip nor Raft.

Commands:
  status ADDR                      the node, its cluster view and its threads
  members ADDR                     the cluster's members as ADDR sees them
  leader ADDR                      the Raft leader ADDR knows
  actors ADDR [--thread N] [--limit N] [--after ID]
                                   one page of a thread's actors (id order)
  where ADDR NAME                  where the virtual actor NAME is placed
  db get ADDR KEY                  a key of the cluster's db (linearizable read)
  db set ADDR KEY VALUE            sets KEY to the string VALUE
  db keys ADDR [PREFIX]            the keys starting with PREFIX
  top ADDR [-d SECONDS] [-n FRAMES]
                                   a live per-thread view (q or Ctrl-C quits)
  help [COMMAND]                   this text, or a command's

Options:
  --secret-file FILE   read the cluster secret from FILE (first line); default: $LUACT_SECRET
  --cluster NAME       the cluster's name (default: $LUACT_CLUSTER, else "luact")
  --tls-cert FILE, --tls-key FILE, --tls-ca FILE
                       for nodes whose links are TLS (their `tls` option): this client's
                       certificate (signed by the cluster's CA, clientAuth), its key, and the
                       CA (default: $LUACT_TLS_CERT, $LUACT_TLS_KEY, $LUACT_TLS_CA)
  --timeout SECONDS    how long to wait for each answer (default 5)
  --json               print the node's answer as JSON
  -h, --help           show this help
  --version            show luact's version

Exit status: 0 done; 1 the node could not be reached or answer (or had nothing to show);
2 bad usage. The secret is never taken from the command line (other users can see it there).
]]

local HELP = {
  status = [[
Usage: luact status ADDR

The node at ADDR: whether it is a cluster member, the leader it knows, the members by state, its
Raft role, term and indices, whether it holds its activation lease, and a table of its threads
(actors, tentacles, inbox depth and high-water mark, calls received and sent, loop turns,
stalls, Lua memory; counters since the node started).
]],
  members = [[
Usage: luact members ADDR

The cluster's members as ADDR sees them: address, state (alive, suspect, dead, left), whether it
is a Raft voter, its incarnation, and which one is the leader.
]],
  leader = [[
Usage: luact leader ADDR

Prints the address of the Raft leader ADDR knows (exit status 1 when it knows none).
]],
  actors = [[
Usage: luact actors ADDR [--thread N] [--limit N] [--after ID]

One page of the actors of thread N (default 1) of ADDR, in id order: id, name, body type, state,
calls served, calls in progress, last error. --limit: page size (default 100, at most 1000);
--after ID: the page after that id (the summary on stderr gives the next one).
]],
  where = [[
Usage: luact where ADDR NAME

Where the virtual actor NAME is placed, from ADDR's registry: node, thread and state of each
activation (exit status 1 when ADDR knows none).
]],
  db = [[
Usage: luact db get ADDR KEY
       luact db set ADDR KEY VALUE
       luact db keys ADDR [PREFIX]

The cluster's key/value store (luact.db), through ADDR (which forwards to the leader). get
prints the value (tables as JSON; exit status 1 when the key is missing); set stores VALUE as a
string; keys prints one key per line.
]],
  top = [[
Usage: luact top ADDR [-d SECONDS] [-n FRAMES]

A live view of ADDR's threads, refreshed every second (-d: another interval) like top(1): actors,
tentacles, inbox depth and high-water mark, calls in and out per second, loop turns per second,
stalls and Lua memory, under a line about the cluster. q or Ctrl-C quits; -n stops after that
many frames. Not on a terminal, it prints one frame after another.
]],
  help = [[
Usage: luact help [COMMAND]
]],
}

local function usage_error(msg) error({ usage = msg }, 0) end

local ADDR_PATTERN = "^(%d+)%.(%d+)%.(%d+)%.(%d+):(%d+)$"

local function check_addr(a)
  if a == nil then usage_error("missing ADDR (ip:port of a node)") end
  local p = { a:match(ADDR_PATTERN) }
  local ok = #p == 5
  for i = 1, 4 do ok = ok and tonumber(p[i]) < 256 end
  ok = ok and tonumber(p[5]) >= 1 and tonumber(p[5]) < 65536
  if not ok then usage_error(("bad ADDR '%s' (ip:port of a node expected, e.g. 127.0.0.1:7001)"):format(a)) end
  return a
end

local function number_opt(name, v, lo, hi, integer)
  local n = tonumber(v)
  if not n or n < lo or n > hi or (integer and n % 1 ~= 0) then
    usage_error(("bad value '%s' for %s (%s %s..%s expected)"):format(tostring(v), name, integer and "an integer" or "a number", lo, hi))
  end
  return n
end

-- The options each command takes (besides the global ones): name -> { field, parse }.
local COMMAND_OPTS = {
  actors = {
    ["--thread"] = function(v) return "thread", number_opt("--thread", v, 1, 1024, true) end,
    ["--limit"] = function(v) return "limit", number_opt("--limit", v, 1, 1000, true) end,
    ["--after"] = function(v) return "after", number_opt("--after", v, -1, 2 ^ 53, true) end,
  },
  top = {
    ["-d"] = function(v) return "delay", number_opt("-d", v, 0.1, 3600) end,
    ["--delay"] = function(v) return "delay", number_opt("--delay", v, 0.1, 3600) end,
    ["-n"] = function(v) return "frames", number_opt("-n", v, 1, 1e9, true) end,
  },
}

-- How many positional arguments each command takes after ADDR: min, max.
local ARGS = { status = { 0, 0 }, members = { 0, 0 }, leader = { 0, 0 }, actors = { 0, 0 }, top = { 0, 0 },
               where = { 1, 1 }, ["db get"] = { 1, 1 }, ["db set"] = { 2, 2 }, ["db keys"] = { 0, 1 } }

-- Parses argv into { cmd, sub, addr, args, opts, secret_file, cluster, timeout, json, help, version }.
function cli.parse(argv)
  local r = { args = {}, opts = {} }
  local words = {}
  local i = 1
  local function value(name, inline)
    if inline then return inline end
    i = i + 1
    if argv[i] == nil then usage_error(("option %s needs a value"):format(name)) end
    return argv[i]
  end
  local rest_positional = false
  while i <= #argv do
    local a = argv[i]
    if rest_positional or a:sub(1, 1) ~= "-" or a == "-" then
      words[#words + 1] = a
    elseif a == "--" then
      rest_positional = true
    else
      local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      if name == "-h" or name == "--help" then r.help = true
      elseif name == "--version" then r.version = true
      elseif name == "--json" then r.json = true
      elseif name == "--secret-file" then r.secret_file = value(name, inline)
      elseif name == "--cluster" then r.cluster = value(name, inline)
      elseif name == "--tls-cert" or name == "--tls-key" or name == "--tls-ca" then
        r.tls = r.tls or {}
        r.tls[name:sub(7)] = value(name, inline)
      elseif name == "--timeout" then r.timeout = number_opt("--timeout", value(name, inline), 0.1, 3600)
      elseif name == "--secret" or name == "-s" then
        usage_error("the secret is not taken from the command line (every user can read it there): set LUACT_SECRET or use --secret-file FILE")
      else
        local cmd = words[1]
        local parse = cmd and COMMAND_OPTS[cmd] and COMMAND_OPTS[cmd][name]
        if not parse then
          usage_error(("unknown option '%s'%s"):format(name, cmd and (" for '" .. cmd .. "'") or ""))
        end
        local field, v = parse(value(name, inline))
        r.opts[field] = v
      end
    end
    i = i + 1
  end
  r.cmd = table.remove(words, 1)
  if r.cmd == "help" then
    r.help, r.cmd = true, words[1]
    return r
  end
  if r.help or r.version then return r end
  if r.cmd == nil then usage_error("missing COMMAND") end
  if r.cmd == "db" then
    r.sub = table.remove(words, 1)
    if r.sub ~= "get" and r.sub ~= "set" and r.sub ~= "keys" then
      usage_error(r.sub and ("unknown db command '%s' (get, set or keys)"):format(r.sub) or "missing db command (get, set or keys)")
    end
  end
  local key = r.sub and ("db " .. r.sub) or r.cmd
  local nargs = ARGS[key]
  if not nargs then usage_error(("unknown command '%s'"):format(r.cmd)) end
  r.addr = check_addr(table.remove(words, 1))
  if #words < nargs[1] then usage_error(("'%s' needs %d more argument%s"):format(key, nargs[1] - #words, nargs[1] - #words == 1 and "" or "s")) end
  if #words > nargs[2] then usage_error(("too many arguments for '%s': %s"):format(key, words[nargs[2] + 1])) end
  r.args = words
  if r.sub and r.args[1] == "" then usage_error("KEY must not be empty") end
  return r
end

-- The secret: --secret-file FILE (its first line), else $LUACT_SECRET. Raises a usage error.
function cli.secret(r, getenv)
  getenv = getenv or os.getenv
  if r.secret_file then
    local f, err = io.open(r.secret_file, "rb")
    if not f then usage_error(("cannot read the secret file: %s"):format(err)) end
    local s = f:read("*l") or ""
    f:close()
    s = s:gsub("\r$", "")
    if s == "" then usage_error(("the secret file %s is empty"):format(r.secret_file)) end
    return s
  end
  local s = getenv("LUACT_SECRET")
  if s == nil or s == "" then
    usage_error("no cluster secret: set LUACT_SECRET or use --secret-file FILE")
  end
  return s
end

-- The TLS files of a node client (--tls-cert/--tls-key/--tls-ca, else LUACT_TLS_*): all three, or
-- nil for plain node links. Raises a usage error when only some are given.
function cli.tls(r, getenv)
  getenv = getenv or os.getenv
  local t = {}
  local given = 0
  for _, k in ipairs { "cert", "key", "ca" } do
    t[k] = (r.tls or {})[k] or getenv("LUACT_TLS_" .. k:upper())
    if t[k] == "" then t[k] = nil end
    if t[k] then given = given + 1 end
  end
  if given == 0 then return nil end
  if given < 3 then
    usage_error("TLS needs all three of --tls-cert, --tls-key and --tls-ca (or LUACT_TLS_CERT, LUACT_TLS_KEY, LUACT_TLS_CA)")
  end
  return t
end

-- The text of what a command raised, and its exit status.
local function describe(e, addr)
  if type(e) == "table" and e.usage then return e.usage, 2 end
  if type(e) == "table" and e.failure then return e.failure, 1 end
  if type(e) == "table" and e.name and e.message then
    local msg = tostring(e.message)
    if e.name == "actor_unreachable" then
      -- (the transport's reason, without the internal actor reference the question went to)
      -- (and the same words whichever side saw a wrong secret first)
      msg = (msg:match("%(the call was not sent%): (.*)$") or msg):gsub("^peer closed: ", "")
      return ("cannot reach %s: %s"):format(addr, msg), 1
    end
    if e.name == "actor_timeout" then return ("%s did not answer in time (%s)"):format(addr, msg), 1 end
    return ("%s: %s: %s"):format(addr, e.name, msg), 1
  end
  return tostring(e), 1
end

-- Runs the tool with argv (a list of strings); returns the exit status. out/err: where to write.
function cli.main(argv)
  local ok, r = pcall(cli.parse, argv)
  if not ok then
    local msg, code = describe(r)
    io.stderr:write("luact: ", msg, "\nTry 'luact --help'.\n")
    return code
  end
  if r.version then
    io.stdout:write("luact ", tostring(require("luact.ffi").version), "\n")
    return 0
  end
  if r.help then
    if r.cmd and not HELP[r.cmd] then
      io.stderr:write(("luact: no help for '%s' (not a command)\nTry 'luact --help'.\n"):format(r.cmd))
      return 2
    end
    io.stdout:write(r.cmd and HELP[r.cmd] or USAGE)
    return 0
  end
  local oks, secret = pcall(cli.secret, r)
  if not oks then
    io.stderr:write("luact: ", (describe(secret)), "\n")
    return 2
  end
  r.secret = secret
  r.cluster = r.cluster or os.getenv("LUACT_CLUSTER") or "luact"
  local okt, tls = pcall(cli.tls, r)
  if not okt then
    io.stderr:write("luact: ", (describe(tls)), "\nTry 'luact --help'.\n")
    return 2
  end
  r.tls = tls
  local remote = require "luact.cli.remote"
  remote.timeout = r.timeout or 5
  local run = r.cmd == "top" and require("luact.cli.top").run or require("luact.cli.commands")[r.cmd]
  local err = require("luact.cli.session").run(r, run)
  io.stdout:flush()
  if err ~= nil then
    local msg, code = describe(err, r.addr)
    io.stderr:write("luact: ", msg, "\n", code == 2 and "Try 'luact --help'.\n" or "")
    return code
  end
  return 0
end

return cli
