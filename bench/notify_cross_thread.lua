-- notify_ throughput from thread 1 to thread 2 (see notify.lua).
arg = { [1] = "cross" }
dofile("bench/notify.lua")
