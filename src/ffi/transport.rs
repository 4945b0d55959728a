//! Binding of the transport (src/transport/): node links (send to a thread of another node, drop
//! a dead node's links), listeners (`luact.listen`: node, tcp, http, udp, with or without TLS,
//! and the counters of what their limits refused), calls to another process's listener
//! (`luact.ref("tcp://...")`) and the replies to its clients, and the connection events the
//! loop reads after a turn.
use super::{bytes, ctx_mut, guard, utf8};
use crate::listen_limits::{ListenLimits, ListenStats};
use crate::runtime::ThreadCtx;
use crate::status::{Error, Status};
use crate::transport::{ListenerKind, NetEvent};

/// Listens on `addr` ("ip:port") with `kind` 0 = node, 1 = tcp, 2 = http, 3 = udp; returns the
/// port. `limits` (null: the defaults) bounds the listener's clients (src/listen_limits.rs);
/// `reuse_port` non-zero sets SO_REUSEPORT (a listener on every thread: `threads = "all"`).
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `addr` points to `len` readable bytes;
/// `limits` is null or points to a luact_listen_limits_t.
#[no_mangle]
pub unsafe extern "C" fn luact_net_listen(ctx: *mut ThreadCtx, addr: *const u8, len: usize, kind: i32, limits: *const ListenLimits, reuse_port: i32) -> i32 {
    guard(|| {
        // SAFETY: `limits` is null or points to a luact_listen_limits_t (the caller's promise).
        let limits = ListenLimits::or_defaults(unsafe { limits.as_ref() });
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `addr`.
        let addr = std::str::from_utf8(unsafe { bytes(addr, len) }).map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?;
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
/// `ctx` is null or the calling thread's live context; every byte pointer points to its length
/// of readable bytes; `limits` is null or points to a luact_listen_limits_t.
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
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on the four byte arguments.
        let (addr, cert, key, ca) = unsafe { (utf8(addr, addr_len)?, utf8(cert, cert_len)?, utf8(key, key_len)?, utf8(ca, ca_len)?) };
        let ca = if ca.is_empty() { None } else { Some(ca) };
        Ok(ctx.transport.listen_tls(&mut ctx.ring, addr, cert, key, ca, limits, reuse_port != 0)? as i32)
    })
}

/// A TLS client profile trusting `ca`, presenting `cert`/`key` when both are given; returns its
/// id for `luact_net_call`.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; every byte pointer points to its length
/// of readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_tls_client(
    ctx: *mut ThreadCtx,
    ca: *const u8, ca_len: usize,
    cert: *const u8, cert_len: usize,
    key: *const u8, key_len: usize,
) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on the three byte arguments.
        let (ca, cert, key) = unsafe { (utf8(ca, ca_len)?, utf8(cert, cert_len)?, utf8(key, key_len)?) };
        let pair = if cert.is_empty() || key.is_empty() { None } else { Some((cert, key)) };
        Ok(ctx.transport.add_client_tls(ca, pair)? as i32)
    })
}

/// Sends a luact message to thread `thread` of node `machine` (dialing it if needed).
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_send(ctx: *mut ThreadCtx, machine: f64, thread: i32, msg: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        let now = crate::clock::monotonic();
        // SAFETY: the caller's promise on `msg`.
        let msg = unsafe { bytes(msg, len) };
        ctx.transport.send_node(&mut ctx.ring, machine as u64, thread.clamp(0, 65535) as u16, msg, now)?;
        Ok(0)
    })
}

/// Closes this thread's connections to and from node `machine` (the cluster declared it dead);
/// returns how many were closed. Each raises a node-down event, as a lost connection does.
///
/// # Safety
/// `ctx` is null or the calling thread's live context.
#[no_mangle]
pub unsafe extern "C" fn luact_net_drop(ctx: *mut ThreadCtx, machine: f64) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        Ok(ctx.transport.drop_machine(machine as u64, "the cluster declared this node dead") as i32)
    })
}

/// Sends a call (corr > 0) or a notify (corr = 0) to the listener at `addr`, through TLS profile
/// `tls` (0: plain TCP), with the call's timeout in milliseconds (0: the listener's; at most
/// 65535, the CALL frame's field); returns the connection id.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `addr` and `msg` point to `addr_len` and
/// `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_call(ctx: *mut ThreadCtx, addr: *const u8, addr_len: usize, tls: u32, corr: u32, timeout_ms: u32, msg: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `addr`.
        let addr = std::str::from_utf8(unsafe { bytes(addr, addr_len) }).map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?;
        let timeout_ms = timeout_ms.min(u16::MAX as u32) as u16;
        // SAFETY: the caller's promise on `msg`.
        let msg = unsafe { bytes(msg, len) };
        Ok(ctx.transport.send_call(&mut ctx.ring, addr, tls, corr, timeout_ms, msg)? as i32)
    })
}

/// Answers a listener client's call with a luact-encoded `{ ok, n, values... }`.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `msg` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_net_reply(ctx: *mut ThreadCtx, conn: u32, gen: u32, corr: u32, msg: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `msg`.
        ctx.transport.reply_client(conn, gen, corr, unsafe { bytes(msg, len) })?;
        Ok(0)
    })
}

/// Copies this thread's counters of what listener limits refused into `out`.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_net_listen_stats(ctx: *mut ThreadCtx, out: *mut ListenStats) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
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
/// `ctx` is null or the calling thread's live context; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_net_event(ctx: *mut ThreadCtx, out: *mut NetEvent) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        match ctx.transport.pop_event() {
            Some(ev) if !out.is_null() => {
                // SAFETY: non-null and writable (the caller's promise).
                unsafe { *out = ev };
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
/// `ctx` is null or the calling thread's live context; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_net_event_reason(ctx: *mut ThreadCtx, out: *mut *const u8) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        let reason = ctx.transport.last_event_reason();
        if !out.is_null() {
            // SAFETY: the caller passes a writable `out` (checked non-null here).
            unsafe { *out = reason.as_ptr() };
        }
        Ok(reason.len() as i32)
    })
}
