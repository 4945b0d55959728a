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
    let vm = crate::vm::WorkerVm::new().map_err(|e| format!("thread {tid}: {e}"))?;
    vm.call("luact.runtime", "worker_main", tid, &rt.start_payload)
        .map_err(|e| format!("thread {tid}: {e}"))
}
