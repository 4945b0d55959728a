-- Cross-thread sync calls, one caller (see call_cross_thread.lua).
arg = { [1] = "1" }
dofile("bench/call_cross_thread.lua")
