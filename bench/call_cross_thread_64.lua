-- Cross-thread sync calls, 64 concurrent callers (see call_cross_thread.lua).
arg = { [1] = "64" }
dofile("bench/call_cross_thread.lua")
