-- Cross-node sync calls, one caller (see node_call.lua).
arg = { [1] = "1" }
dofile("bench/node_call.lua")
