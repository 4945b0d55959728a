//! What arrives on a node link or a listener client: connection events, TLS failures and their
//! reasons, frames parsed out of the received bytes, and their delivery into the threads'
//! inboxes (with the flow control that pauses reading while an inbox is full).
use super::*;

impl Transport {
    /// Pauses or resumes reading a connection: paused while its listener limits say so
    /// (`read_paused`) or while what it delivered waits for a full inbox (`reading_held`).
    pub(super) fn sync_reading(&mut self, ring: &mut Ring, c: usize) {
        let Some(conn) = self.conns.get(c) else { return };
        if conn.state == State::Closing {
            return;
        }
        let paused = self.read_paused(c);
        let hold = paused || conn.reading_held();
        if self.links.hold_reading(ring, conn.link, hold) && paused {
            self.stats.read_pauses += 1.0;
        }
    }

    /// What `links` says about one of our connections.
    pub(super) fn on_link_event(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], ev: Event, now: f64) {
        let link = match ev {
            Event::Accepted(l, link) => return self.on_accept(ring, l, link, now),
            Event::Connected(link, _) | Event::Readable(link, _) | Event::Writable(link, _) => link,
        };
        let c = self.by_link.get(link).copied().unwrap_or(NONE);
        match self.conns.get(c) {
            Some(conn) if conn.link == link && conn.state != State::Closing => {}
            _ => return, // a connection closed in this turn
        }
        match ev {
            Event::Connected(_, res) => self.on_connect(ring, c, res),
            Event::Readable(_, n) if n > 0 => self.on_recv(ring, inboxes, c, now),
            Event::Readable(_, 0) => self.close(c, "closed by peer"),
            Event::Readable(_, err) => {
                self.note_tls_failure(c, -err);
                let why = self.link_error(c, -err);
                self.close(c, &why); // (after a TLS failure `links` still sends its alert)
            }
            _ => {} // Writable: the transport bounds its queues itself
        }
    }

    /// Notes a TLS failure (`errno`) of a connection whose TLS or node handshake had not
    /// completed, for the handshake failures counted when it closes.
    pub(super) fn note_tls_failure(&mut self, c: usize, errno: i32) {
        if errno != crate::conn::ERR_TLS && errno != crate::conn::ERR_TLS_HANDSHAKE {
            return;
        }
        let Some(conn) = self.conns.get(c) else { return };
        if conn.state != State::Ready || self.links.tls_handshaking(conn.link) {
            self.conns[c].hs_fail = Some("tls");
        }
    }

    /// Why a connection failed: the TLS session's words, or the errno's.
    pub(super) fn link_error(&self, c: usize, errno: i32) -> String {
        if errno == crate::conn::ERR_TLS || errno == crate::conn::ERR_TLS_HANDSHAKE {
            let said = self.links.tls_error(self.conns[c].link);
            return if said.is_empty() { "TLS failed".to_string() } else { said.to_string() };
        }
        crate::status::os_error_text(errno)
    }

    pub(super) fn on_recv(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, now: f64) {
        let taken_before = self.requests_taken;
        let conn = &mut self.conns[c];
        conn.last_active = now;
        self.links.take_input(ring, conn.link, &mut conn.inbuf);
        self.resume(ring, inboxes, c, now);
        let progressed = self.requests_taken != taken_before;
        self.update_partial(c, now, progressed);
    }

    /// Decodes and handles the frames in `inbuf` until it is used up or a delivery stalls.
    /// Consecutive MSG frames of an authenticated node for the same thread go to its inbox as
    /// one entry (one allocation and one push for a read's worth of calls), in order. A batch is
    /// handed over before the next frame is taken, so when it stalls, every later frame is still
    /// in `inbuf` for after the retry.
    pub(super) fn process_frames(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, now: f64) {
        let mut batch: Option<Delivery> = None;
        loop {
            if !self.conns.contains(c) || self.conns[c].reading_held() || self.conns[c].state == State::Closing {
                return;
            }
            if batch.is_none() && self.read_paused(c) {
                return; // the rest waits in `inbuf` until replies go out (`to_resume`)
            }
            let conn = &mut self.conns[c];
            let batching = conn.state == State::Ready && matches!(conn.role, Role::Dialer | Role::Acceptor);
            if let Some(b) = &batch {
                // (between frames the decoder is empty and `inbuf` starts with a header)
                let joins = frame::peek_kind_thread(&conn.inbuf[conn.inpos..])
                    .is_some_and(|(kind, thread)| kind == frame::KIND_MSG && thread as usize == b.tid)
                    && b.bytes.len() < DELIVERY_MAX_BYTES
                    && b.count < DELIVERY_MAX_COUNT;
                if !joins {
                    let b = batch.take().expect("checked above");
                    self.deliver(inboxes, c, b, now);
                    continue;
                }
            }
            let taken = conn.decoder.push(&conn.inbuf[conn.inpos..]);
            conn.inpos += taken;
            match conn.decoder.next() {
                Ok(Some((h, body))) if batching && h.kind == frame::KIND_MSG => {
                    self.frames_in += 1;
                    match &mut batch {
                        Some(b) => {
                            b.bytes.extend_from_slice(&body);
                            b.count += 1;
                        }
                        None => batch = Some(Delivery { tid: h.thread as usize, hdr: h.thread, bytes: body, count: 1 }),
                    }
                }
                Ok(Some((h, body))) => {
                    self.frames_in += 1;
                    self.on_frame(ring, inboxes, c, h, body, now)
                }
                Ok(None) => {
                    let conn = &mut self.conns[c];
                    if conn.inpos >= conn.inbuf.len() {
                        conn.inbuf.clear();
                        conn.inpos = 0;
                        if let Some(b) = batch.take() {
                            self.deliver(inboxes, c, b, now);
                        }
                        return;
                    }
                }
                Err(e) => {
                    if let Some(b) = batch.take() {
                        self.deliver(inboxes, c, b, now);
                    }
                    let conn = &mut self.conns[c];
                    let node_handshake = conn.state == State::Handshaking && matches!(conn.role, Role::Dialer | Role::Acceptor);
                    if node_handshake {
                        conn.hs_fail = Some(if looks_like_tls(&conn.inbuf) { "tls" } else { "protocol" });
                    }
                    if node_handshake && looks_like_tls(&conn.inbuf) {
                        return self.close_with(c, &format!("{e} (the peer speaks TLS: is it a node started with the 'tls' option, and this one without?)"));
                    }
                    return self.close_with(c, &e.to_string());
                }
            }
        }
    }

    /// A frame of a connection still in its handshake (node links: the secret, TLS, identities).
    fn on_handshake_frame(&mut self, ring: &mut Ring, c: usize, h: &Header, body: &[u8]) {
        let step = match self.conns[c].handshake.as_mut() {
            Some(hs) => hs.on_frame(h, body),
            None => return self.close_with(c, "unexpected frame"),
        };
        match step {
            Err(handshake::HandshakeError::PeerClosed(reason)) => {
                self.conns[c].hs_fail = Some("peer_refused");
                self.close(c, &format!("peer closed: {reason}"))
            }
            Err(e) => {
                self.conns[c].hs_fail = Some(e.reason());
                self.close_with(c, &e.to_string())
            }
            Ok(step) => self.on_handshake_step(ring, c, step),
        }
    }

    /// A call or notify from a listener's client: checked and rebuilt, then delivered to this
    /// thread (a bad one is answered here, never reaches Lua).
    fn on_client_call(&mut self, inboxes: &[Arc<Inbox>], c: usize, h: &Header, body: &[u8], now: f64) {
        self.requests_taken += 1;
        let conn = &mut self.conns[c];
        conn.codec = h.codec;
        if h.kind == frame::KIND_CALL {
            conn.calls_pending += 1; // until reply_client answers it
        }
        // (a client CALL's `thread` field is its timeout in milliseconds, 0: the listener's)
        let port = conn.listener_port;
        let head = edge::client_call_header(c as u32, conn.gen, h.corr, h.kind == frame::KIND_NOTIFY, port, h.thread as f64 / 1000.0);
        // An unauthenticated client: its body is checked and rebuilt here (structure,
        // depth, plain data and signed references only: `wire::trust`) before any of it
        // reaches LuaJIT's decoder.
        let msg = edge::call_from_codec(body, h.codec, self.ref_key.as_ref()).map(|b| {
            let mut m = head;
            m.extend_from_slice(&b);
            m
        });
        match msg {
            Ok(m) => self.deliver_one(inboxes, c, self.tid, m, now),
            Err(e) => {
                if h.kind == frame::KIND_CALL {
                    self.conns[c].calls_pending -= 1; // answered here
                    // a codec-0 body that is not even string.buffer data comes from a
                    // client that is not luact: its error goes back as JSON, which it can read
                    let codec = edge::reply_codec_for_refused(h.codec, body);
                    let err = edge::error_reply(codec, "bad_request", &e);
                    if !self.unread_beyond_limit(c, err.len() + frame::HEADER_LEN) {
                        let _ = self.queue_frame(c, frame::KIND_REPLY, codec, 0, h.corr, &err);
                    }
                }
            }
        }
    }

    pub(super) fn on_frame(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, h: Header, body: Vec<u8>, now: f64) {
        let role = self.conns[c].role;
        if self.conns[c].state == State::Handshaking {
            return self.on_handshake_frame(ring, c, &h, &body);
        }
        match (role, h.kind) {
            (_, frame::KIND_PING) => {
                let _ = self.queue_frame(c, frame::KIND_PONG, 0, 0, h.corr, &[]);
            }
            (_, frame::KIND_PONG) => {}
            (_, frame::KIND_CLOSE) => self.close(c, &format!("peer closed: {}", String::from_utf8_lossy(&body))),
            (Role::Dialer | Role::Acceptor, frame::KIND_MSG) => {
                self.deliver_one(inboxes, c, h.thread as usize, body, now);
            }
            (Role::Dialer | Role::Acceptor, frame::KIND_ACK) => match <[u8; 8]>::try_from(body.as_slice()) {
                Ok(bytes) => self.conns[c].credit.give_back(h.thread, h.corr, u64::from_le_bytes(bytes)),
                Err(_) => self.close_with(c, &format!("bad ACK frame: a body of {} bytes (8 expected)", body.len())),
            },
            (Role::ListenerClient, frame::KIND_CALL | frame::KIND_NOTIFY) => self.on_client_call(inboxes, c, &h, &body, now),
            (Role::Caller, frame::KIND_REPLY) => {
                let mut m = edge::caller_reply_header(h.corr);
                // The listener is outside what we trust: no function in its reply is loaded.
                let checked = if crate::wire::sbuf::may_have_tags(&body) {
                    crate::wire::sbuf::decode(&body).map_err(|e| format!("a malformed reply from the listener: {e}")).and_then(|v| trust::check_reply(&v))
                } else {
                    Ok(()) // no table with a metatable, so no function (Lua's decoder checks the rest)
                };
                match checked {
                    Ok(()) => m.extend_from_slice(&body),
                    Err(e) => m.extend_from_slice(&edge::error_reply(frame::CODEC_LUACT, "actor_runtime_error", &e)),
                }
                let tid = self.tid;
                self.deliver_one(inboxes, c, tid, m, now);
            }
            _ => self.close_with(c, &format!("unexpected frame kind {}", h.kind)),
        }
    }

    /// Pushes one message into thread `tid`'s inbox (see `deliver`).
    pub(super) fn deliver_one(&mut self, inboxes: &[Arc<Inbox>], c: usize, tid: usize, msg: Vec<u8>, now: f64) {
        self.deliver(inboxes, c, Delivery { tid, hdr: tid as u16, bytes: msg, count: 1 }, now);
    }

    /// Pushes messages into a thread's inbox (thread 0 or an unknown one: thread 1); when it is
    /// full, holds them and stops reading this connection until they are delivered (see
    /// `retry_stalled`).
    pub(super) fn deliver(&mut self, inboxes: &[Arc<Inbox>], c: usize, d: Delivery, now: f64) {
        let tid = if d.tid == 0 || d.tid > inboxes.len() { 1 } else { d.tid };
        let Some(inbox) = inboxes.get(tid - 1) else {
            return;
        };
        let conn = &mut self.conns[c];
        if !matches!(conn.role, Role::Dialer | Role::Acceptor) {
            if inbox.push_batch(&d.bytes, d.count) == Status::Full {
                conn.stalled = Some(Delivery { tid, ..d });
            }
            return;
        }
        // A node's messages: those for a full inbox wait in the overflow (behind any already
        // waiting for the same inbox), and the connection goes on serving the other threads.
        let waiting = !conn.overflow.is_empty() && conn.overflow.holds(tid);
        if waiting || inbox.push_batch(&d.bytes, d.count) == Status::Full {
            if !waiting {
                self.flow_receive_pauses += 1; // deliveries for this inbox wait from now on
            }
            self.conns[c].overflow.push(Delivery { tid, ..d });
            return;
        }
        self.acknowledge(c, d.hdr, d.count, d.bytes.len(), now);
    }
}
