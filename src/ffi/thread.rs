//! Binding of one thread's loop (`luact.loop`; `ThreadCtx` in src/runtime.rs): attaching the
//! calling thread to the run, the turn (one wait for completions plus one drain of the inbox),
//! the other threads' wait flags, and sending a batch of messages into a thread's inbox.
use super::{bytes, guard, guard_value, running, set_last_error};
use crate::ring::Completion;
use crate::runtime::ThreadCtx;
use crate::status::{Error, Status};

/// Creates the calling thread's loop context for thread `tid`; null on failure.
#[no_mangle]
pub extern "C" fn luact_thread_attach(tid: i32) -> *mut ThreadCtx {
    let mut ctx = std::ptr::null_mut();
    guard(|| {
        let rt = running()?;
        ctx = Box::into_raw(rt.attach(tid.max(0) as usize)?);
        Ok(0)
    });
    ctx
}

/// Closes a loop context (its ring, connections and sockets).
///
/// # Safety
/// `ctx` is null or came from `luact_thread_attach` on this thread, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn luact_thread_detach(ctx: *mut ThreadCtx) {
    if !ctx.is_null() {
        guard(|| {
            // SAFETY: `ctx` came from Box::into_raw in luact_thread_attach and is dropped once
            // (the caller's promise).
            drop(unsafe { Box::from_raw(ctx) });
            Ok(0)
        });
    }
}

/// What one turn of the loop found besides completions (`luact_turn_state_t` in lua/luact/ffi.lua).
#[repr(C)]
pub struct TurnState {
    /// Inbox entries drained into `ptrs`/`lens`.
    pub drained: i32,
    /// Connection events waiting for `luact_net_event`.
    pub events: i32,
    /// 1 once `luact.stop` was called (the loop should leave).
    pub stopping: i32,
    /// Monotonic seconds when the wait ended (the loop's clock for the turn that follows).
    pub now: f64,
}

/// One wait of the loop, in one call (from the loop's Lua a call costs more than the work of
/// most of what it does): `now` is the monotonic time the loop read for this turn (so the core
/// does not read the clock again); waits up to `timeout` seconds for work and writes up to `max`
/// completions to `out`; then moves up to `max_drain` inbox entries into the context's batch
/// and writes their addresses and lengths (valid until the next turn); and reports pending
/// connection events and the stop flag in `state`.
/// Returns the number of completions written, or a negative status.
///
/// # Safety
/// `ctx` is the calling thread's live context; `out` has room for `max` completions, `ptrs`
/// and `lens` for `max_drain` entries; `state` points to a writable `TurnState`.
#[no_mangle]
pub unsafe extern "C" fn luact_turn(
    ctx: *mut ThreadCtx,
    now: f64,
    timeout: f64,
    out: *mut Completion,
    max: i32,
    ptrs: *mut *const u8,
    lens: *mut usize,
    max_drain: i32,
    state: *mut TurnState,
) -> i32 {
    guard(|| {
        // SAFETY: `ctx` is null or the calling thread's live context (the caller's promise).
        let ctx = unsafe { super::ctx_mut(ctx) }?;
        // SAFETY: `state` is null or writable (the caller's promise).
        let state = unsafe { state.as_mut() }.ok_or_else(|| Error::new(Status::BadArgument, "null turn state"))?;
        if out.is_null() || max < 1 || ptrs.is_null() || lens.is_null() || max_drain < 1 {
            return Err(Error::new(Status::BadArgument, "no completion or inbox buffer"));
        }
        // SAFETY: `out` is non-null with room for `max` (>= 1) completions (the caller's promise).
        let out = unsafe { std::slice::from_raw_parts_mut(out, max as usize) };
        let n = ctx.poll(now, timeout, out)?;
        let drained = ctx.drain(max_drain as usize);
        for (i, m) in ctx.batch.iter().enumerate() {
            // SAFETY: `drain` took at most `max_drain` entries, and `ptrs`/`lens` are non-null
            // with room for `max_drain` each (the caller's promise).
            unsafe {
                *ptrs.add(i) = m.as_ptr();
                *lens.add(i) = m.len();
            }
        }
        state.drained = drained as i32;
        state.events = ctx.transport.pending_events().min(i32::MAX as usize) as i32;
        state.stopping = ctx.runtime.is_stopping() as i32;
        state.now = ctx.polled_at;
        Ok(n as i32)
    })
}

/// The threads' wait flags (see `runtime::WaitFlag`): thread `tid`'s is the u32 at
/// `flags[(tid - 1) * stride]`, 1 while it waits for work. Valid until the runtime finishes
/// (after every thread has detached). Lua reads them with plain loads: a stale value only
/// changes when a batch is pushed, never what is delivered.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `stride` is null or points to a
/// writable i32.
#[no_mangle]
pub unsafe extern "C" fn luact_wait_flags(ctx: *const ThreadCtx, stride: *mut i32) -> *const u32 {
    guard_value(std::ptr::null(), || {
        // SAFETY: both are null or valid for the call (the caller's promise).
        let (Some(ctx), Some(stride)) = (unsafe { ctx.as_ref() }, unsafe { stride.as_mut() }) else {
            set_last_error("null context or stride");
            return std::ptr::null();
        };
        *stride = crate::runtime::WAIT_FLAG_STRIDE as i32;
        ctx.runtime.waiting.as_ptr() as *const u32
    })
}

/// Copies `len` bytes holding `count` messages into the inbox of thread `tid`; `Full` when
/// they would take it over capacity (nothing was queued then).
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_send(ctx: *const ThreadCtx, tid: i32, msg: *const u8, len: usize, count: i32) -> i32 {
    guard(|| {
        // SAFETY: `ctx` is null or the calling thread's live context (the caller's promise).
        let ctx = unsafe { ctx.as_ref() }.ok_or_else(|| Error::new(Status::BadArgument, "null context"))?;
        let inbox = ctx
            .runtime
            .inbox(tid.max(0) as usize)
            .ok_or_else(|| Error::new(Status::BadArgument, format!("no thread {tid}")))?;
        if count < 1 {
            return Err(Error::new(Status::BadArgument, "a batch holds at least one message"));
        }
        // SAFETY: `msg` points to `len` readable bytes (the caller's promise).
        Ok(inbox.push_batch(unsafe { bytes(msg, len) }, count as usize).code())
    })
}
