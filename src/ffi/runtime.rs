//! Binding of a run (src/runtime.rs): `luact.start` starts it (with the node options when the
//! process is a node), `luact.stop` and a failing thread stop it, thread 1 joins the others,
//! takes what the run hands back and forgets it.
use super::{bytes, guard, guard_value, running, utf8};
use crate::runtime::{self, Options};
use crate::status::{Error, Status};
use crate::transport::NodeConfig;

/// Node options of `luact_runtime_start` (`luact_node_options_t` in lua/luact/ffi.lua).
#[repr(C)]
pub struct NodeOptions {
    pub addr: *const u8,
    pub addr_len: usize,
    pub secret: *const u8,
    pub secret_len: usize,
    pub cluster: *const u8,
    pub cluster_len: usize,
    pub max_frame: u32,
    /// Node link TLS (`opts.tls`): PEM paths, all three null for plain links.
    pub tls_cert: *const u8,
    pub tls_cert_len: usize,
    pub tls_key: *const u8,
    pub tls_key_len: usize,
    pub tls_ca: *const u8,
    pub tls_ca_len: usize,
}

/// Starts a run of `n_core` threads (the caller is thread 1; threads 2..n start here), each
/// inbox holding `inbox_capacity` entries, each thread spinning up to `spin_seconds` (at most
/// 0.01) before it sleeps; `payload` is what every worker VM receives (opaque to the core);
/// `node` (null: not a node) makes this process a node. 0, or a negative status.
///
/// # Safety
/// `payload` points to `payload_len` readable bytes; `node` is null or points to a
/// `luact_node_options_t` whose byte fields each point to their length of readable bytes (the
/// three TLS paths all null or all set). All stay valid for the call.
#[no_mangle]
pub unsafe extern "C" fn luact_runtime_start(
    n_core: i32,
    inbox_capacity: i32,
    spin_seconds: f64,
    payload: *const u8,
    payload_len: usize,
    node: *const NodeOptions,
) -> i32 {
    guard(|| {
        if n_core < 1 || inbox_capacity < 1 || !(spin_seconds >= 0.0) {
            return Err(Error::new(Status::BadArgument, "bad start options"));
        }
        // SAFETY: `node` is null or points to a NodeOptions valid for the call (the caller's
        // promise).
        let node = match unsafe { node.as_ref() } {
            None => None,
            // SAFETY: its byte fields point to their lengths of readable bytes (the caller's promise).
            Some(n) => Some(unsafe { node_config(n) }?),
        };
        let options = Options {
            n_core: n_core as usize,
            inbox_capacity: inbox_capacity as usize,
            spin: spin_seconds.min(0.01),
            ring_entries: 256,
        };
        // SAFETY: `payload` points to `payload_len` readable bytes (the caller's promise).
        let payload = unsafe { bytes(payload, payload_len) }.to_vec();
        runtime::start(options, node, payload)?;
        Ok(0)
    })
}

/// The node's identity and link settings from `luact.start`'s options.
///
/// # Safety
/// Each byte field of `n` is null or points to its length of readable bytes, valid for the call.
unsafe fn node_config(n: &NodeOptions) -> Result<NodeConfig, Error> {
    // SAFETY: the caller's promise on n's fields (so for each `bytes`/`utf8` below).
    let addr = std::str::from_utf8(unsafe { bytes(n.addr, n.addr_len) })
        .map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?
        .to_string();
    // SAFETY: as above.
    let cluster = String::from_utf8_lossy(unsafe { bytes(n.cluster, n.cluster_len) }).into_owned();
    // node link TLS: the three paths together, or none (Lua checked the option)
    let tls = if n.tls_cert.is_null() {
        None
    } else {
        // SAFETY: as above.
        let (cert, key, ca) = unsafe { (utf8(n.tls_cert, n.tls_cert_len)?, utf8(n.tls_key, n.tls_key_len)?, utf8(n.tls_ca, n.tls_ca_len)?) };
        let loaded = crate::node_tls::NodeTls::load(cert, key, ca, &addr).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
        Some(loaded)
    };
    // no address: a node client (dials nodes, never listens; see `NodeConfig::is_client`)
    let machine_id = if addr.is_empty() { super::process::process_machine_id() } else { crate::transport::machine_id_of(&addr)? };
    Ok(NodeConfig {
        tls,
        client_token: if addr.is_empty() { super::process::process_client_token() } else { 0 },
        machine_id,
        addr,
        // SAFETY: as above.
        secret: unsafe { bytes(n.secret, n.secret_len) }.to_vec(),
        cluster,
        max_frame: if n.max_frame == 0 { 16 << 20 } else { n.max_frame as usize },
    })
}

/// Stops every thread's loop; the first payload is what `luact.start` returns.
///
/// # Safety
/// `payload` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_runtime_stop(payload: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `payload`.
        running()?.stop(unsafe { bytes(payload, len) });
        Ok(0)
    })
}

/// Records an error (a thread's main failed) and stops every thread.
///
/// # Safety
/// `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_runtime_fail(msg: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `msg`.
        running()?.fail(unsafe { bytes(msg, len) });
        Ok(0)
    })
}

/// Waits up to `timeout` seconds for threads 2..n; returns how many did not finish.
#[no_mangle]
pub extern "C" fn luact_runtime_join(timeout: f64) -> i32 {
    guard(|| Ok(running()?.join(timeout) as i32))
}

/// Copies the stop payload (`which` = 0) or the first error (`which` = 1) into a buffer the
/// caller frees with `luact_free`; returns its length, or -1 when there is none.
///
/// # Safety
/// `out` points to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn luact_runtime_take(which: i32, out: *mut *mut u8) -> i64 {
    guard_value(-1, || {
        let Some(rt) = runtime::current() else { return -1 };
        let value = if which == 0 { rt.result() } else { rt.error() };
        let Some(value) = value else { return -1 };
        let p = crate::memory::alloc(value.len());
        if p.is_null() {
            return -1;
        }
        // SAFETY: `p` has room for value.len() bytes (just allocated, not shared); `out` is a
        // writable out-pointer (the caller's promise).
        unsafe {
            std::ptr::copy_nonoverlapping(value.as_ptr(), p, value.len());
            *out = p;
        }
        value.len() as i64
    })
}

/// Forgets the finished runtime so `start` can be called again.
#[no_mangle]
pub extern "C" fn luact_runtime_finish() -> i32 {
    guard(|| {
        runtime::finish();
        Ok(0)
    })
}
