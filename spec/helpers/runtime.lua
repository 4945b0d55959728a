-- Spec helpers for code that needs a started runtime.
local helpers = {}

-- luact.start with a safety timeout (a broken spec fails instead of hanging busted).
function helpers.start(opts, main)
  local luact = require "luact"
  opts = opts or {}
  if opts.timeout == nil then opts.timeout = 20 end
  return luact.start(opts, main)
end

-- Runs `main` on thread 1 of a one-thread runtime and returns what it passes to luact.stop.
function helpers.run(main)
  return helpers.start({ n_core = 1 }, main)
end

return helpers
