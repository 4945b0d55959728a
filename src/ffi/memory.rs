//! Binding of memory (src/memory.rs): the allocator behind the buffers Lua hands to the core and
//! gets back from it (counted, for `luact.memory`), and the byte helpers Lua uses on raw buffers
//! (compare, move, fill, find).
use super::{bytes, guard_value};

/// `size` bytes from the core's allocator (free them with `luact_free`); null when out of memory.
#[no_mangle]
pub extern "C" fn luact_alloc(size: usize) -> *mut u8 {
    guard_value(std::ptr::null_mut(), || crate::memory::alloc(size))
}

/// Resizes a block of `luact_alloc` to `size` bytes (its bytes kept up to the smaller size).
///
/// # Safety
/// `p` is null or came from `luact_alloc`/`luact_realloc` and was not freed.
#[no_mangle]
pub unsafe extern "C" fn luact_realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: the caller's promise on `p`, which is what memory::realloc asks.
    guard_value(std::ptr::null_mut(), || unsafe { crate::memory::realloc(p, size) })
}

/// Frees a block of `luact_alloc`/`luact_realloc` (null: nothing).
///
/// # Safety
/// `p` is null or came from `luact_alloc`/`luact_realloc` and was not freed.
#[no_mangle]
pub unsafe extern "C" fn luact_free(p: *mut u8) {
    // SAFETY: the caller's promise on `p`, which is what memory::free asks.
    guard_value((), || unsafe { crate::memory::free(p) })
}

/// Blocks of `luact_alloc` not freed yet.
#[no_mangle]
pub extern "C" fn luact_memory_live_allocations() -> i64 {
    crate::memory::LIVE_ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// 1 when the first `size` bytes of `p` and `q` are equal.
///
/// # Safety
/// `p` and `q` point to at least `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_memory_equal(p: *const u8, q: *const u8, size: usize) -> i32 {
    // SAFETY: the caller's promise on `p` and `q`.
    guard_value(0, || (unsafe { bytes(p, size) } == unsafe { bytes(q, size) }) as i32)
}

/// Copies `size` bytes from `src` to `dst`; the regions may overlap.
///
/// # Safety
/// `src` has `size` readable bytes, `dst` has `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_memory_move(dst: *mut u8, src: *const u8, size: usize) {
    if size > 0 && !dst.is_null() && !src.is_null() {
        // SAFETY: both non-null with `size` bytes (the caller's promise); ptr::copy allows overlap.
        unsafe { std::ptr::copy(src, dst, size) };
    }
}

/// Sets `size` bytes at `dst` to `byte`.
///
/// # Safety
/// `dst` has `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_memory_fill(dst: *mut u8, byte: i32, size: usize) {
    if size > 0 && !dst.is_null() {
        // SAFETY: non-null with `size` writable bytes (the caller's promise).
        unsafe { std::ptr::write_bytes(dst, byte as u8, size) };
    }
}

/// The offset of the first `needle` in `len` bytes at `p`, or -1 (a double: no boxed int64 in Lua).
///
/// # Safety
/// `p` points to `len` readable bytes, `needle` to `nlen`.
#[no_mangle]
pub unsafe extern "C" fn luact_memory_find(p: *const u8, len: usize, needle: *const u8, nlen: usize) -> f64 {
    guard_value(-1.0, || {
        // SAFETY: the caller's promise on `p` and `needle`.
        let (hay, needle) = unsafe { (bytes(p, len), bytes(needle, nlen)) };
        if needle.is_empty() {
            return 0.0;
        }
        memchr::memmem::find(hay, needle).map(|i| i as f64).unwrap_or(-1.0)
    })
}
