-- luact.offload: the round trip of an empty function through the pool (median and p99 of
-- 5000 sequential offloads after a warm-up), and the loop's stalls while every pool thread
-- blocks: a 1 ms ticker on the calling thread counts the gaps between its beats over 1 ms
-- (late beats) while 4 tentacles each block a pool thread for 0.2 s, 5 times, after 1 s of the
-- same ticker with nothing else running (the control: what the machine does to the loop alone).
local common = require "bench.common"
local luact = require "luact"

local r = luact.start({ n_core = 1, offload_threads = 4 }, function()
  local luact = require "luact"
  local clock = luact.clock
  for _ = 1, 500 do luact.offload(function() end) end
  local N = 5000
  local t = {}
  for i = 1, N do
    local t0 = clock.get()
    luact.offload(function() end)
    t[i] = (clock.get() - t0) * 1e6
  end
  table.sort(t)
  local common = require "bench.common"
  local median, p99 = common.percentile(t, 0.5), common.percentile(t, 0.99)
  -- stalls: beats of a 1 ms ticker that came more than 2 ms after the one before, first for
  -- 1 s with nothing else running (the machine's own noise: the control), then while 4 tentacles
  -- each block a pool thread for 0.2 s, 5 times
  local tk = clock.ticker(0.001)
  local function watch(phase)
    local w = { beats = 0, late = 0, worst = 0 }
    local last = clock.get()
    while not phase.stop do
      luact.event.wait(nil, tk)
      local now = clock.get()
      w.beats = w.beats + 1
      if now - last > 0.002 then w.late = w.late + 1 end
      if now - last > w.worst then w.worst = now - last end
      last = now
    end
    return w
  end
  collectgarbage()
  local control = { }
  local cw = luact.tentacle(watch, control)
  clock.sleep(1.0)
  control.stop = true
  local _, _, _, c = luact.event.wait(nil, cw)
  local busy = {}
  local bw = luact.tentacle(watch, busy)
  for _ = 1, 5 do
    local ts = {}
    for i = 1, 4 do ts[i] = luact.tentacle(function() return luact.offload(function() require("luact").util.sleep(0.2) end) end) end
    for i = 1, 4 do luact.event.wait(nil, ts[i]) end
  end
  busy.stop = true
  local _, _, _, b = luact.event.wait(nil, bw)
  tk:stop()
  local beats, late, worst = b.beats, b.late, b.worst
  luact.stop({ median = median, p99 = p99, beats = beats, late = late, worst_ms = worst * 1e3,
               c_beats = c.beats, c_late = c.late, c_worst_ms = c.worst * 1e3 })
end)
common.report("offload_roundtrip", { p50_us = r.median, p99_us = r.p99 }, { "p50_us", "p99_us" })
common.report("offload_loop_stalls_control", { beats = r.c_beats, gaps_over_2ms = r.c_late, worst_gap_ms = r.c_worst_ms },
  { "beats", "gaps_over_2ms", "worst_gap_ms" })
common.report("offload_loop_stalls", { beats = r.beats, gaps_over_2ms = r.late, worst_gap_ms = r.worst_ms },
  { "beats", "gaps_over_2ms", "worst_gap_ms" })
