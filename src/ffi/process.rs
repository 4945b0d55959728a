//! Binding of what identifies this process and what it runs on: its machine id (a node's is its
//! address), its epoch (part of every actor id), blocks of actor local ids, random UUIDs, and
//! the pid and CPU count `luact.util` reports.
use super::guard;
use crate::status::{Error, Status};
use std::ffi::c_void;

/// This process's machine id: a running node's is its address (`ip << 16 | port`); otherwise
/// a random number above 2^48 (never a node's), fixed for the life of the process.
#[no_mangle]
pub extern "C" fn luact_machine_id() -> f64 {
    if let Some(node) = crate::runtime::current().and_then(|rt| rt.node.clone()) {
        return node.machine_id as f64;
    }
    process_machine_id() as f64
}

/// The id of a process without a node address (a node client's too): 2^48 + 20 random bits,
/// drawn once per process.
pub(super) fn process_machine_id() -> u64 {
    static ID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let r = *ID.get_or_init(|| {
        let mut v: u32 = 0;
        // SAFETY: getrandom writes at most 4 bytes into `v`.
        unsafe { libc::getrandom(&mut v as *mut u32 as *mut c_void, 4, 0) };
        v & 0x0f_ffff
    });
    (1u64 << 48) + r as u64
}

/// Writes a new random UUID (version 4, RFC 9562) as 36 ASCII bytes into `out`: the identity
/// a Raft storage directory gets when it is created (lua/luact/cluster/raft/identity.lua).
///
/// # Safety
/// `out` points to 36 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_uuid_v4(out: *mut u8) -> i32 {
    guard(|| {
        let text = uuid::Uuid::new_v4().hyphenated().to_string();
        let b = text.as_bytes();
        if b.len() != 36 {
            return Err(Error::new(Status::BadArgument, "uuid is not 36 bytes"));
        }
        // SAFETY: the caller provides 36 writable bytes at `out`, and `b` holds exactly 36.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), out, 36) };
        Ok(0)
    })
}

/// A random non-zero number fixed for the life of the process: part of every actor id, so an
/// id from an earlier run of a process never names an actor of a later one.
#[no_mangle]
pub extern "C" fn luact_epoch() -> u32 {
    static EPOCH: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| {
        let mut v: u32 = 0;
        while v == 0 {
            // SAFETY: getrandom writes at most 4 bytes into `v`.
            unsafe { libc::getrandom(&mut v as *mut u32 as *mut c_void, 4, 0) };
        }
        v
    })
}

/// Reserves `n` actor local ids, unique in this process; returns the first.
#[no_mangle]
pub extern "C" fn luact_id_block(n: u32) -> f64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed) as f64
}

/// This process's id.
#[no_mangle]
pub extern "C" fn luact_util_getpid() -> i32 {
    std::process::id() as i32
}

/// How many CPUs this process may run on (1 when the system cannot say).
#[no_mangle]
pub extern "C" fn luact_util_n_cpu() -> i32 {
    std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(1)
}
