-- A started two-thread node with one actor and nothing to do (bench/idle_cpu.sh measures it).
local luact = require "bench.common" and require "luact"
luact.start({ n_core = 2 }, function()
  local luact = require "luact"
  luact({ hoge = function() end })
  if luact.thread_id == 1 then
    luact.clock.sleep(30)
    luact.stop()
  end
end)
