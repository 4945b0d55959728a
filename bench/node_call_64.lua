-- Cross-node sync calls, 64 concurrent callers (see node_call.lua).
arg = { [1] = "64" }
dofile("bench/node_call.lua")
