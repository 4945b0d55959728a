-- luact.cli.commands: what each command of the `luact` tool asks the node and prints (status,
-- members, leader, actors, where, db get/set/keys). Each runs inside the session's runtime
-- (luact.cli.session) with conf = { addr, args, opts, json }, writes its answer to stdout and
-- raises { failure = text } (exit 1) when the node's answer is "nothing there".
local remote = require "luact.cli.remote"
local format = require "luact.cli.format"

local commands = {}

local function out(s) io.stdout:write(s) end

local function fail(text) error({ failure = text }, 0) end
local function usage(text) error({ usage = text }, 0) end

local THREAD_HEADERS = { "THREAD", "ACTORS", "TENTACLES", "INBOX", "INBOX_MAX", "CALLS_IN", "CALLS_OUT", "TURNS", "STALLS", "LUA_MEM" }
local ALL_RIGHT = setmetatable({}, { __index = function() return true end })

local function thread_rows(threads)
  local rows = {}
  for _, t in ipairs(threads) do
    rows[#rows + 1] = { t.thread, t.actors, t.tentacles, t.inbox_depth, t.inbox_high_water, t.calls_received,
                        t.calls_sent, t.loop_turns, t.stalls, format.bytes(t.lua_memory_bytes) }
  end
  return rows
end

local function counts(members)
  local by = {}
  for _, m in ipairs(members or {}) do by[m.state] = (by[m.state] or 0) + 1 end
  local parts = {}
  for _, s in ipairs { "alive", "suspect", "dead", "left" } do
    if by[s] then parts[#parts + 1] = ("%d %s"):format(by[s], s) end
  end
  return table.concat(parts, ", ")
end

-- luact status ADDR
function commands.status(conf)
  local threads = remote.threads(conf.addr)
  local cl = remote.cluster(conf.addr)
  if conf.json then return out(format.json({ node = conf.addr, threads = threads, cluster = cl }) .. "\n") end
  local actors, inbox = 0, 0
  for _, t in ipairs(threads) do actors, inbox = actors + (t.actors or 0), inbox + (t.inbox_depth or 0) end
  local lines = { { "node", conf.addr } }
  if cl.member then
    lines[#lines + 1] = { "member", "yes" }
    lines[#lines + 1] = { "leader", cl.leader and (cl.leader .. (cl.leader == cl.self and " (this node)" or "")) or "none known" }
    lines[#lines + 1] = { "members", ("%d (%s)"):format(#(cl.members or {}), counts(cl.members)) }
    local r = cl.raft
    if r then
      lines[#lines + 1] = { "raft", ("%s, term %s, commit %s, applied %s"):format(r.role or "?", format.value(r.term),
        format.value(r.commit), format.value(cl.applied or r.applied)) }
    else
      lines[#lines + 1] = { "raft", ("not a voter; applied %s"):format(format.value(cl.applied)) }
    end
    local l = cl.lease or {}
    lines[#lines + 1] = { "lease", l.held and ("held, %.1f s left"):format(l.seconds_left or 0) or "not held" }
  else
    lines[#lines + 1] = { "member", "no (not in a cluster)" }
  end
  lines[#lines + 1] = { "threads", tostring(#threads) }
  lines[#lines + 1] = { "actors", tostring(actors) }
  lines[#lines + 1] = { "inbox", ("%d waiting"):format(inbox) }
  for _, l in ipairs(lines) do out(("%-8s %s\n"):format(l[1], l[2])) end
  out("\n")
  out(format.table(THREAD_HEADERS, thread_rows(threads), ALL_RIGHT))
end

-- luact members ADDR
function commands.members(conf)
  local cl = remote.cluster(conf.addr)
  if conf.json then return out(format.json({ leader = cl.leader, members = cl.members or {} }) .. "\n") end
  if not cl.member then fail(("%s is not a cluster member"):format(conf.addr)) end
  local rows = {}
  for _, m in ipairs(cl.members or {}) do
    local note = {}
    if m.address == cl.leader then note[#note + 1] = "leader" end
    if m.address == cl.self then note[#note + 1] = "(asked)" end
    rows[#rows + 1] = { m.address, m.state, m.voter and "yes" or "no", m.incarnation, table.concat(note, " ") }
  end
  out(format.table({ "ADDRESS", "STATE", "VOTER", "INCARNATION", "" }, rows, { [4] = true }))
end

-- luact leader ADDR
function commands.leader(conf)
  local cl = remote.cluster(conf.addr)
  if conf.json then return out(format.json({ leader = cl.leader }) .. "\n") end
  if not cl.member then fail(("%s is not a cluster member"):format(conf.addr)) end
  if not cl.leader then fail(("%s knows no leader now"):format(conf.addr)) end
  out(cl.leader .. "\n")
end

-- luact actors ADDR [--thread N] [--limit N] [--after ID]
function commands.actors(conf)
  local o = conf.opts
  local tid = o.thread or 1
  if o.thread then
    local n = #remote.threads(conf.addr)
    if tid > n then usage(("--thread %d: %s has %d thread%s"):format(tid, conf.addr, n, n == 1 and "" or "s")) end
  end
  local page = remote.actors(conf.addr, tid, o.after, o.limit or 100)
  if conf.json then return out(format.json(page) .. "\n") end
  local rows = {}
  for _, a in ipairs(page.actors or {}) do
    rows[#rows + 1] = { a.id, a.name or "-", a.body, a.state or "-", a.calls_served, a.calls_in_progress, a.last_error or "-" }
  end
  out(format.table({ "ID", "NAME", "BODY", "STATE", "CALLS", "IN_PROGRESS", "LAST_ERROR" }, rows, { [1] = true, [5] = true, [6] = true }))
  local tail = ("thread %d: %d actor%s shown of %d, inbox %d"):format(page.thread, #rows, #rows == 1 and "" or "s",
    page.total or #rows, page.inbox_depth or 0)
  if page.next then tail = tail .. ("; next page: --after %s"):format(format.value(page.next)) end
  io.stderr:write(tail .. "\n")
end

-- luact where ADDR NAME
function commands.where(conf)
  local name = conf.args[1]
  local w = remote.where(conf.addr, name)
  if conf.json then return out(format.json(w) .. "\n") end
  if #(w.activations or {}) == 0 then fail(("no activation of '%s' is known to %s"):format(name, conf.addr)) end
  local rows = {}
  for _, a in ipairs(w.activations) do rows[#rows + 1] = { a.node or "-", a.thread, a.state or (w.node_only and "local") or "-" } end
  out(format.table({ "NODE", "THREAD", "STATE" }, rows, { [2] = true }))
end

-- luact db get ADDR KEY | db set ADDR KEY VALUE | db keys ADDR [PREFIX]
function commands.db(conf)
  local sub = conf.sub
  if sub == "get" then
    local v = remote.db_get(conf.addr, conf.args[1])
    if conf.json then return out(format.json(v) .. "\n") end
    if v == nil then fail(("no key '%s'"):format(conf.args[1])) end
    out(format.value(v) .. "\n")
  elseif sub == "set" then
    remote.db_set(conf.addr, conf.args[1], conf.args[2])
  elseif sub == "keys" then
    local keys = remote.db_keys(conf.addr, conf.args[1]) or {}
    table.sort(keys)
    if conf.json then return out(format.json(keys) .. "\n") end
    for _, k in ipairs(keys) do out(format.value(k) .. "\n") end
  end
end

return commands
