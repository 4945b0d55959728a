-- Spec helpers for luact.socket: wait for a peer process's output from inside a tentacle (the
-- thread's loop keeps serving meanwhile), bounded.
local sockets = {}

-- Polls until proc printed `pattern` (its first capture is returned), for at most ~30 s.
function sockets.wait_peer(proc, pattern)
  local luact = require "luact"
  local process = require "helpers.process"
  for _ = 1, 600 do
    local out = process.output(proc)
    local m = out:match(pattern)
    if m then return m, out end
    luact.clock.sleep(0.05)
  end
  return nil, process.output(proc)
end

return sockets
