-- Cross-node sync calls, one caller, node links in mutual TLS (see node_call.lua).
arg = { [1] = "1", [2] = "tls" }
dofile("bench/node_call.lua")
