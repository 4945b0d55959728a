-- How late a 10 ms clock.sleep wakes up: p50/p99 lateness over 200 sleeps, with 100 other
-- tentacles sleeping at the same time.
local common = require "bench.common"
local luact = require "luact"

local lateness = luact.start({ n_core = 1 }, function()
  local luact = require "luact"
  for _ = 1, 100 do luact.tentacle(function() luact.clock.sleep(60) end) end
  local late = {}
  for i = 1, 200 do
    local t0 = luact.clock.get()
    luact.clock.sleep(0.010)
    late[i] = luact.clock.get() - t0 - 0.010
  end
  luact.stop(late)
end)
table.sort(lateness)
local sum = 0
for _, v in ipairs(lateness) do sum = sum + v end
common.report("sleep_precision", {
  n = #lateness, seconds = sum + #lateness * 0.010,
  p50_late_us = common.percentile(lateness, 0.5) * 1e6,
  p99_late_us = common.percentile(lateness, 0.99) * 1e6,
}, { "n", "seconds", "p50_late_us", "p99_late_us" })
