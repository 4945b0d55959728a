-- Spec helpers for multi-process tests: spawn a command in the background, wait until it prints
-- a line, kill it by pid. Node specs run inside a fresh network namespace (spec/run starts them
-- under `unshare -n`); `require_netns()` refuses to run anywhere else.
local process = {}

-- Errors unless this process is in a network namespace other than init's.
function process.require_netns()
  local function ns(path)
    local p = io.popen("readlink " .. path .. " 2>/dev/null")
    local s = p:read("*l")
    p:close()
    return s
  end
  local mine, init = ns("/proc/self/ns/net"), ns("/proc/1/ns/net")
  if mine == nil or mine == init then
    error("node specs open sockets between processes: run them in a fresh network namespace " ..
          "(spec/run does: unshare -n sh -c 'ip link set lo up; ...')", 2)
  end
end

-- Starts `cmd` in the background with its output in a temp file; returns { pid, log }.
function process.spawn(cmd)
  local log = os.tmpname()
  local p = assert(io.popen(("%s >%s 2>&1 & echo $!"):format(cmd, log)))
  local pid = tonumber(p:read("*l"))
  p:close()
  assert(pid, "could not start: " .. cmd)
  return { pid = pid, log = log, cmd = cmd }
end

-- Runs `cmd` to completion and returns what it printed (stdout and stderr).
function process.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a")
  p:close()
  return out
end

function process.output(proc)
  local f = io.open(proc.log)
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- Waits (bounded) until the process printed `pattern`.
function process.wait_for(proc, pattern, timeout)
  local deadline = os.time() + (timeout or 10)
  while os.time() <= deadline do
    if process.output(proc):find(pattern) then return true end
    os.execute("sleep 0.05")
  end
  error(("%s did not print '%s' in time; output:\n%s"):format(proc.cmd, pattern, process.output(proc)), 2)
end

function process.kill(proc, signal)
  if proc and proc.pid then
    os.execute(("kill -%s %d 2>/dev/null"):format(signal or "TERM", proc.pid))
    os.execute(("sleep 0.05; kill -KILL %d 2>/dev/null"):format(proc.pid))
  end
end

function process.cleanup(proc)
  process.kill(proc, "KILL")
  if proc and proc.log then os.remove(proc.log) end
end

return process
