//! Binding of the offload pool (`luact.offload`; src/offload.rs): a loop thread submits a task
//! and reads the pool's counters; a pool thread takes the next task and replies into the
//! caller's inbox.
use super::{bytes, ctx_mut, guard};
use crate::runtime::ThreadCtx;
use crate::status::{Error, Status};

/// Queues a task (bytes encoded by lua/luact/offload.lua) for the run's offload pool, starting
/// it with `size` threads (growing up to `max` past stuck ones) if it is not running yet.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `task` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_offload_submit(ctx: *mut ThreadCtx, size: i32, max: i32, task: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        if len > i32::MAX as usize {
            return Err(Error::new(Status::BadArgument, "an offload task is at most 2 GiB"));
        }
        let pool = ctx.runtime.offload_pool(size.max(1) as usize, max.max(1) as usize)?;
        // SAFETY: the caller's promise on `task`.
        pool.submit(unsafe { bytes(task, len) })?;
        Ok(0)
    })
}

/// Writes the offload pool's counters into `out[0..6]`: threads, max threads, busy, stuck,
/// queued, grown (all 0 before the run's first offload).
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `out` is null or points to 6 writable
/// u64.
#[no_mangle]
pub unsafe extern "C" fn luact_offload_stats(ctx: *mut ThreadCtx, out: *mut u64) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        if out.is_null() {
            return Err(Error::new(Status::BadArgument, "null out"));
        }
        let v = match ctx.runtime.offload_pool_if_started() {
            Some(p) => {
                let s = p.stats();
                [s.threads, s.max, s.busy, s.stuck, s.queued, s.grown]
            }
            None => [0; 6],
        };
        for (i, x) in v.iter().enumerate() {
            // SAFETY: the caller gives 6 writable u64 at `out` (checked non-null above).
            unsafe { *out.add(i) = *x as u64 };
        }
        Ok(0)
    })
}

/// On a pool thread: blocks until the next task, points `*out` at its bytes (valid until the
/// next call) and returns its length; -1 once the pool stops; a status below -1 on error.
///
/// # Safety
/// `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_offload_take(out: *mut *const u8) -> i32 {
    guard(|| match crate::offload::take_task()? {
        Some((p, len)) if !out.is_null() => {
            // SAFETY: non-null and writable (the caller's promise).
            unsafe { *out = p };
            Ok(len as i32)
        }
        _ => Ok(-1),
    })
}

/// On a pool thread: pushes one luact message into thread `tid`'s inbox (`Full`: try again).
///
/// # Safety
/// `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_offload_reply(tid: i32, msg: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's promise on `msg`.
    guard(|| Ok(crate::offload::reply(tid.max(0) as usize, unsafe { bytes(msg, len) })?.code()))
}
