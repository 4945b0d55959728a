//! Binding of user sockets (`luact.socket`; src/socket.rs): stream connections and listeners
//! over TCP or a Unix path, with or without TLS (`luact_sock_*`), and UDP sockets
//! (`luact_udp_*`). Every call works on the calling thread's sockets, through its loop context.
use super::{bytes, ctx_mut, guard, utf8};
use crate::runtime::ThreadCtx;
use crate::status::{Error, Status};

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

/// `addr` (family 0: "ip:port", 1: a Unix path) as a socket address, or BadArgument.
///
/// # Safety
/// `addr` is null or points to `len` readable bytes, valid for the call.
unsafe fn sock_address(family: i32, addr: *const u8, len: usize) -> Result<crate::conn::SockAddr, Error> {
    // SAFETY: the caller's promise, passed on.
    let text = std::str::from_utf8(unsafe { bytes(addr, len) }).map_err(|_| Error::new(Status::BadArgument, "address is not UTF-8"))?;
    crate::socket::address(family, text)
}

/// Starts connecting to `addr` (family 0: "ip:port", 1: a Unix path); returns the socket's
/// handle (the connect's outcome arrives as a completion).
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_connect(ctx: *mut ThreadCtx, family: i32, addr: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `addr`.
        let addr = unsafe { sock_address(family, addr, len) }?;
        Ok(ctx.sockets.connect(&mut ctx.ring, addr)? as i32)
    })
}

/// Like `luact_sock_connect` for "ip:port", inside TLS: trusts the CA bundle at `ca`, presents
/// `cert`/`key` when both are given, and verifies the server's certificate against `sni`.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; every byte pointer points to its length
/// of readable bytes.
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
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `addr`.
        let addr = unsafe { sock_address(0, addr, len) }?;
        // SAFETY: the caller's promise on the four byte arguments.
        let (sni, ca, cert, key) = unsafe { (utf8(sni, sni_len)?, utf8(ca, ca_len)?, utf8(cert, cert_len)?, utf8(key, key_len)?) };
        Ok(ctx.sockets.connect_tls(&mut ctx.ring, addr, sni, ca, cert, key)? as i32)
    })
}

/// Listens on `addr` (families as `luact_sock_connect`); accepts up to `max_connections`
/// connections at a time; `reuse_port` sets SO_REUSEPORT. Returns the listener's handle.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_listen(ctx: *mut ThreadCtx, family: i32, addr: *const u8, len: usize, backlog: i32, max_connections: i32, reuse_port: i32) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `addr`.
        let addr = unsafe { sock_address(family, addr, len) }?;
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
/// `ctx` is null or the calling thread's live context; every byte pointer points to its length
/// of readable bytes.
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
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `addr`.
        let addr = unsafe { sock_address(0, addr, len) }?;
        if max_connections < 1 {
            return Err(Error::new(Status::BadArgument, "max_connections must be at least 1"));
        }
        // SAFETY: the caller's promise on the three byte arguments.
        let (cert, key, ca) = unsafe { (utf8(cert, cert_len)?, utf8(key, key_len)?, utf8(ca, ca_len)?) };
        Ok(ctx.sockets.listen_tls(&mut ctx.ring, addr, backlog, max_connections as usize, reuse_port != 0, cert, key, ca)? as i32)
    })
}

/// Queues up to `limit` bytes (minus those already queued) of `data` for sending with the
/// turn's write; returns how many it took.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_send(ctx: *mut ThreadCtx, h: u32, data: *const u8, len: usize, limit: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        let len = len.min(i32::MAX as usize);
        // SAFETY: `data` has `len` readable bytes (the caller's promise), so also this many.
        let data = unsafe { bytes(data, len) };
        Ok(ctx.sockets.send(h, data, limit)? as i32)
    })
}

/// Shows what a connection received and its state.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `out` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_view(ctx: *mut ThreadCtx, h: u32, out: *mut SockView) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: `out` is null or writable (the caller's promise).
        let out = unsafe { out.as_mut() }.ok_or_else(|| Error::new(Status::BadArgument, "null view"))?;
        let (data, eof, err) = ctx.sockets.view(h)?;
        out.data = data.as_ptr();
        out.len = data.len();
        out.eof = eof as i32;
        out.err = err;
        Ok(0)
    })
}

/// Drops the first `n` received bytes of a connection (Lua took them).
///
/// # Safety
/// `ctx` is null or the calling thread's live context.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_consume(ctx: *mut ThreadCtx, h: u32, n: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        ctx.sockets.consume(&mut ctx.ring, h, n)?;
        Ok(0)
    })
}

/// Closes a connection (queued bytes are still sent unless `abort`, for up to `linger`
/// seconds: then it is aborted; 0: no limit) or a listener.
///
/// # Safety
/// `ctx` is null or the calling thread's live context.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_close(ctx: *mut ThreadCtx, h: u32, abort: i32, linger: f64) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
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
/// `ctx` is null or the calling thread's live context; `out` is null or has room for `cap`
/// bytes; `port` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn luact_sock_address(ctx: *mut ThreadCtx, h: u32, local: i32, out: *mut u8, cap: usize, port: *mut i32) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        let addr = ctx.sockets.address_of(h, local != 0)?;
        let ip = addr.ip_text();
        let n = ip.len().min(cap);
        if !out.is_null() {
            // SAFETY: `out` has room for `cap` >= `n` bytes (the caller's promise) and cannot
            // overlap `ip`, a string of ours.
            unsafe { std::ptr::copy_nonoverlapping(ip.as_ptr(), out, n) };
        }
        // SAFETY: `port` is null or writable (the caller's promise).
        if let Some(p) = unsafe { port.as_mut() } {
            *p = addr.port() as i32;
        }
        Ok(n as i32)
    })
}

/// A UDP socket bound to `addr` ("ip:port"; port 0: any); returns its handle.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_open(ctx: *mut ThreadCtx, addr: *const u8, len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `addr`.
        let addr = unsafe { sock_address(0, addr, len) }?;
        Ok(ctx.sockets.udp_open(&mut ctx.ring, addr)? as i32)
    })
}

/// Sends one datagram to `to` ("ip:port"): 0, or `Full` when the socket has too many bytes in
/// flight already.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `data` and `to` point to `len` and
/// `to_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_sendto(ctx: *mut ThreadCtx, h: u32, data: *const u8, len: usize, to: *const u8, to_len: usize) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        // SAFETY: the caller's promise on `to`.
        let to = unsafe { sock_address(0, to, to_len) }?;
        // SAFETY: the caller's promise on `data`.
        let data = unsafe { bytes(data, len) };
        Ok(if ctx.sockets.udp_sendto(&mut ctx.ring, h, data, to)? { 0 } else { Status::Full.code() })
    })
}

/// Takes the next received datagram: points `*data` at its bytes (valid until the next call),
/// writes its source ip into `from` (room for `cap` bytes; `*from_len` its length) and port
/// into `*port`; returns its length, or -1 when none is queued.
///
/// # Safety
/// `ctx` is null or the calling thread's live context; `data`, `from_len`, `port` are writable;
/// `from` has room for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_take(ctx: *mut ThreadCtx, h: u32, data: *mut *const u8, from: *mut u8, cap: usize, from_len: *mut i32, port: *mut i32) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        let Some((bytes, addr)) = ctx.sockets.udp_take(h)? else { return Ok(-1) };
        if data.is_null() || from.is_null() || from_len.is_null() || port.is_null() {
            return Err(Error::new(Status::BadArgument, "null output"));
        }
        let ip = addr.ip_text(); // (an IPv6 sender without brackets: "::1", as udp:sendto takes it)
        let n = ip.len().min(cap);
        // SAFETY: every output is non-null (checked above) and writable, `from` with room for
        // `cap` >= `n` bytes (the caller's promise); `ip` is a string of ours (no overlap).
        unsafe {
            *data = bytes.as_ptr();
            std::ptr::copy_nonoverlapping(ip.as_ptr(), from, n);
            *from_len = n as i32;
            *port = addr.port() as i32;
        }
        Ok(bytes.len() as i32)
    })
}

/// Closes a UDP socket.
///
/// # Safety
/// `ctx` is null or the calling thread's live context.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_close(ctx: *mut ThreadCtx, h: u32) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        ctx.sockets.udp_close(&mut ctx.ring, h)?;
        Ok(0)
    })
}

/// The port a UDP socket is bound to.
///
/// # Safety
/// `ctx` is null or the calling thread's live context.
#[no_mangle]
pub unsafe extern "C" fn luact_udp_port(ctx: *mut ThreadCtx, h: u32) -> i32 {
    guard(|| {
        // SAFETY: the caller's promise on `ctx`.
        let ctx = unsafe { ctx_mut(ctx) }?;
        Ok(ctx.sockets.udp_local(h)?.port() as i32)
    })
}
