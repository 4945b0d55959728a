-- luact.thread: this VM's thread identity, a leaf module (it requires nothing). luact.runtime
-- fills `id` (1..n_core) when the thread starts and clears it when it stops. Modules below the
-- runtime read it here rather than requiring luact.runtime lazily from a hot function: the first
-- call of such a function runs `require`, a C function the JIT cannot compile, and if LuaJIT's
-- hot counter for that function runs out on exactly that call (its counters are shared slots, so
-- when depends on where the bytecode lies in memory), the function's root trace ends in a
-- stitch at `require`; every loop that calls the function then links to that trace and never
-- becomes a looping trace (spec/unit/jit_spec.lua failed that way about 1 run in 40).
return { id = nil }
