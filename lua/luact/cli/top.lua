-- luact.cli.top: `luact top ADDR`, a live per-thread view of one node refreshed every second,
-- like top(1): per thread its actors, tentacles, inbox, calls in and out per second, loop turns
-- per second, stalls and Lua memory, under a line about the cluster. On a terminal it draws on
-- the alternate screen and reads keys without echo (q or Ctrl-C quits: Ctrl-C arrives as a key,
-- so the terminal is always restored); otherwise (a pipe) it prints one frame after another.
-- Runs inside the session's runtime: one tentacle asks and draws, another watches the keyboard.
local ffi = require "ffi"
local clock = require "luact.clock"
local tentacle = require "luact.tentacle"
local remote = require "luact.cli.remote"
local format = require "luact.cli.format"

pcall(ffi.cdef, [[
struct luact_cli_pollfd { int fd; short events; short revents; };
int poll(struct luact_cli_pollfd *fds, unsigned long nfds, int timeout);
long read(int fd, void *buf, size_t count);
int isatty(int fd);
]])
local C = ffi.C
local POLLIN = 1

local top = {}

local function sh(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local s = p and p:read("*a") or ""
  if p then p:close() end
  return (s:gsub("%s+$", ""))
end

-- The terminal: raw keys (no echo, no line buffering, Ctrl-C as a byte) and the alternate screen
-- while the view runs; restore() puts back what was there.
local function terminal()
  local term = { tty_in = C.isatty(0) == 1, tty_out = C.isatty(1) == 1 }
  if term.tty_in then
    term.saved = sh("stty -g")
    os.execute("stty -icanon -echo -isig min 1 time 0 2>/dev/null")
  end
  if term.tty_out then io.stdout:write("\27[?1049h\27[?25l"); io.stdout:flush() end
  function term.restore()
    if term.done then return end
    term.done = true
    if term.tty_out then io.stdout:write("\27[?25h\27[?1049l"); io.stdout:flush() end
    if term.saved and term.saved ~= "" then os.execute("stty " .. term.saved .. " 2>/dev/null") end
  end
  return term
end

-- A key waiting on stdin, or nil (never blocks).
local pfd = ffi.new("struct luact_cli_pollfd[1]")
local kbuf = ffi.new("uint8_t[16]")
local function key()
  pfd[0].fd, pfd[0].events, pfd[0].revents = 0, POLLIN, 0
  if C.poll(pfd, 1, 0) <= 0 then return nil end
  local n = tonumber(C.read(0, kbuf, 16))
  if n <= 0 then return "eof" end
  return ffi.string(kbuf, n)
end

local HEADERS = { "THREAD", "ACTORS", "TENTACLES", "INBOX", "INBOX_MAX", "CALLS_IN/S", "CALLS_OUT/S", "TURNS/S", "STALLS", "LUA_MEM" }
local RIGHT = setmetatable({}, { __index = function() return true end })

local function rate(now, before, field, dt)
  if not before or dt <= 0 then return nil end
  return math.max(0, ((now[field] or 0) - (before[field] or 0)) / dt)
end

-- The text of one frame: threads (this sample), prev (the last one, by thread), dt seconds apart.
function top.frame(addr, threads, cl, prev, dt, clock_text, err)
  local lines = {}
  lines[1] = ("luact top - %s - %s - q or Ctrl-C quits"):format(addr, clock_text)
  if err then
    lines[#lines + 1] = "no answer: " .. err
  end
  if cl then
    if cl.member then
      local by = {}
      for _, m in ipairs(cl.members or {}) do by[m.state] = (by[m.state] or 0) + 1 end
      local r = cl.raft or {}
      lines[#lines + 1] = ("cluster: leader %s, members %d (alive %d, suspect %d, dead %d), raft %s term %s commit %s"):format(
        cl.leader or "none", #(cl.members or {}), by.alive or 0, by.suspect or 0, by.dead or 0,
        r.role or "-", format.value(r.term), format.value(r.commit))
    else
      lines[#lines + 1] = "cluster: not a member"
    end
  end
  local rows, tot = {}, { actors = 0, inbox = 0, cin = 0, cout = 0 }
  for _, t in ipairs(threads or {}) do
    local p = prev and prev[t.thread]
    local cin, cout, turns = rate(t, p, "calls_received", dt), rate(t, p, "calls_sent", dt), rate(t, p, "loop_turns", dt)
    rows[#rows + 1] = { t.thread, t.actors, t.tentacles, t.inbox_depth, t.inbox_high_water, format.rate(cin),
                        format.rate(cout), format.rate(turns), t.stalls, format.bytes(t.lua_memory_bytes) }
    tot.actors, tot.inbox = tot.actors + (t.actors or 0), tot.inbox + (t.inbox_depth or 0)
    tot.cin, tot.cout = tot.cin + (cin or 0), tot.cout + (cout or 0)
  end
  lines[#lines + 1] = ("threads %d, actors %d, inbox %d, calls in %s/s, out %s/s"):format(#rows, tot.actors, tot.inbox,
    prev and format.rate(tot.cin) or "-", prev and format.rate(tot.cout) or "-")
  lines[#lines + 1] = ""
  return table.concat(lines, "\n") .. "\n" .. format.table(HEADERS, rows, RIGHT)
end

-- luact top ADDR [-d SECONDS] [-n FRAMES]
function top.run(conf)
  local delay, frames = conf.opts.delay or 1, conf.opts.frames
  local term = terminal()
  local quit = false
  local ok, err = pcall(function()
    -- the keyboard, every 50 ms (a question to the node may take up to its timeout meanwhile)
    if term.tty_in then
      tentacle(function()
        while not quit do
          local k = key()
          if k and (k:find("[qQ\3]") or k == "eof") then quit = true end
          clock.sleep(0.05)
        end
      end)
    end
    local prev, prev_t, n = nil, nil, 0
    while not quit do
      local t0 = clock.get()
      local okq, threads, cl = pcall(function()
        return remote.threads(conf.addr), remote.cluster(conf.addr)
      end)
      local now = clock.get()
      local qerr = nil
      if not okq then
        qerr = type(threads) == "table" and threads.message and (threads.name .. ": " .. threads.message) or tostring(threads)
        threads, cl = nil, nil
      end
      local text = top.frame(conf.addr, threads, cl, prev, prev_t and (now - prev_t) or 0, os.date("%H:%M:%S"), qerr)
      if term.tty_out then
        io.stdout:write("\27[H\27[2J", text)
      else
        io.stdout:write(text, "\n")
      end
      io.stdout:flush()
      if threads then
        prev, prev_t = {}, now
        for _, t in ipairs(threads) do prev[t.thread] = t end
      end
      n = n + 1
      if frames and n >= frames then break end
      local wake = t0 + delay
      while not quit and clock.get() < wake do clock.sleep(math.min(0.05, wake - clock.get())) end
    end
  end)
  quit = true
  term.restore()
  if not ok then error(err, 0) end
end

return top
