//! Manual memory for the Lua layer (`luact.memory`): malloc-family allocation with a count of live
//! blocks, so metrics can report what Lua code holds outside the GC.
use std::sync::atomic::{AtomicI64, Ordering};

/// Blocks currently allocated through this module (not yet freed).
pub static LIVE_ALLOCATIONS: AtomicI64 = AtomicI64::new(0);

pub fn alloc(size: usize) -> *mut u8 {
    // SAFETY: malloc has no preconditions; a null result is returned to the caller as is.
    let p = unsafe { libc::malloc(size.max(1)) } as *mut u8;
    if !p.is_null() {
        LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
    p
}

/// # Safety
/// `p` is null or was returned by `alloc`/`realloc` and not freed since.
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    let q = libc::realloc(p as *mut _, size.max(1)) as *mut u8;
    if p.is_null() && !q.is_null() {
        LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
    q
}

/// # Safety
/// `p` is null or was returned by `alloc`/`realloc` and not freed since.
pub unsafe fn free(p: *mut u8) {
    if !p.is_null() {
        LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
        libc::free(p as *mut _);
    }
}
