-- luact.dashboard: what the live dashboard (the page at GET /_luact/ of an http:// listener
-- opened with `dashboard = true`, src/wire/dashboard.html) shows. The page polls
-- GET /_luact/state.json; the listener's thread answers with state(): this node's threads
-- (luact.inspect.threads), the cluster as this node sees it (inspect.cluster: members, leader,
-- Raft, recent failovers), where virtual actors live (inspect.placements: a page of at most
-- MAX_PLACEMENTS names, in name order, after the query's `after`) and the last
-- membership events this thread saw since its first dashboard listener opened (suspicions,
-- deaths, joins, leaves, leader changes). Read-only, bounded, nothing secret (no secret, no
-- keys, no actor state, no db values).
local inspect = require "luact.inspect"
local listener = require "luact.listener"
local view = require "luact.cluster.view"
local clock = require "luact.clock"
local event = require "luact.event"
local tentacle = require "luact.tentacle"
local thread = require "luact.thread"

local dashboard = {}

local MAX_EVENTS = 50
local MAX_PLACEMENTS = 200

local events = {}        -- the newest last: { time = unix seconds, type, address }
local watching = nil     -- the view's event stream this thread watches (a new run: a new one)

local function watch()
  local ev = view.events()
  if watching == ev then return end
  watching, events = ev, {}
  tentacle(function()
    while watching == ev do
      local tp, _, member = event.wait(nil, ev)
      events[#events + 1] = { time = clock.walltime(), type = tp,
                              address = type(member) == "table" and member.address or nil }
      if #events > MAX_EVENTS then table.remove(events, 1) end
    end
  end)
end

-- The state the page polls (plain data, encoded to JSON by the core); `after`: a name, for the
-- page of placements after it (GET /_luact/state.json?after=NAME).
function dashboard.state(_, after)
  local out = { time = clock.walltime(), node = (thread.opts or {}).address, thread = thread.id,
                threads = inspect.threads() }
  -- the cluster's parts are thread 1's (it runs the services): a message when this is another
  local ok, cl = pcall(inspect.cluster)
  if ok then
    out.cluster = cl
    if cl.member then
      local okp, p = pcall(inspect.placements, { limit = MAX_PLACEMENTS, after = after })
      if okp then out.placements = p end
    end
  else
    out.error = tostring(type(cl) == "table" and cl.message or cl)
  end
  out.events = events
  return out
end

listener.set_dashboard({ opened = watch, state = dashboard.state })

return dashboard
