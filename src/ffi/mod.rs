//! The C surface of the core: every function LuaJIT's FFI calls, declared again in
//! `lua/luact/ffi.lua` (keep the two in step), one file per Lua-visible concept, as mlua splits
//! its bindings:
//!
//! - `runtime.rs`: a run (`luact.start`, `luact.stop`, a thread's failure, the join)
//! - `thread.rs`: one thread's loop (attach, the turn, sends into inboxes, the wait flags)
//! - `transport.rs`: node links and listeners (`luact_net_*`)
//! - `sockets.rs`: user sockets, stream and UDP (`luact.socket`)
//! - `offload.rs`: the offload pool (`luact.offload`)
//! - `names.rs`: the name table (actors reached by name)
//! - `lease.rs`: this node's lease on its virtual actors
//! - `process.rs`: ids (machine id, epoch, actor id blocks, UUIDs), the pid, the CPU count
//! - `clock.rs`: the clocks and a blocking sleep
//! - `memory.rs`: the allocator and the byte helpers Lua uses on raw buffers
//! - `logger.rs`: log lines, level, format, redirect
//! - `metrics.rs`: the metric blocks, the scrape text, the stall watchdog
//!
//! This file holds what they share: the panic guard, the last error, and reading arguments.
//! Each entry point that can fail runs under `guard` (errors become a negative `Status` code,
//! the message goes to `luact_last_error`) or `guard_value`; a panic never crosses out of one
//! (it becomes `Status::Panic`). The few without a guard do nothing that can panic (an atomic,
//! a clock read, a pointer copy). None of them calls back into Lua. The binding layer is the
//! top of the crate: no other module imports it.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::missing_safety_doc, clippy::undocumented_unsafe_blocks)]

mod clock;
mod lease;
mod logger;
mod memory;
mod metrics;
mod names;
mod offload;
mod process;
mod runtime;
mod sockets;
mod thread;
mod transport;

use crate::runtime::{Runtime, ThreadCtx};
use crate::status::{Error, Status};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn set_last_error(msg: impl AsRef<[u8]>) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.extend_from_slice(msg.as_ref());
    });
}

/// Runs `f`, mapping an `Err` or a panic to a negative status code.
fn guard(f: impl FnOnce() -> Result<i32, Error>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            set_last_error(e.to_string());
            e.status().code()
        }
        Err(panic) => {
            set_last_error(format!("panic: {}", crate::util::panic_message(&panic)));
            Status::Panic.code()
        }
    }
}

/// Like `guard` for functions that return a value instead of a status.
fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        set_last_error(format!("panic: {}", crate::util::panic_message(&panic)));
        fallback
    })
}

/// The bytes at `ptr` (none when it is null or `len` is 0).
///
/// # Safety
/// `ptr` is null (then `len` is ignored) or points to `len` readable bytes that stay valid for
/// the duration of the call: the Lua side passes Lua strings or buffers it keeps alive.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: non-null and `len` readable bytes that outlive the call (the caller's promise).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// `bytes` as UTF-8 text (paths, PEM files, names), or BadArgument.
///
/// # Safety
/// As `bytes`.
unsafe fn utf8<'a>(ptr: *const u8, len: usize) -> Result<&'a str, Error> {
    // SAFETY: the caller's promise, passed on.
    std::str::from_utf8(unsafe { bytes(ptr, len) }).map_err(|_| Error::new(Status::BadArgument, "not UTF-8"))
}

/// The running runtime, or NotRunning.
fn running() -> Result<Arc<Runtime>, Error> {
    crate::runtime::current().ok_or_else(|| Error::new(Status::NotRunning, "luact is not running"))
}

/// The thread's loop context behind `ctx`, or BadArgument when it is null.
///
/// # Safety
/// `ctx` is null or the calling thread's live context (from `luact_thread_attach`, not yet
/// detached), and nothing else holds a reference to it during the call: each VM has its own
/// context and calls into the core one call at a time.
unsafe fn ctx_mut<'a>(ctx: *mut ThreadCtx) -> Result<&'a mut ThreadCtx, Error> {
    // SAFETY: the caller's promise above.
    unsafe { ctx.as_mut() }.ok_or_else(|| Error::new(Status::BadArgument, "null context"))
}

/// The message of the last failure on this thread; `*len` receives its length. The bytes stay
/// valid until the next failing call into the core on this thread.
///
/// # Safety
/// `len` is null or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn luact_last_error(len: *mut usize) -> *const u8 {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        if !len.is_null() {
            // SAFETY: non-null and writable (the caller's promise).
            unsafe { *len = e.len() };
        }
        e.as_ptr()
    })
}
