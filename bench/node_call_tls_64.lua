-- Cross-node sync calls, 64 concurrent callers, node links in mutual TLS (see node_call.lua).
arg = { [1] = "64", [2] = "tls" }
dofile("bench/node_call.lua")
