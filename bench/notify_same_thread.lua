-- notify_ throughput on one thread (see notify.lua).
arg = { [1] = "same" }
dofile("bench/notify.lua")
