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
        self.listen_as(ring, addr, kind, limits, reuse_port, None)
    }

    fn listen_as(&mut self, ring: &mut Ring, addr: &str, kind: ListenerKind, limits: ListenLimits, reuse_port: bool, tls: Option<ServerTls>) -> Result<u16> {
        let sa = SockAddr::from_std(parse_v4(addr)?.into());
        if kind == ListenerKind::Udp {
            return self.listen_udp(ring, sa, limits, reuse_port);
        }
        // (the transport refuses a client past its listener's max_connections itself, with a
        // word: `links` accepts them all)
        let node = kind == ListenerKind::Node;
        let link = self.links.listen_with(ring, sa, 1024, usize::MAX, reuse_port, |fd| {
            if node {
                set_node_buffers(fd); // accepted connections inherit them
            }
        })?;
        if let Some(server) = tls {
            self.links.set_listener_tls(link, Arc::new(server));
        } else if let Some(node_tls) = self.node.as_ref().and_then(|n| n.tls.as_ref()).filter(|_| node) {
            // node links in mutual TLS: every node that dials us shows a certificate of our CA
            self.links.set_listener_tls(link, node_tls.server());
        }
        let port = self.links.local_addr(Some(link), None).map_or(0, |a| a.port());
        let slot = self.listeners.insert(Listener { fd: -1, kind, buf: Box::new([]), limits, open: 0, port });
        self.by_link_listener.insert(link, slot);
        Ok(port)
    }

    fn listen_udp(&mut self, ring: &mut Ring, sa: SockAddr, limits: ListenLimits, reuse_port: bool) -> Result<u16> {
        let fd = new_datagram_socket()?;
        if let Err(e) = sa.bind_listener(fd, reuse_port) {
            close_fd(fd);
            return Err(e);
        }
        let port = SockAddr::of_fd(fd, false).map_or(0, |a| a.port());
        let slot = self.listeners.insert(Listener { fd, kind: ListenerKind::Udp, buf: vec![0u8; 65536].into_boxed_slice(), limits, open: 0, port });
        self.arm_datagram(ring, slot);
        Ok(port)
    }

    /// A tls:// listener: the luact protocol of tcp://, inside TLS.
    pub fn listen_tls(&mut self, ring: &mut Ring, addr: &str, cert: &str, key: &str, client_ca: Option<&str>, limits: ListenLimits, reuse_port: bool) -> Result<u16> {
        let server = ServerTls::from_files(cert, key, client_ca).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
        self.listen_as(ring, addr, ListenerKind::Tcp, limits, reuse_port, Some(server))
    }

    /// A TLS client profile (CA to trust, optional client certificate); returns its id for
    /// `send_call`.
    pub fn add_client_tls(&mut self, ca: &str, cert_key: Option<(&str, &str)>) -> Result<u32> {
        let client = ClientTls::from_files(ca, cert_key).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
        self.client_tls.push(Arc::new(client));
        Ok(self.client_tls.len() as u32)
    }

    /// Connection `link` accepted by listener `l` of `links` (its TLS session, if any, is
    /// there already): refused with a word past the listener's `max_connections`, else served.
    pub(super) fn on_accept(&mut self, ring: &mut Ring, l: usize, link: usize, now: f64) {
        let Some(&slot) = self.by_link_listener.get(&l) else {
            return self.links.close(ring, link, true, 0.0);
        };
        let (kind, max) = (self.listeners[slot].kind, self.listeners[slot].limits.max_connections());
        if kind != ListenerKind::Node && self.listeners[slot].open >= max {
            let msg: Vec<u8> = if kind == ListenerKind::Http {
                http::error_response("actor_overload", "too many connections", false)
            } else {
                let mut out = Vec::new();
                frame::write_close(&mut out, "too many connections");
                out
            };
            self.links.close_now(ring, link, &msg);
            self.stats.refused_connections += 1.0;
            return;
        }
        let role = match kind {
            ListenerKind::Node => Role::Acceptor,
            ListenerKind::Tcp => Role::ListenerClient,
            ListenerKind::Http => Role::HttpClient,
            ListenerKind::Udp => return,
        };
        let c = self.new_conn(link, role);
        let (limits, port) = (self.listeners[slot].limits, self.listeners[slot].port);
        self.listeners[slot].open += 1;
        let conn = &mut self.conns[c];
        conn.listener = slot;
        conn.limits = limits;
        conn.last_active = now;
        conn.listener_port = port;
        if role == Role::Acceptor {
            self.start_handshake(c, handshake::Role::Acceptor, None, now);
        }
    }

    // ---- client calls to other nodes' listeners ------------------------------------------

    /// Sends a CALL (or NOTIFY when corr = 0) with a luact-encoded body to the listener at
    /// `addr`; returns the connection id (replies arrive in this thread's inbox).
    pub fn send_call(&mut self, ring: &mut Ring, addr: &str, tls: u32, corr: u32, timeout_ms: u16, body: &[u8]) -> Result<u32> {
        let key = machine_id_of(addr)?;
        let c = match self.callers.get(&(key, tls)) {
            Some(&c) => c,
            None => {
                let sa = SockAddr::inet(addr)?;
                let link = match (tls as usize).checked_sub(1).and_then(|i| self.client_tls.get(i)) {
                    Some(client) => {
                        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
                        let session = client.session(host).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
                        self.links.connect_tls(ring, sa, session)?
                    }
                    None => self.links.connect(ring, sa)?,
                };
                let c = self.new_conn(link, Role::Caller);
                self.conns[c].state = State::Connecting;
                self.conns[c].machine = key;
                self.conns[c].tls_profile = tls;
                self.callers.insert((key, tls), c);
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
                self.conns[c].http_busy = false;
                self.send_http(c, &resp, keep);
                // the next pipelined request, if one is waiting
                self.pending_http.push(c);
                Ok(())
            }
            _ => Err(Error::new(Status::BadArgument, "not a client connection")),
        }
    }

    /// A listener client that has not read earlier replies and would now hold more than
    /// `max_buffered` unsent bytes is closed (and counted): its replies are never dropped while
    /// the connection stays open. One reply alone may exceed the limit. The close is graceful:
    /// the replies queued already, then a CLOSE frame saying why (tcp://), then a FIN, all
    /// within `LINGER` seconds (past that the connection is reset).
    pub(super) fn unread_beyond_limit(&mut self, c: usize, more: usize) -> bool {
        let conn = &self.conns[c];
        let queued = self.links.unsent(conn.link);
        if queued == 0 || queued + more <= conn.limits.max_buffered() {
            return false;
        }
        self.stats.slow_readers += 1.0;
        let why = format!("the client does not read its replies ({} bytes unsent)", queued + more);
        if conn.role == Role::ListenerClient {
            let link = conn.link;
            if let Some(q) = self.links.queue(link) {
                frame::write_close(q, &why);
            }
        }
        self.close_as(c, &why, Goodbye::AfterSending);
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

    /// Queues an HTTP response; without `keep_alive` the connection then closes once it is
    /// sent. Returns whether the connection stays open.
    fn send_http(&mut self, c: usize, resp: &[u8], keep_alive: bool) -> bool {
        self.queue_bytes(c, resp);
        if !keep_alive {
            self.close_as(c, "done", Goodbye::AfterSending);
        }
        keep_alive
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
                        self.queue_bytes(c, http::CONTINUE);
                    }
                    return;
                }
                Ok(http::Parsed::Complete(req)) => {
                    self.take_http_request(c, &req);
                    if !self.answer_http(inboxes, c, req, now) {
                        return;
                    }
                }
                Err(e) => {
                    let resp = e.response();
                    let conn = &mut self.conns[c];
                    conn.inbuf.clear();
                    conn.inpos = 0;
                    self.send_http(c, &resp, false);
                    return;
                }
            }
        }
    }

    /// Counts a complete request and consumes its bytes from the client's input.
    fn take_http_request(&mut self, c: usize, req: &http::Request) {
        self.requests_taken += 1;
        self.frames_in += 1;
        let conn = &mut self.conns[c];
        conn.inpos += req.consumed;
        conn.http_continue_sent = false;
        conn.http_keep_alive = req.keep_alive;
        if conn.inpos >= conn.inbuf.len() {
            conn.inbuf.clear();
            conn.inpos = 0;
        }
    }

    /// The response to `/metrics` or to the dashboard's page, served here (or refused when the
    /// listener does not expose it); None for any other route.
    fn built_in_response(&self, inboxes: &[Arc<Inbox>], c: usize, req: &http::Request) -> Option<Vec<u8>> {
        let limits = &self.conns[c].limits;
        let (exposed, refused_route) = match req.route {
            http::Route::Metrics => (limits.expose_metrics(), http::Route::metrics_refused()),
            http::Route::Dashboard => (limits.expose_dashboard(), http::Route::dashboard_refused()),
            _ => return None,
        };
        if !exposed {
            let refused = http::Request { route: refused_route, ..req.clone() };
            return Some(refused.immediate_response().unwrap_or_default());
        }
        Some(if req.route == http::Route::Metrics {
            let s = crate::metrics::Snapshot { n_core: inboxes.len(), inbox_depth: inboxes.iter().map(|i| i.len()).collect() };
            http::metrics_response(&crate::metrics::render(s), req.keep_alive)
        } else {
            http::dashboard_response(req.keep_alive)
        })
    }

    /// Answers one complete request, here or by handing a call to Lua (the client then waits
    /// for its reply). Returns whether the client's next request may be looked at now.
    fn answer_http(&mut self, inboxes: &[Arc<Inbox>], c: usize, req: http::Request, now: f64) -> bool {
        if let Some(resp) = self.built_in_response(inboxes, c, &req) {
            return self.send_http(c, &resp, req.keep_alive);
        }
        let req = if let http::Route::DashboardState { after } = req.route {
            let exposed = self.conns[c].limits.expose_dashboard();
            let route = if exposed { http::Route::dashboard_state_call(after) } else { http::Route::dashboard_refused() };
            http::Request { route, ..req }
        } else {
            req
        };
        if let Some(resp) = req.immediate_response() {
            return self.send_http(c, &resp, req.keep_alive);
        }
        let (keep_alive, timeout) = (req.keep_alive, req.timeout);
        let http::Route::Call { vid, method, mut args } = req.route else { return false };
        if let Err(e) = edge::admit_args(&mut args, self.ref_key.as_ref()) {
            let resp = http::reply_response(false, &[edge::exception_value("bad_request", &e)], keep_alive);
            return self.send_http(c, &resp, keep_alive);
        }
        let conn = &mut self.conns[c];
        conn.http_busy = true;
        let (gen, port) = (conn.gen, conn.listener_port);
        let mut m = edge::client_call_header(c as u32, gen, 1, false, port, timeout);
        m.extend_from_slice(&edge::call_body(&vid, &method, &args));
        self.deliver_one(inboxes, c, self.tid, m, now);
        false
    }
}
