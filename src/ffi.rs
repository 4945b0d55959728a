//! The whole C surface of the core: every function LuaJIT's FFI calls, declared again in
//! `lua/luact/ffi.lua` (keep the two in step). Each entry point catches panics and turns errors
//! into a `Status` code; the message of the last failure on this thread is in
//! `luact_last_error`. None of them calls back into Lua.
use crate::listen_limits::{ListenLimits, ListenStats};
use crate::names::Address;
use crate::ring::Completion;
use crate::runtime::{self, Options, ThreadCtx};
use crate::transport::{ListenerKind, NetEvent, NodeConfig};
use crate::status::{Error, Status};
use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

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
pub(crate) fn guard(f: impl FnOnce() -> Result<i32, Error>) -> i32 {
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
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        set_last_error(format!("panic: {}", crate::util::panic_message(&panic)));
        fallback
    })
}

/// # Safety
/// `ptr` is null (then `len` is ignored) or points to `len` readable bytes that stay valid for
/// the duration of the call: the Lua side passes Lua strings or buffers it keeps alive.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

/// `bytes` as UTF-8 text (paths, PEM files, names), or BadArgument.
///
/// # Safety
/// As `bytes`.
unsafe fn utf8<'a>(ptr: *const u8, len: usize) -> std::result::Result<&'a str, Error> {
    std::str::from_utf8(bytes(ptr, len)).map_err(|_| Error::new(Status::BadArgument, "not UTF-8"))
}

fn running() -> Result<std::sync::Arc<runtime::Runtime>, Error> {
    runtime::current().ok_or_else(|| Error::new(Status::NotRunning, "luact is not running"))
}

// ---- errors -------------------------------------------------------------------------------

/// The message of the last failure on this thread; `*len` receives its length.
#[no_mangle]
pub unsafe extern "C" fn luact_last_error(len: *mut usize) -> *const u8 {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        if !len.is_null() {
            *len = e.len();
        }
        e.as_ptr()
    })
}

// ---- runtime ------------------------------------------------------------------------------

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
        // SAFETY: `node` is null or points to a NodeOptions whose byte fields are valid for the
        // call (Lua keeps the strings alive).
        let node = match node.as_ref() {
            None => None,
            Some(n) => {
                let addr = std::str::from_utf8(bytes(n.addr, n.addr_len))
                    .map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?
                    .to_string();
                let cluster = String::from_utf8_lossy(bytes(n.cluster, n.cluster_len)).into_owned();
                // node link TLS: the three paths together, or none (Lua checked the option)
                let tls = if n.tls_cert.is_null() {
                    None
                } else {
                    let (cert, key, ca) = (utf8(n.tls_cert, n.tls_cert_len)?, utf8(n.tls_key, n.tls_key_len)?, utf8(n.tls_ca, n.tls_ca_len)?);
                    let loaded = crate::node_tls::NodeTls::load(cert, key, ca, &addr).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
                    Some(loaded)
                };
                // no address: a node client (dials nodes, never listens; see `NodeConfig::is_client`)
                let machine_id = if addr.is_empty() { process_machine_id() } else { crate::transport::machine_id_of(&addr)? };
                Some(NodeConfig {
                    tls,
                    machine_id,
                    addr,
                    secret: bytes(n.secret, n.secret_len).to_vec(),
                    cluster,
                    max_frame: if n.max_frame == 0 { 16 << 20 } else { n.max_frame as usize },
                })
            }
        };
        let options = Options {
            n_core: n_core as usize,
            inbox_capacity: inbox_capacity as usize,
            spin: spin_seconds.min(0.01),
            ring_entries: 256,
        };
        runtime::start(options, node, bytes(payload, payload_len).to_vec())?;
        Ok(0)
    })
}

/// Stops every thread's loop; the first payload is what `luact.start` returns.
#[no_mangle]
pub unsafe extern "C" fn luact_runtime_stop(payload: *const u8, len: usize) -> i32 {
    guard(|| {
        running()?.stop(bytes(payload, len));
        Ok(0)
    })
}

/// Records an error (a thread's main failed) and stops every thread.
#[no_mangle]
pub unsafe extern "C" fn luact_runtime_fail(msg: *const u8, len: usize) -> i32 {
    guard(|| {
        running()?.fail(bytes(msg, len));
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
        // SAFETY: `p` has room for value.len() bytes; `out` is a valid out-pointer from Lua.
        std::ptr::copy_nonoverlapping(value.as_ptr(), p, value.len());
        *out = p;
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

// ---- threads ------------------------------------------------------------------------------

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

/// # Safety
/// `ctx` came from `luact_thread_attach` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn luact_thread_detach(ctx: *mut ThreadCtx) {
    if !ctx.is_null() {
        guard(|| {
            drop(Box::from_raw(ctx));
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
        let ctx = ctx.as_mut().ok_or_else(|| Error::new(Status::BadArgument, "null context"))?;
        let state = state.as_mut().ok_or_else(|| Error::new(Status::BadArgument, "null turn state"))?;
        if out.is_null() || max < 1 || ptrs.is_null() || lens.is_null() || max_drain < 1 {
            return Err(Error::new(Status::BadArgument, "no completion or inbox buffer"));
        }
        let out = std::slice::from_raw_parts_mut(out, max as usize);
        let n = ctx.poll(now, timeout, out)?;
        let drained = ctx.drain(max_drain as usize);
        for (i, m) in ctx.batch.iter().enumerate() {
            *ptrs.add(i) = m.as_ptr();
            *lens.add(i) = m.len();
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
/// `ctx` is the calling thread's live context; `stride` points to a writable i32.
#[no_mangle]
pub unsafe extern "C" fn luact_wait_flags(ctx: *const ThreadCtx, stride: *mut i32) -> *const u32 {
    guard_value(std::ptr::null(), || {
        let (Some(ctx), Some(stride)) = (ctx.as_ref(), stride.as_mut()) else {
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
/// `ctx` is the calling thread's live context; `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_send(ctx: *const ThreadCtx, tid: i32, msg: *const u8, len: usize, count: i32) -> i32 {
    guard(|| {
        let ctx = ctx.as_ref().ok_or_else(|| Error::new(Status::BadArgument, "null context"))?;
        let inbox = ctx
            .runtime
            .inbox(tid.max(0) as usize)
            .ok_or_else(|| Error::new(Status::BadArgument, format!("no thread {tid}")))?;
        if count < 1 {
            return Err(Error::new(Status::BadArgument, "a batch holds at least one message"));
        }
        Ok(inbox.push_batch(bytes(msg, len), count as usize).code())
    })
}

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

// ---- network ------------------------------------------------------------------------------

fn ctx_mut<'a>(ctx: *mut ThreadCtx) -> Result<&'a mut ThreadCtx, Error> {
    // SAFETY: Lua passes the calling thread's live context (kept until detach), or null.
    unsafe { ctx.as_mut() }.ok_or_else(|| Error::new(Status::BadArgument, "null context"))
}

/// Listens on `addr` ("ip:port") with `kind` 0 = node, 1 = tcp, 2 = http, 3 = udp; returns the
/// port. `limits` (null: the defaults) bounds the listener's clients (src/listen_limits.rs);
/// `reuse_port` non-zero sets SO_REUSEPORT (a listener on every thread: `threads = "all"`).
///
/// # Safety
/// `addr` points to `len` readable bytes; `limits` is null or points to a luact_listen_limits_t.
#[no_mangle]
pub unsafe extern "C" fn luact_net_listen(ctx: *mut ThreadCtx, addr: *const u8, len: usize, kind: i32, limits: *const ListenLimits, reuse_port: i32) -> i32 {
    guard(|| {
        // SAFETY: `limits` is null or points to a luact_listen_limits_t (the caller's promise).
        let limits = ListenLimits::or_defaults(unsafe { limits.as_ref() });
        let ctx = ctx_mut(ctx)?;
        let addr = std::str::from_utf8(bytes(addr, len)).map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?;
        let kind = match kind {
            0 => ListenerKind::Node,
            1 => ListenerKind::Tcp,
            2 => ListenerKind::Http,
            3 => ListenerKind::Udp,
            _ => return Err(Error::new(Status::BadArgument, "unknown listener kind")),
        };
        Ok(ctx.transport.listen(&mut ctx.ring, addr, kind, limits, reuse_port != 0)? as i32)
    })
}

/// Listens on `addr` with TLS (the tcp:// protocol inside it); `ca` (may be empty) requires
/// client certificates signed by it; `reuse_port` as luact_net_listen. Returns the port.
///
/// # Safety
/// Every pointer points to its length of readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_listen_tls(
    ctx: *mut ThreadCtx,
    addr: *const u8, addr_len: usize,
    cert: *const u8, cert_len: usize,
    key: *const u8, key_len: usize,
    ca: *const u8, ca_len: usize,
    limits: *const ListenLimits,
    reuse_port: i32,
) -> i32 {
    guard(|| {
        // SAFETY: `limits` is null or points to a luact_listen_limits_t (the caller's promise).
        let limits = ListenLimits::or_defaults(unsafe { limits.as_ref() });
        let ctx = ctx_mut(ctx)?;
        let (addr, cert, key, ca) = (utf8(addr, addr_len)?, utf8(cert, cert_len)?, utf8(key, key_len)?, utf8(ca, ca_len)?);
        let ca = if ca.is_empty() { None } else { Some(ca) };
        Ok(ctx.transport.listen_tls(&mut ctx.ring, addr, cert, key, ca, limits, reuse_port != 0)? as i32)
    })
}

/// A TLS client profile trusting `ca`, presenting `cert`/`key` when both are given; returns its
/// id for `luact_net_call`.
///
/// # Safety
/// Every pointer points to its length of readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_tls_client(
    ctx: *mut ThreadCtx,
    ca: *const u8, ca_len: usize,
    cert: *const u8, cert_len: usize,
    key: *const u8, key_len: usize,
) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let (ca, cert, key) = (utf8(ca, ca_len)?, utf8(cert, cert_len)?, utf8(key, key_len)?);
        let pair = if cert.is_empty() || key.is_empty() { None } else { Some((cert, key)) };
        Ok(ctx.transport.add_client_tls(ca, pair)? as i32)
    })
}

/// Sends a luact message to thread `thread` of node `machine` (dialing it if needed).
///
/// # Safety
/// `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_send(ctx: *mut ThreadCtx, machine: f64, thread: i32, msg: *const u8, len: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let now = crate::clock::monotonic();
        ctx.transport.send_node(&mut ctx.ring, machine as u64, thread.clamp(0, 65535) as u16, bytes(msg, len), now)?;
        Ok(0)
    })
}

/// Closes this thread's connections to and from node `machine` (the cluster declared it dead);
/// returns how many were closed. Each raises a node-down event, as a lost connection does.
///
/// # Safety
/// `ctx` is the calling thread's live context.
#[no_mangle]
pub unsafe extern "C" fn luact_net_drop(ctx: *mut ThreadCtx, machine: f64) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        Ok(ctx.transport.drop_machine(machine as u64, "the cluster declared this node dead") as i32)
    })
}

/// Sends a call (corr > 0) or a notify (corr = 0) to the listener at `addr`, through TLS profile
/// `tls` (0: plain TCP), with the call's timeout in milliseconds (0: the listener's; at most
/// 65535, the CALL frame's field); returns the connection id.
///
/// # Safety
/// `addr` and `msg` point to `addr_len` and `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_call(ctx: *mut ThreadCtx, addr: *const u8, addr_len: usize, tls: u32, corr: u32, timeout_ms: u32, msg: *const u8, len: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let addr = std::str::from_utf8(bytes(addr, addr_len)).map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?;
        let timeout_ms = timeout_ms.min(u16::MAX as u32) as u16;
        Ok(ctx.transport.send_call(&mut ctx.ring, addr, tls, corr, timeout_ms, bytes(msg, len))? as i32)
    })
}

/// Answers a listener client's call with a luact-encoded `{ ok, n, values... }`.
///
/// # Safety
/// `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_reply(ctx: *mut ThreadCtx, conn: u32, gen: u32, corr: u32, msg: *const u8, len: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        ctx.transport.reply_client(conn, gen, corr, bytes(msg, len))?;
        Ok(0)
    })
}

/// Copies this thread's counters of what listener limits refused into `out`.
///
/// # Safety
/// `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_net_listen_stats(ctx: *mut ThreadCtx, out: *mut ListenStats) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        // SAFETY: `out` is null or points to a writable luact_listen_stats_t.
        if let Some(out) = unsafe { out.as_mut() } {
            *out = ctx.transport.listen_stats();
        }
        Ok(0)
    })
}

/// Takes the next connection event; 1 when one was written to `out`, 0 when none is left.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn luact_net_event(ctx: *mut ThreadCtx, out: *mut NetEvent) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        match ctx.transport.pop_event() {
            Some(ev) if !out.is_null() => {
                *out = ev;
                Ok(1)
            }
            _ => Ok(0),
        }
    })
}

/// Why the event `luact_net_event` returned last happened (a connection's close reason: "peer
/// closed: authentication failed (wrong cluster secret?)", a TLS error, ...); its length, with
/// `*out` pointing at the bytes (valid until the next `luact_net_event`); 0 when there is none.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn luact_net_event_reason(ctx: *mut ThreadCtx, out: *mut *const u8) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let reason = ctx.transport.last_event_reason();
        if !out.is_null() {
            // SAFETY: the caller passes a writable `out` (checked non-null here).
            *out = reason.as_ptr();
        }
        Ok(reason.len() as i32)
    })
}

// ---- identity -----------------------------------------------------------------------------

/// This process's machine id: a running node's is its address (`ip << 16 | port`); otherwise
/// a random number above 2^48 (never a node's), fixed for the life of the process.
#[no_mangle]
pub extern "C" fn luact_machine_id() -> f64 {
    if let Some(node) = runtime::current().and_then(|rt| rt.node.clone()) {
        return node.machine_id as f64;
    }
    process_machine_id() as f64
}

/// The id of a process without a node address (a node client's too): 2^48 + 20 random bits,
/// drawn once per process.
fn process_machine_id() -> u64 {
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

// ---- names --------------------------------------------------------------------------------

/// Adds an actor under a name: 0, or 1 when the name is taken, or a negative status.
///
/// # Safety
/// `vid` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_names_add(vid: *const u8, len: usize, addr: Address, multi: i32) -> i32 {
    guard(|| crate::names::add(bytes(vid, len), addr, multi != 0))
}

/// Writes the next actor of a name (round robin) to `out`; 0, or -1 when the name is unknown.
///
/// # Safety
/// `vid` points to `len` readable bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn luact_names_pick(vid: *const u8, len: usize, out: *mut Address) -> i32 {
    guard(|| match crate::names::pick(bytes(vid, len)) {
        Some(a) if !out.is_null() => {
            *out = a;
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
    guard(|| Ok(crate::names::remove(bytes(vid, len), if all != 0 { None } else { Some(addr) }) as i32))
}

/// Copies up to `max` actors of a name into `out`; returns how many the name has.
///
/// # Safety
/// `vid` points to `len` readable bytes; `out` has room for `max` addresses.
#[no_mangle]
pub unsafe extern "C" fn luact_names_list(vid: *const u8, len: usize, out: *mut Address, max: i32) -> i32 {
    guard(|| {
        if out.is_null() || max < 0 {
            return Err(Error::new(Status::BadArgument, "no output array"));
        }
        let out = std::slice::from_raw_parts_mut(out, max as usize);
        Ok(crate::names::list(bytes(vid, len), out) as i32)
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
        let list: &[Address] = if n <= 0 || addrs.is_null() { &[] } else { std::slice::from_raw_parts(addrs, n as usize) };
        crate::names::set(bytes(vid, len), list, multi != 0)?;
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
    guard(|| Ok(crate::names::count(bytes(vid, len)) as i32))
}

// ---- the node's lease on its virtual actors (src/lease.rs) --------------------------------

/// Extends this node's lease to `until` (monotonic seconds); returns the lease's generation.
#[no_mangle]
pub extern "C" fn luact_lease_extend(until: f64) -> f64 {
    crate::lease::extend(until) as f64
}

/// Ends the lease now; returns the new generation.
#[no_mangle]
pub extern "C" fn luact_lease_lapse() -> f64 {
    crate::lease::lapse() as f64
}

/// The lease's end (monotonic seconds; 0: none).
#[no_mangle]
pub extern "C" fn luact_lease_until() -> f64 {
    crate::lease::until()
}

/// The generation an activation created now belongs to.
#[no_mangle]
pub extern "C" fn luact_lease_current() -> f64 {
    crate::lease::current() as f64
}

/// 1 while an activation of generation `gen` may serve at `now`, else 0.
#[no_mangle]
pub extern "C" fn luact_lease_valid(gen: f64, now: f64) -> i32 {
    crate::lease::valid(gen as u64, now) as i32
}

// ---- clock and util -----------------------------------------------------------------------

#[no_mangle]
pub extern "C" fn luact_clock_monotonic() -> f64 {
    crate::clock::monotonic()
}

#[no_mangle]
pub extern "C" fn luact_clock_wall() -> f64 {
    crate::clock::wall()
}

#[no_mangle]
pub extern "C" fn luact_util_sleep(seconds: f64) {
    guard_value((), || crate::clock::blocking_sleep(seconds))
}

#[no_mangle]
pub extern "C" fn luact_util_getpid() -> i32 {
    std::process::id() as i32
}

#[no_mangle]
pub extern "C" fn luact_util_n_cpu() -> i32 {
    std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(1)
}

// ---- memory -------------------------------------------------------------------------------

#[no_mangle]
pub extern "C" fn luact_alloc(size: usize) -> *mut u8 {
    guard_value(std::ptr::null_mut(), || crate::memory::alloc(size))
}

/// # Safety
/// `p` is null or came from `luact_alloc`/`luact_realloc` and was not freed.
#[no_mangle]
pub unsafe extern "C" fn luact_realloc(p: *mut u8, size: usize) -> *mut u8 {
    guard_value(std::ptr::null_mut(), || crate::memory::realloc(p, size))
}

/// # Safety
/// `p` is null or came from `luact_alloc`/`luact_realloc` and was not freed.
#[no_mangle]
pub unsafe extern "C" fn luact_free(p: *mut u8) {
    guard_value((), || crate::memory::free(p))
}

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
    guard_value(0, || (bytes(p, size) == bytes(q, size)) as i32)
}

/// Copies `size` bytes from `src` to `dst`; the regions may overlap.
///
/// # Safety
/// `src` has `size` readable bytes, `dst` has `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_memory_move(dst: *mut u8, src: *const u8, size: usize) {
    if size > 0 && !dst.is_null() && !src.is_null() {
        std::ptr::copy(src, dst, size);
    }
}

/// Sets `size` bytes at `dst` to `byte`.
///
/// # Safety
/// `dst` has `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_memory_fill(dst: *mut u8, byte: i32, size: usize) {
    if size > 0 && !dst.is_null() {
        std::ptr::write_bytes(dst, byte as u8, size);
    }
}

// ---- logger -------------------------------------------------------------------------------

/// Writes one whole line (the caller includes the newline).
///
/// # Safety
/// `line` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_log_write(line: *const u8, len: usize) -> i32 {
    guard(|| {
        crate::logger::write_line(bytes(line, len))?;
        Ok(0)
    })
}

/// Sends log lines to the file at `path` (appending), or back to stderr when `len` is 0.
///
/// # Safety
/// `path` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_log_redirect(path: *const u8, len: usize) -> i32 {
    guard(|| {
        let path = if len == 0 {
            None
        } else {
            Some(std::str::from_utf8(bytes(path, len)).map_err(|_| Error::new(Status::BadArgument, "path is not UTF-8"))?)
        };
        crate::logger::redirect(path)?;
        Ok(0)
    })
}

#[no_mangle]
pub extern "C" fn luact_log_set_level(level: i32) {
    crate::logger::set_level(level)
}

#[no_mangle]
pub extern "C" fn luact_log_level() -> i32 {
    crate::logger::level()
}

/// 0: text lines, 1: one JSON object per line (process-wide, like the level).
#[no_mangle]
pub extern "C" fn luact_log_set_format(format: i32) {
    crate::logger::set_format(format)
}

#[no_mangle]
pub extern "C" fn luact_log_format() -> i32 {
    crate::logger::format()
}

#[no_mangle]
pub extern "C" fn luact_log_is_tty() -> i32 {
    guard_value(0, || crate::logger::is_tty() as i32)
}

// ---- user sockets (luact.socket) ------------------------------------------------------------

/// What `luact_sock_view` shows of a connection (`luact_sock_view_t` in lua/luact/ffi.lua).
#[repr(C)]
pub struct SockView {
    /// Received bytes not consumed yet (valid until the next call into the core on this thread).
    pub data: *const u8,
    pub len: usize,
    /// 1 once the peer finished sending.
    pub eof: i32,
    /// The connection's failure (errno), 0 while none.
    pub err: i32,
}

fn sock_address(family: i32, addr: *const u8, len: usize) -> Result<crate::conn::SockAddr, Error> {
    // SAFETY: the callers pass Lua strings of `len` bytes.
    let text = std::str::from_utf8(unsafe { bytes(addr, len) }).map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?;
    crate::socket::address(family, text)
}

/// Starts connecting to `addr` (family 0: "ip:port", 1: a Unix path); returns the socket's
/// handle (the connect's outcome arrives as a completion).
///
/// # Safety
/// `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_connect(ctx: *mut ThreadCtx, family: i32, addr: *const u8, len: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let addr = sock_address(family, addr, len)?;
        Ok(ctx.sockets.connect(&mut ctx.ring, addr)? as i32)
    })
}

/// Like `luact_sock_connect` for "ip:port", inside TLS: trusts the CA bundle at `ca`, presents
/// `cert`/`key` when both are given, and verifies the server's certificate against `sni`.
///
/// # Safety
/// Every pointer points to its length of readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_connect_tls(
    ctx: *mut ThreadCtx,
    addr: *const u8, len: usize,
    sni: *const u8, sni_len: usize,
    ca: *const u8, ca_len: usize,
    cert: *const u8, cert_len: usize,
    key: *const u8, key_len: usize,
) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let addr = sock_address(0, addr, len)?;
        let (sni, ca, cert, key) = (utf8(sni, sni_len)?, utf8(ca, ca_len)?, utf8(cert, cert_len)?, utf8(key, key_len)?);
        Ok(ctx.sockets.connect_tls(&mut ctx.ring, addr, sni, ca, cert, key)? as i32)
    })
}

/// Listens on `addr` (families as `luact_sock_connect`); accepts up to `max_connections`
/// connections at a time; `reuse_port` sets SO_REUSEPORT. Returns the listener's handle.
///
/// # Safety
/// `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_listen(ctx: *mut ThreadCtx, family: i32, addr: *const u8, len: usize, backlog: i32, max_connections: i32, reuse_port: i32) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let addr = sock_address(family, addr, len)?;
        if max_connections < 1 {
            return Err(Error::new(Status::BadArgument, "max_connections must be at least 1"));
        }
        Ok(ctx.sockets.listen(&mut ctx.ring, addr, backlog, max_connections as usize, reuse_port != 0)? as i32)
    })
}

/// Like `luact_sock_listen` for "ip:port", inside TLS: `cert`/`key` PEM files, and `ca` (may be
/// empty) to require client certificates signed by it.
///
/// # Safety
/// Every pointer points to its length of readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_listen_tls(
    ctx: *mut ThreadCtx,
    addr: *const u8, len: usize,
    backlog: i32, max_connections: i32, reuse_port: i32,
    cert: *const u8, cert_len: usize,
    key: *const u8, key_len: usize,
    ca: *const u8, ca_len: usize,
) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let addr = sock_address(0, addr, len)?;
        if max_connections < 1 {
            return Err(Error::new(Status::BadArgument, "max_connections must be at least 1"));
        }
        let (cert, key, ca) = (utf8(cert, cert_len)?, utf8(key, key_len)?, utf8(ca, ca_len)?);
        Ok(ctx.sockets.listen_tls(&mut ctx.ring, addr, backlog, max_connections as usize, reuse_port != 0, cert, key, ca)? as i32)
    })
}

/// Queues up to `limit` bytes (minus those already queued) of `data` for sending with the
/// turn's write; returns how many it took.
///
/// # Safety
/// `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_send(ctx: *mut ThreadCtx, h: u32, data: *const u8, len: usize, limit: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let len = len.min(i32::MAX as usize);
        Ok(ctx.sockets.send(h, bytes(data, len), limit)? as i32)
    })
}

/// Shows what a connection received and its state.
///
/// # Safety
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_view(ctx: *mut ThreadCtx, h: u32, out: *mut SockView) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let out = out.as_mut().ok_or_else(|| Error::new(Status::BadArgument, "null view"))?;
        let (data, eof, err) = ctx.sockets.view(h)?;
        out.data = data.as_ptr();
        out.len = data.len();
        out.eof = eof as i32;
        out.err = err;
        Ok(0)
    })
}

/// Drops the first `n` received bytes of a connection (Lua took them).
#[no_mangle]
pub extern "C" fn luact_sock_consume(ctx: *mut ThreadCtx, h: u32, n: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        ctx.sockets.consume(&mut ctx.ring, h, n)?;
        Ok(0)
    })
}

/// Closes a connection (queued bytes are still sent unless `abort`, for up to `linger`
/// seconds: then it is aborted; 0: no limit) or a listener.
#[no_mangle]
pub extern "C" fn luact_sock_close(ctx: *mut ThreadCtx, h: u32, abort: i32, linger: f64) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let until = if linger > 0.0 { crate::clock::monotonic() + linger } else { 0.0 };
        ctx.sockets.close(&mut ctx.ring, h, abort != 0, until)?;
        Ok(0)
    })
}

/// Writes the peer's address of a connection (`local` = 0) or its own / a listener's bound
/// address (`local` = 1) as text into `out` (room for `cap` bytes); returns its length. The
/// port of an IPv4 address goes to `*port` (0 for a Unix socket).
///
/// # Safety
/// `out` has room for `cap` bytes; `port` is writable.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_address(ctx: *mut ThreadCtx, h: u32, local: i32, out: *mut u8, cap: usize, port: *mut i32) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let addr = ctx.sockets.address_of(h, local != 0)?;
        let ip = addr.ip_text();
        let n = ip.len().min(cap);
        if !out.is_null() {
            std::ptr::copy_nonoverlapping(ip.as_ptr(), out, n);
        }
        if let Some(p) = port.as_mut() {
            *p = addr.port() as i32;
        }
        Ok(n as i32)
    })
}

/// A UDP socket bound to `addr` ("ip:port"; port 0: any); returns its handle.
///
/// # Safety
/// `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_open(ctx: *mut ThreadCtx, addr: *const u8, len: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let addr = sock_address(0, addr, len)?;
        Ok(ctx.sockets.udp_open(&mut ctx.ring, addr)? as i32)
    })
}

/// Sends one datagram to `to` ("ip:port"): 0, or `Full` when the socket has too many bytes in
/// flight already.
///
/// # Safety
/// `data` and `to` point to `len` and `to_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_sendto(ctx: *mut ThreadCtx, h: u32, data: *const u8, len: usize, to: *const u8, to_len: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let to = sock_address(0, to, to_len)?;
        Ok(if ctx.sockets.udp_sendto(&mut ctx.ring, h, bytes(data, len), to)? { 0 } else { Status::Full.code() })
    })
}

/// Takes the next received datagram: points `*data` at its bytes (valid until the next call),
/// writes its source ip into `from` (room for `cap` bytes; `*from_len` its length) and port
/// into `*port`; returns its length, or -1 when none is queued.
///
/// # Safety
/// `data`, `from_len`, `port` are writable; `from` has room for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_take(ctx: *mut ThreadCtx, h: u32, data: *mut *const u8, from: *mut u8, cap: usize, from_len: *mut i32, port: *mut i32) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        let Some((bytes, addr)) = ctx.sockets.udp_take(h)? else { return Ok(-1) };
        if data.is_null() || from.is_null() || from_len.is_null() || port.is_null() {
            return Err(Error::new(Status::BadArgument, "null output"));
        }
        *data = bytes.as_ptr();
        let ip = addr.ip_text(); // (an IPv6 sender without brackets: "::1", as udp:sendto takes it)
        let n = ip.len().min(cap);
        std::ptr::copy_nonoverlapping(ip.as_ptr(), from, n);
        *from_len = n as i32;
        *port = addr.port() as i32;
        Ok(bytes.len() as i32)
    })
}

/// Closes a UDP socket.
#[no_mangle]
pub extern "C" fn luact_udp_close(ctx: *mut ThreadCtx, h: u32) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        ctx.sockets.udp_close(&mut ctx.ring, h)?;
        Ok(0)
    })
}

/// The port a UDP socket is bound to.
#[no_mangle]
pub extern "C" fn luact_udp_port(ctx: *mut ThreadCtx, h: u32) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        Ok(ctx.sockets.udp_local(h)?.port() as i32)
    })
}

/// The offset of the first `needle` in `len` bytes at `p`, or -1 (a double: no boxed int64 in Lua).
///
/// # Safety
/// `p` points to `len` readable bytes, `needle` to `nlen`.
#[no_mangle]
pub unsafe extern "C" fn luact_memory_find(p: *const u8, len: usize, needle: *const u8, nlen: usize) -> f64 {
    guard_value(-1.0, || {
        let (hay, needle) = (bytes(p, len), bytes(needle, nlen));
        if needle.is_empty() {
            return 0.0;
        }
        memchr::memmem::find(hay, needle).map(|i| i as f64).unwrap_or(-1.0)
    })
}

// ---- offload pool (luact.offload) -------------------------------------------------------------

/// Queues a task (bytes encoded by lua/luact/offload.lua) for the run's offload pool, starting
/// it with `size` threads (growing up to `max` past stuck ones) if it is not running yet.
///
/// # Safety
/// `task` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_offload_submit(ctx: *mut ThreadCtx, size: i32, max: i32, task: *const u8, len: usize) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
        if len > i32::MAX as usize {
            return Err(Error::new(Status::BadArgument, "an offload task is at most 2 GiB"));
        }
        let pool = ctx.runtime.offload_pool(size.max(1) as usize, max.max(1) as usize)?;
        pool.submit(bytes(task, len))?;
        Ok(0)
    })
}

/// Writes the offload pool's counters into `out[0..6]`: threads, max threads, busy, stuck,
/// queued, grown (all 0 before the run's first offload).
///
/// # Safety
/// `out` points to 6 writable u64.
#[no_mangle]
pub unsafe extern "C" fn luact_offload_stats(ctx: *mut ThreadCtx, out: *mut u64) -> i32 {
    guard(|| {
        let ctx = ctx_mut(ctx)?;
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
/// `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn luact_offload_take(out: *mut *const u8) -> i32 {
    guard(|| match crate::offload::take_task()? {
        Some((p, len)) if !out.is_null() => {
            *out = p;
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
    guard(|| Ok(crate::offload::reply(tid.max(0) as usize, bytes(msg, len))?.code()))
}
