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

/// 8 random bytes from the kernel (0 if it has none to give: then ids collide only as often as
/// a 0 is drawn twice, which the node's duplicate check still catches).
fn random_u64() -> u64 {
    let mut v: u64 = 0;
    // SAFETY: getrandom writes at most 8 bytes into `v`.
    unsafe { libc::getrandom(&mut v as *mut u64 as *mut c_void, 8, 0) };
    v
}

/// Random bits in the id of a process without a node address: ids run from 2^48 (above every
/// address id, `ip << 16 | port`) to below 2^48 + 2^52 < 2^53, so they stay exact doubles.
const CLIENT_ID_BITS: u32 = 52;

/// The id of a process without a node address (a node client's too): 2^48 + 52 random bits,
/// drawn once per process. Two node clients of one node drawing the same id (about 1 in 4.5e15
/// for a pair) are told apart by their token (`process_client_token`): the node refuses the
/// second while the first is connected. `LUACT_TEST_CLIENT_ID=n` (a test hook: the specs make
/// two clients collide with it) fixes the random part to n.
pub(super) fn process_machine_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let r = *ID.get_or_init(|| {
        let forced = std::env::var("LUACT_TEST_CLIENT_ID").ok().and_then(|v| v.parse::<u64>().ok());
        forced.unwrap_or_else(random_u64) & ((1u64 << CLIENT_ID_BITS) - 1)
    });
    (1u64 << 48) + r
}

/// This process's token as a node client: random, drawn once per process, sent in its HELLO
/// (the address field, which a client has no other use for) so that a node can tell the same
/// client dialing again from another one that drew the same id.
pub(super) fn process_client_token() -> u64 {
    static TOKEN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TOKEN.get_or_init(random_u64)
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
