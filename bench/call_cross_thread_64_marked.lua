-- Cross-thread sync calls, 64 concurrent callers, the method marked for a per-method duration
-- histogram (see call_cross_thread.lua): against call_cross_thread_64, the metric's cost.
arg = { [1] = "64" }
BENCH_MARKED = true
dofile("bench/call_cross_thread.lua")
