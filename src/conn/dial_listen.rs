//! Opening connections: dialing (plain or TLS, with a setup hook for socket options), listening
//! and accepting (with a back-off when the process runs out of descriptors), and the connect's
//! completion.
use super::*;

impl Conns {
    /// Starts connecting to `addr`; `Event::Connected` tells how it went.
    pub fn connect(&mut self, ring: &mut Ring, addr: SockAddr) -> Result<usize> {
        self.connect_with(ring, addr, |_| Ok(()))
    }

    /// Like `connect`, with `setup` called on the new socket before it connects (to bind it to
    /// a local address, size its buffers): its error closes the socket and is returned.
    pub fn connect_with(&mut self, ring: &mut Ring, addr: SockAddr, setup: impl FnOnce(i32) -> Result<()>) -> Result<usize> {
        let fd = new_stream_socket(addr.family())?;
        if let Err(e) = setup(fd) {
            close_fd(fd);
            return Err(e);
        }
        let c = self.new_conn(fd, State::Connecting, addr, None);
        let conn = &mut self.conns[c];
        conn.connect_inflight = true;
        let entry = opcode::Connect::new(types::Fd(fd), conn.addr.ptr(), conn.addr.socklen())
            .build()
            .user_data(user_data(self.owner, OP_CONNECT, c, conn.gen));
        ring.push(entry);
        Ok(c)
    }

    /// Like `connect`, then a TLS handshake with `session`: `Event::Connected` comes once the
    /// handshake completed (or failed: `-ERR_TLS_HANDSHAKE`).
    pub fn connect_tls(&mut self, ring: &mut Ring, addr: SockAddr, session: TlsSession) -> Result<usize> {
        self.connect_tls_with(ring, addr, session, |_| Ok(()))
    }

    /// `connect_tls` with `connect_with`'s `setup`.
    pub fn connect_tls_with(&mut self, ring: &mut Ring, addr: SockAddr, session: TlsSession, setup: impl FnOnce(i32) -> Result<()>) -> Result<usize> {
        let c = self.connect_with(ring, addr, setup)?;
        self.conns[c].tls = Some(Box::new(session));
        Ok(c)
    }

    /// Listens on `addr` (with SO_REUSEPORT when `reuse_port`: several threads may then listen
    /// on the same port and the kernel spreads connections over them); accepts up to
    /// `max_connections` live connections at a time. Returns the listener's slot.
    pub fn listen(&mut self, ring: &mut Ring, addr: SockAddr, backlog: i32, max_connections: usize, reuse_port: bool) -> Result<usize> {
        self.listen_with(ring, addr, backlog, max_connections, reuse_port, |_| {})
    }

    /// Like `listen`, with `setup` called on the socket before it binds (accepted connections
    /// inherit options such as buffer sizes).
    pub fn listen_with(&mut self, ring: &mut Ring, addr: SockAddr, backlog: i32, max_connections: usize, reuse_port: bool, setup: impl FnOnce(i32)) -> Result<usize> {
        let fd = new_stream_socket(addr.family())?;
        setup(fd);
        if let Err(e) = addr.bind_listener(fd, reuse_port) {
            close_fd(fd);
            return Err(e);
        }
        // SAFETY: `fd` is ours and bound.
        if unsafe { libc::listen(fd, backlog.max(1)) } < 0 {
            let e = os_error(&format!("listen {}", addr.text()));
            close_fd(fd);
            return Err(e);
        }
        let gen = self.gen();
        let l = self.listeners.insert(Listener { fd, gen, accept_inflight: false, retry_at: 0.0, backoff: 0.0, closing: false, max_connections: max_connections.max(1), live: 0, tls: None });
        self.arm_accept(ring, l);
        Ok(l)
    }

    /// Makes a listener a TLS one: the connections it accepts from now on handshake with
    /// `server`; `Event::Connected` says when that completed (or failed), after `Accepted`.
    pub fn set_listener_tls(&mut self, l: usize, server: Arc<ServerTls>) {
        if let Some(lis) = self.listeners.get_mut(l) {
            lis.tls = Some(server);
        }
    }

    pub(super) fn arm_accept(&mut self, ring: &mut Ring, l: usize) {
        let Some(lis) = self.listeners.get_mut(l) else { return };
        if lis.accept_inflight || lis.closing || lis.live >= lis.max_connections || lis.retry_at > 0.0 {
            return;
        }
        lis.accept_inflight = true;
        let entry = opcode::Accept::new(types::Fd(lis.fd), std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(self.owner, OP_ACCEPT, l, lis.gen));
        ring.push(entry);
    }

    pub(super) fn on_accept(&mut self, ring: &mut Ring, l: usize, res: i32) {
        let lis = &mut self.listeners[l];
        lis.accept_inflight = false;
        if lis.closing {
            return self.maybe_free_listener(l);
        }
        if res >= 0 {
            let fd = res;
            let one: i32 = 1;
            // SAFETY: `fd` is the new connection's descriptor, ours from here on (the option
            // fails harmlessly on a Unix-domain socket).
            unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const i32 as *const _, 4) };
            lis.live += 1;
            lis.backoff = 0.0;
            let session = lis.tls.as_ref().map(|t| t.session());
            let addr = SockAddr::of_fd(fd, true).unwrap_or(SockAddr::unknown());
            let c = self.new_conn(fd, State::Open, addr, Some(l));
            match session {
                None => {}
                Some(Ok(session)) => self.conns[c].tls = Some(Box::new(session)),
                Some(Err(_)) => {
                    self.close(ring, c, true, 0.0);
                    return self.arm_accept(ring, l);
                }
            }
            self.arm_recv(ring, c);
            self.events.push_back(Event::Accepted(l, c));
        } else if matches!(-res, libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) {
            // Out of descriptors: accepting again at once would fail again at once (a spinning
            // core). Pause, doubling up to a second; `tick` accepts again.
            lis.backoff = (lis.backoff * 2.0).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
            lis.retry_at = crate::clock::monotonic() + lis.backoff;
            self.accept_pauses += 1;
            return;
        }
        self.arm_accept(ring, l);
    }

    pub fn close_listener(&mut self, ring: &mut Ring, l: usize) {
        let Some(lis) = self.listeners.get_mut(l) else { return };
        if lis.closing {
            return;
        }
        lis.closing = true;
        if lis.accept_inflight {
            let entry = opcode::AsyncCancel::new(user_data(self.owner, OP_ACCEPT, l, lis.gen)).build().user_data(user_data(self.owner, OP_CANCEL, l, 0));
            ring.push(entry);
        }
        self.maybe_free_listener(l);
    }

    pub(super) fn maybe_free_listener(&mut self, l: usize) {
        let lis = &self.listeners[l];
        if lis.closing && !lis.accept_inflight {
            close_fd(lis.fd);
            self.listeners.remove(l);
        }
    }

    pub(super) fn on_connect(&mut self, ring: &mut Ring, c: usize, res: i32) {
        let conn = &mut self.conns[c];
        conn.connect_inflight = false;
        if conn.state == State::Closing {
            return self.maybe_free(ring, c);
        }
        let res = if res == 0 { Self::pending_error(conn.fd) } else { res };
        if res < 0 {
            conn.err = -res;
            self.events.push_back(Event::Connected(c, res));
            return;
        }
        conn.state = State::Open;
        if conn.tls.is_none() {
            self.events.push_back(Event::Connected(c, 0));
        }
        self.arm_recv(ring, c);
        self.mark_dirty(c); // (a TLS client's hello goes out with the next flush)
    }

    /// The socket's pending error as a negative errno (0: none). A connect whose SYN was
    /// answered by an ICMP error (host or network unreachable) can complete with 0 on io_uring
    /// and leave the error here; without this check the first read would report it instead.
    pub(super) fn pending_error(fd: i32) -> i32 {
        let mut err: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `err`, a live i32.
        let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut i32 as *mut _, &mut len) };
        if rc == 0 && err != 0 { -err } else { 0 }
    }
}
