-- luact.cli.session: runs one job of the `luact` command inside a small luact runtime (one
-- thread) that is a node client: started with the cluster's secret and no address, it dials the
-- node it asks and never listens, so it joins neither gossip nor Raft and no member ever dials
-- it. The job is a function(conf) run in a tentacle of thread 1; what it raised is handed back.
local runtime = require "luact.runtime"

local session = {}

local job = nil   -- { fn, conf, err } of the running job (thread 1 is this VM)

-- The runtime's main: it may capture nothing (luact.start moves main as bytecode).
local function main()
  require("luact.cli.session").enter()
end

function session.enter()
  local ok, err = pcall(job.fn, job.conf)
  if not ok then job.err = err end
  runtime.stop()
end

-- Runs fn(conf) as a node client of conf.cluster with conf.secret; returns nil on success, or
-- what it raised (a luact exception, a usage error table, a string).
function session.run(conf, fn)
  job = { fn = fn, conf = conf }
  local ok, err = pcall(runtime.start, {
    n_core = 1, secret = conf.secret, cluster = conf.cluster, tls = conf.tls,
    log_level = "error",        -- (the command says what went wrong itself, on stderr)
    stall_warn = false, join_timeout = 1,
  }, main)
  if not ok and job.err == nil then
    -- (a TLS file the core refused is the caller's to fix: a usage error)
    job.err = tostring(err):find("^bad 'tls' option") and { usage = tostring(err) } or err
  end
  local e = job.err
  job = nil
  return e
end

return session
