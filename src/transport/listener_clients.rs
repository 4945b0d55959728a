//! Listener clients: `tcp://`, `tls://` and `http://` listeners (accepting with back-off when
//! out of descriptors, per-client limits from `listen_limits.rs`), the HTTP requests of their
//! clients, the replies Lua sends them, and this thread's own calls to other nodes' listeners
//! (`send_call`). The socket mechanics they use are in `mod.rs`.
use super::*;

impl Transport {
    // ---- listeners ---------------------------------------------------------------------

    /// Listens on `addr`; connections are served by this thread. With `reuse_port`
    /// (SO_REUSEPORT) other threads may listen on the same port and the kernel spreads new
    /// connections over them. Returns the bound port.
    pub fn listen(&mut self, ring: &mut Ring, addr: &str, kind: ListenerKind, limits: ListenLimits, reuse_port: bool) -> Result<u16> {
        let sa = parse_addr(addr)?;
        let udp = kind == ListenerKind::Udp;
        let fd = if udp { new_datagram_socket()? } else { new_socket()? };
        if kind == ListenerKind::Node {
            set_node_buffers(fd); // accepted connections inherit them
        }
        // SAFETY: `fd` is ours; `sa` is a valid sockaddr_in for the duration of the calls.
        unsafe {
            let one: i32 = 1;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one as *const i32 as *const _, 4);
            if reuse_port {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, &one as *const i32 as *const _, 4);
            }
            if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32) < 0 {
                let e = os_error(&format!("bind {addr}"));
                close_fd(fd);
                return Err(e);
            }
            if !udp && libc::listen(fd, 1024) < 0 {
                let e = os_error(&format!("listen {addr}"));
                close_fd(fd);
                return Err(e);
            }
        }
        let mut bound: libc::sockaddr_in = sa;
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: getsockname writes at most `len` bytes into `bound`.
        unsafe { libc::getsockname(fd, &mut bound as *mut _ as *mut libc::sockaddr, &mut len) };
        let slot = self.listeners.insert(Listener {
            fd,
            kind,
            buf: if udp { vec![0u8; 65536].into_boxed_slice() } else { Box::new([]) },
            tls: None,
            addr: Box::new(sa),
            addr_len: Box::new(0),
            limits,
            open: 0,
            retry_at: 0.0,
            backoff: 0.0,
            port: u16::from_be(bound.sin_port),
        });
        if udp {
            self.arm_datagram(ring, slot);
        } else {
            self.arm_accept(ring, slot);
        }
        Ok(u16::from_be(bound.sin_port))
    }

    /// A tls:// listener: the luact protocol of tcp://, inside TLS.
    pub fn listen_tls(&mut self, ring: &mut Ring, addr: &str, cert: &str, key: &str, client_ca: Option<&str>, limits: ListenLimits, reuse_port: bool) -> Result<u16> {
        let server = ServerTls::from_files(cert, key, client_ca).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
        let port = self.listen(ring, addr, ListenerKind::Tcp, limits, reuse_port)?;
        if let Some((_, l)) = self.listeners.iter_mut().last() {
            l.tls = Some(Arc::new(server));
        }
        Ok(port)
    }

    /// A TLS client profile (CA to trust, optional client certificate); returns its id for
    /// `send_call`.
    pub fn add_client_tls(&mut self, ca: &str, cert_key: Option<(&str, &str)>) -> Result<u32> {
        let client = ClientTls::from_files(ca, cert_key).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
        self.client_tls.push(Arc::new(client));
        Ok(self.client_tls.len() as u32)
    }

    pub(super) fn arm_accept(&mut self, ring: &mut Ring, slot: usize) {
        let l = &mut self.listeners[slot];
        *l.addr_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let entry = opcode::Accept::new(types::Fd(l.fd), &mut *l.addr as *mut _ as *mut libc::sockaddr, &mut *l.addr_len)
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(OP_ACCEPT, slot, 0));
        ring.push(entry);
    }

    pub(super) fn on_accept(&mut self, ring: &mut Ring, slot: usize, res: i32, now: f64) {
        if !self.listeners.contains(slot) {
            return;
        }
        if res < 0 && matches!(-res, libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) {
            // Out of descriptors: accepting again at once would fail again at once (a spinning
            // core). Pause, doubling up to a second; `tick` accepts again.
            let l = &mut self.listeners[slot];
            l.backoff = (l.backoff * 2.0).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
            l.retry_at = now + l.backoff;
            self.stats.accept_pauses += 1.0;
            return;
        }
        self.listeners[slot].backoff = 0.0;
        if res >= 0 {
            let fd = res;
            let (kind, max) = (self.listeners[slot].kind, self.listeners[slot].limits.max_connections());
            if kind != ListenerKind::Node && self.listeners[slot].open >= max {
                // Full: say so (best effort, non-blocking) and close.
                let msg: Vec<u8> = if kind == ListenerKind::Http {
                    http::error_response("actor_overload", "too many connections", false)
                } else {
                    let mut out = Vec::new();
                    frame::write_close(&mut out, "too many connections");
                    out
                };
                // SAFETY: a non-blocking send of our own bytes on the descriptor we just got,
                // which we then close; nobody else uses it.
                unsafe { libc::send(fd, msg.as_ptr() as *const _, msg.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
                close_fd(fd);
                self.stats.refused_connections += 1.0;
                return self.arm_accept(ring, slot);
            }
            let one: i32 = 1;
            // SAFETY: `fd` is the new connection's descriptor, ours from here on.
            unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const i32 as *const _, 4) };
            let (kind, addr, tls, port) = {
                let l = &self.listeners[slot];
                (l.kind, *l.addr, l.tls.clone(), l.port)
            };
            let role = match kind {
                ListenerKind::Node => Role::Acceptor,
                ListenerKind::Tcp => Role::ListenerClient,
                ListenerKind::Http => Role::HttpClient,
                ListenerKind::Udp => return,
            };
            let c = self.new_conn(fd, role, addr);
            {
                let limits = self.listeners[slot].limits;
                self.listeners[slot].open += 1;
                let conn = &mut self.conns[c];
                conn.listener = slot;
                conn.limits = limits;
                conn.last_active = now;
            }
            self.conns[c].listener_port = port;
            if let Some(server) = tls {
                match server.session() {
                    Ok(session) => self.conns[c].tls = Some(session),
                    Err(e) => {
                        self.close(c, &e.to_string());
                        return self.arm_accept(ring, slot);
                    }
                }
            }
            if role == Role::Acceptor {
                if !self.start_handshake(c, handshake::Role::Acceptor, None, now) {
                    return self.arm_accept(ring, slot);
                }
            }
            self.arm_recv(ring, c);
            self.mark_dirty(c);
        }
        self.arm_accept(ring, slot);
    }

    // ---- client calls to other nodes' listeners ------------------------------------------

    /// Sends a CALL (or NOTIFY when corr = 0) with a luact-encoded body to the listener at
    /// `addr`; returns the connection id (replies arrive in this thread's inbox).
    pub fn send_call(&mut self, ring: &mut Ring, addr: &str, tls: u32, corr: u32, timeout_ms: u16, body: &[u8]) -> Result<u32> {
        let key = machine_id_of(addr)?;
        let c = match self.callers.get(&(key, tls)) {
            Some(&c) => c,
            None => {
                let sa = parse_addr(addr)?;
                let fd = new_socket()?;
                let c = self.new_conn(fd, Role::Caller, sa);
                self.conns[c].state = State::Connecting;
                self.conns[c].machine = key;
                self.conns[c].tls_profile = tls;
                if let Some(client) = (tls as usize).checked_sub(1).and_then(|i| self.client_tls.get(i)) {
                    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
                    match client.session(host) {
                        Ok(session) => self.conns[c].tls = Some(session),
                        Err(e) => {
                            self.close(c, &e.to_string());
                            return Err(Error::new(Status::BadArgument, e.to_string()));
                        }
                    }
                }
                self.callers.insert((key, tls), c);
                self.arm_connect(ring, c);
                c
            }
        };
        let kind = if corr == 0 { frame::KIND_NOTIFY } else { frame::KIND_CALL };
        // References we pass are signed, so the listener's node can tell them from forgeries.
        let decoded = match &self.ref_key {
            Some(_) if crate::wire::sbuf::may_have_tags(body) => crate::wire::sbuf::decode(body).ok(),
            _ => None,
        };
        let signed = match (&self.ref_key, decoded) {
            (Some(key), Some(mut v)) if trust::has_tags(&v) => {
                trust::sign_refs(&mut v, key);
                let mut out = Vec::with_capacity(body.len() + 64);
                crate::wire::sbuf::encode(&v, &mut out);
                Some(out)
            }
            _ => None,
        };
        // (a client CALL's `thread` field carries its timeout in milliseconds: PROTOCOL.md)
        self.queue_frame(c, kind, frame::CODEC_LUACT, timeout_ms, corr, signed.as_deref().unwrap_or(body))?;
        Ok(c as u32)
    }

    /// Sends a reply (a luact-encoded `{ok, n, values...}`) to a listener client.
    pub fn reply_client(&mut self, conn_id: u32, gen: u32, corr: u32, body: &[u8]) -> Result<()> {
        let c = conn_id as usize;
        let Some(conn) = self.conns.get(c) else { return Ok(()) };
        if conn.gen != gen || conn.state == State::Closing {
            return Ok(()); // the client left: nothing to answer
        }
        // The idle clock of a listener client restarts when it is answered (a long call is not
        // idleness).
        self.conns[c].last_active = crate::clock::monotonic();
        let conn = &self.conns[c];
        match conn.role {
            Role::ListenerClient => {
                let codec = conn.codec;
                let conn = &mut self.conns[c];
                if conn.calls_pending > 0 {
                    conn.calls_pending -= 1;
                    if conn.calls_pending + 1 == conn.limits.max_pipelined() {
                        self.to_resume.push(c); // reading paused at the limit: resume it
                    }
                }
                let out = edge::reply_to_codec(body, codec, self.ref_key.as_ref()).map_err(|e| Error::new(Status::BadArgument, e))?;
                if self.unread_beyond_limit(c, out.len() + frame::HEADER_LEN) {
                    return Ok(());
                }
                self.queue_frame(c, frame::KIND_REPLY, codec, 0, corr, &out)
            }
            Role::HttpClient => {
                let (ok, values) = edge::split_reply_for_outsider(body, self.ref_key.as_ref()).map_err(|e| Error::new(Status::BadArgument, e))?;
                let keep = conn.http_keep_alive;
                let resp = http::reply_response(ok, &values, keep);
                if self.unread_beyond_limit(c, resp.len()) {
                    return Ok(());
                }
                let conn = &mut self.conns[c];
                conn.wbuf.extend_from_slice(&resp);
                if !keep {
                    conn.close_after_send = true;
                }
                conn.http_busy = false;
                self.mark_dirty(c);
                // the next pipelined request, if one is waiting
                self.pending_http.push(c);
                Ok(())
            }
            _ => Err(Error::new(Status::BadArgument, "not a client connection")),
        }
    }

    /// A listener client that has not read earlier replies and would now hold more than
    /// `max_buffered` unsent bytes is closed (and counted): its replies are never dropped while
    /// the connection stays open. One reply alone may exceed the limit.
    pub(super) fn unread_beyond_limit(&mut self, c: usize, more: usize) -> bool {
        let conn = &self.conns[c];
        let queued = conn.wbuf.len() + conn.sending_tls.len() + conn.sending.len().saturating_sub(conn.sent);
        if queued == 0 || queued + more <= conn.limits.max_buffered() {
            return false;
        }
        self.stats.slow_readers += 1.0;
        let why = format!("the client does not read its replies ({} bytes unsent)", queued + more);
        self.close_with(c, &why);
        true
    }

    /// Whether a listener client must wait before more of its requests are read: `max_pipelined`
    /// calls unanswered (tcp://), or `max_buffered` bytes read ahead behind a call (http://).
    pub(super) fn read_paused(&self, c: usize) -> bool {
        let conn = &self.conns[c];
        match conn.role {
            Role::ListenerClient => conn.calls_pending >= conn.limits.max_pipelined(),
            Role::HttpClient => conn.http_busy && conn.inbuf.len() - conn.inpos >= conn.limits.max_buffered(),
            _ => false,
        }
    }

    /// Whether a listener client has a request in progress (bytes of an incomplete one).
    pub(super) fn has_partial(&self, c: usize) -> bool {
        let conn = &self.conns[c];
        match conn.role {
            Role::ListenerClient => !conn.decoder.is_idle() || conn.inpos < conn.inbuf.len(),
            Role::HttpClient => !conn.http_busy && conn.inpos < conn.inbuf.len(),
            _ => false,
        }
    }

    /// After the client's bytes were handled: starts (or ends) the clock of `header_timeout`.
    /// `progressed`: a whole request was taken from this read, so a partial one starts now.
    pub(super) fn update_partial(&mut self, c: usize, now: f64, progressed: bool) {
        if !self.conns.contains(c) || !matches!(self.conns[c].role, Role::ListenerClient | Role::HttpClient) {
            return;
        }
        let partial = self.has_partial(c);
        let conn = &mut self.conns[c];
        if !partial {
            conn.partial_since = 0.0;
        } else if conn.partial_since == 0.0 || progressed {
            conn.partial_since = now;
        }
    }

    /// Parses the next HTTP request of a client, if complete: a call goes to Lua (one at a time:
    /// the next request is looked at after the reply), anything else is answered here.
    pub(super) fn serve_http(&mut self, inboxes: &[Arc<Inbox>], c: usize, now: f64) {
        loop {
            let conn = &mut self.conns[c];
            if conn.state == State::Closing || conn.stalled.is_some() || conn.http_busy {
                return;
            }
            let parsed = http::parse_request(&conn.inbuf[conn.inpos..], 16 * 1024, CLIENT_MAX_FRAME.min(self.max_frame));
            match parsed {
                Ok(http::Parsed::Incomplete { expect_continue }) => {
                    if expect_continue && !conn.http_continue_sent {
                        conn.http_continue_sent = true;
                        conn.wbuf.extend_from_slice(http::CONTINUE);
                        self.mark_dirty(c);
                    }
                    return;
                }
                Ok(http::Parsed::Complete(req)) => {
                    self.requests_taken += 1;
                    let conn = &mut self.conns[c];
                    conn.inpos += req.consumed;
                    conn.http_continue_sent = false;
                    conn.http_keep_alive = req.keep_alive;
                    if conn.inpos >= conn.inbuf.len() {
                        conn.inbuf.clear();
                        conn.inpos = 0;
                    }
                    match req.immediate_response() {
                        Some(resp) => {
                            conn.wbuf.extend_from_slice(&resp);
                            if !req.keep_alive {
                                conn.close_after_send = true;
                            }
                            self.mark_dirty(c);
                            if !req.keep_alive {
                                return;
                            }
                        }
                        None => {
                            if let http::Route::Call { vid, method, mut args } = req.route {
                                if let Err(e) = edge::admit_args(&mut args, self.ref_key.as_ref()) {
                                    let keep = req.keep_alive;
                                    let resp = http::reply_response(false, &[edge::exception_value("bad_request", &e)], keep);
                                    let conn = &mut self.conns[c];
                                    conn.wbuf.extend_from_slice(&resp);
                                    if !keep {
                                        conn.close_after_send = true;
                                        self.mark_dirty(c);
                                        return;
                                    }
                                    self.mark_dirty(c);
                                    continue;
                                }
                                let gen = conn.gen;
                                conn.http_busy = true;
                                let port = self.conns[c].listener_port;
                                let mut m = edge::client_call_header(c as u32, gen, 1, false, port, req.timeout);
                                m.extend_from_slice(&edge::call_body(&vid, &method, &args));
                                self.deliver_one(inboxes, c, self.tid, m, now);
                            }
                            return;
                        }
                    }
                }
                Err(e) => {
                    let resp = e.response();
                    let conn = &mut self.conns[c];
                    conn.inbuf.clear();
                    conn.inpos = 0;
                    conn.wbuf.extend_from_slice(&resp);
                    conn.close_after_send = true;
                    self.mark_dirty(c);
                    return;
                }
            }
        }
    }
}
