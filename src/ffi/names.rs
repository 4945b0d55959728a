//! Binding of the name table (src/names.rs): the actors each name resolves to on this process,
//! which every thread reads (a call by name never crosses the network to look a name up) and
//! the cluster's registry mirrors into.
use super::{bytes, guard};
use crate::names::Address;
use crate::status::{Error, Status};

/// Adds an actor under a name: 0, or 1 when the name is taken, or a negative status.
///
/// # Safety
/// `vid` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_names_add(vid: *const u8, len: usize, addr: Address, multi: i32) -> i32 {
    // SAFETY: the caller's promise on `vid`.
    guard(|| crate::names::add(unsafe { bytes(vid, len) }, addr, multi != 0))
}

/// Writes the next actor of a name (round robin) to `out`; 0, or -1 when the name is unknown.
///
/// # Safety
/// `vid` points to `len` readable bytes; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_names_pick(vid: *const u8, len: usize, out: *mut Address) -> i32 {
    // SAFETY: the caller's promise on `vid`.
    guard(|| match crate::names::pick(unsafe { bytes(vid, len) }) {
        Some(a) if !out.is_null() => {
            // SAFETY: non-null and writable (the caller's promise).
            unsafe { *out = a };
            Ok(0)
        }
        _ => Ok(-1),
    })
}

/// Removes one actor of a name (`all` = 0) or the whole name; returns how many were removed.
///
/// # Safety
/// `vid` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_names_remove(vid: *const u8, len: usize, addr: Address, all: i32) -> i32 {
    // SAFETY: the caller's promise on `vid`.
    guard(|| Ok(crate::names::remove(unsafe { bytes(vid, len) }, if all != 0 { None } else { Some(addr) }) as i32))
}

/// Copies up to `max` actors of a name into `out`; returns how many the name has.
///
/// # Safety
/// `vid` points to `len` readable bytes; `out` is null or has room for `max` addresses.
#[no_mangle]
pub unsafe extern "C" fn luact_names_list(vid: *const u8, len: usize, out: *mut Address, max: i32) -> i32 {
    guard(|| {
        if out.is_null() || max < 0 {
            return Err(Error::new(Status::BadArgument, "no output array"));
        }
        // SAFETY: `out` is non-null with room for `max` (>= 0) addresses (the caller's promise).
        let out = unsafe { std::slice::from_raw_parts_mut(out, max as usize) };
        // SAFETY: the caller's promise on `vid`.
        Ok(crate::names::list(unsafe { bytes(vid, len) }, out) as i32)
    })
}

/// Replaces every actor of a name with the `n` addresses at `addrs` (none: removes the name);
/// the cluster mirrors its registry here. 0, or a negative status.
///
/// # Safety
/// `vid` points to `len` readable bytes; `addrs` to `n` addresses (may be null when n = 0).
#[no_mangle]
pub unsafe extern "C" fn luact_names_set(vid: *const u8, len: usize, addrs: *const Address, n: i32, multi: i32) -> i32 {
    guard(|| {
        let list: &[Address] = if n <= 0 || addrs.is_null() {
            &[]
        } else {
            // SAFETY: `addrs` is non-null and points to `n` (> 0) addresses (the caller's promise).
            unsafe { std::slice::from_raw_parts(addrs, n as usize) }
        };
        // SAFETY: the caller's promise on `vid`.
        crate::names::set(unsafe { bytes(vid, len) }, list, multi != 0)?;
        Ok(0)
    })
}

/// The name table's version: it grows with every change (a cached resolution stays right while
/// it is the same).
#[no_mangle]
pub extern "C" fn luact_names_version() -> f64 {
    crate::names::version() as f64
}

/// How many actors a name has now (0: unknown).
///
/// # Safety
/// `vid` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_names_count(vid: *const u8, len: usize) -> i32 {
    // SAFETY: the caller's promise on `vid`.
    guard(|| Ok(crate::names::count(unsafe { bytes(vid, len) }) as i32))
}
