//! The body of threads 2..n: create a LuaJIT VM on this OS thread, give it the Lua layer, run
//! the loop (`luact.runtime`'s worker entry), report any failure, and signal completion.
use crate::runtime::Runtime;
use std::sync::Arc;

pub fn run(rt: Arc<Runtime>, tid: usize) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_vm(&rt, tid)));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => rt.fail(msg.as_bytes()),
        Err(panic) => rt.fail(format!("thread {tid}: panic in the core: {}", crate::ffi::panic_message(&panic)).as_bytes()),
    }
    rt.worker_finished();
}

fn run_vm(rt: &Arc<Runtime>, tid: usize) -> Result<(), String> {
    // SAFETY: the worker VM must load `ffi` (the loop talks to the core through LuaJIT FFI),
    // which mlua's safe mode refuses. The VM is created, used and dropped on this thread only.
    let lua = unsafe { mlua::Lua::unsafe_new() };
    let run = || -> mlua::Result<()> {
        crate::vm::install_preloads(&lua)?;
        let require: mlua::Function = lua.globals().get("require")?;
        let runtime: mlua::Table = require.call("luact.runtime")?;
        let main: mlua::Function = runtime.get("worker_main")?;
        let payload = lua.create_string(&rt.start_payload)?;
        main.call::<()>((tid, payload))
    };
    run().map_err(|e| format!("thread {tid}: {e}"))
}
