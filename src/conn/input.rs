//! The receive side of a connection: one receive in flight at a time into the connection's
//! buffer, TLS records decrypted into plaintext, read-ahead bounded per connection, and the
//! owner's view of what arrived (`view`, `take_input`, `consume`, `hold_reading`).
use super::*;

impl Conns {
    pub(super) fn arm_recv(&mut self, ring: &mut Ring, c: usize) {
        let conn = &mut self.conns[c];
        if conn.recv_inflight || conn.held || conn.eof || conn.err != 0 || conn.state != State::Open || conn.inbuf.len() >= READ_AHEAD {
            return;
        }
        conn.recv_inflight = true;
        let entry = opcode::Recv::new(types::Fd(conn.fd), conn.rbuf.as_mut_ptr(), conn.rbuf.len() as u32)
            .build()
            .user_data(user_data(self.owner, OP_RECV, c, conn.gen));
        ring.push(entry);
    }

    pub(super) fn on_recv(&mut self, ring: &mut Ring, c: usize, res: i32) {
        let conn = &mut self.conns[c];
        conn.recv_inflight = false;
        if res > 0 {
            self.bytes_in += res as u64;
        }
        if conn.state == State::Closing {
            if conn.draining && res > 0 {
                Self::drain(ring, self.owner, c, conn); // dropped: the connection is closing
                return;
            }
            return self.maybe_free(ring, c);
        }
        if res > 0 && conn.tls.is_some() {
            return self.on_tls_recv(ring, c, res as usize);
        }
        if res <= 0 && conn.tls.is_some() && !conn.tls_ready && res != -libc::EINTR && res != -libc::EAGAIN {
            // the peer went away in the middle of the handshake
            conn.err = if res < 0 { -res } else { libc::ECONNRESET };
            self.events.push_back(Event::Connected(c, -conn.err));
            return;
        }
        if res > 0 {
            conn.inbuf.extend_from_slice(&conn.rbuf[..res as usize]);
            self.events.push_back(Event::Readable(c, res));
            self.arm_recv(ring, c);
        } else if res == 0 {
            conn.eof = true;
            self.events.push_back(Event::Readable(c, 0));
        } else if res == -libc::EINTR || res == -libc::EAGAIN {
            self.arm_recv(ring, c);
        } else {
            if conn.err == 0 {
                conn.err = -res;
            }
            self.events.push_back(Event::Readable(c, res));
            if conn.want_writable > 0 {
                self.events.push_back(Event::Writable(c, res));
            }
        }
    }

    /// Received ciphertext: the plaintext it yields goes to `inbuf`; what the session has to
    /// send (handshake messages, alerts) goes out with the next flush.
    pub(super) fn on_tls_recv(&mut self, ring: &mut Ring, c: usize, n: usize) {
        let conn = &mut self.conns[c];
        let Some(tls) = conn.tls.as_mut() else { return };
        // (decrypted straight into the input buffer: node links read megabytes a second)
        let fed = tls.feed_into(&conn.rbuf[..n], &mut conn.inbuf);
        let handshaking = tls.is_handshaking();
        let peer_closed = tls.peer_closed();
        match fed {
            Ok(plain) => {
                if !conn.tls_ready && !handshaking {
                    conn.tls_ready = true;
                    self.events.push_back(Event::Connected(c, 0));
                }
                if plain > 0 {
                    self.events.push_back(Event::Readable(c, plain as i32));
                }
                if peer_closed {
                    conn.eof = true;
                    self.events.push_back(Event::Readable(c, 0));
                }
            }
            Err(e) => {
                conn.tls_error = e.to_string();
                conn.tls_peer_plain = !conn.tls_ready && e.peer_not_tls();
                conn.err = if conn.tls_ready { ERR_TLS } else { ERR_TLS_HANDSHAKE };
                if conn.tls_ready {
                    self.events.push_back(Event::Readable(c, -conn.err));
                    if conn.want_writable > 0 {
                        self.events.push_back(Event::Writable(c, -conn.err));
                    }
                } else {
                    self.events.push_back(Event::Connected(c, -conn.err));
                }
            }
        }
        self.mark_dirty(c);
        self.arm_recv(ring, c);
    }

    /// The received bytes not consumed yet, whether the peer finished sending, and the
    /// connection's failure (errno, 0 for none).
    pub fn view(&self, c: usize) -> Option<(&[u8], bool, i32)> {
        let conn = self.conns.get(c)?;
        Some((&conn.inbuf, conn.eof, conn.err))
    }

    /// Moves the received bytes not consumed yet to the end of `into` (without copying when
    /// `into` is empty: the buffers trade places); receiving resumes if it had paused for
    /// read-ahead.
    pub fn take_input(&mut self, ring: &mut Ring, c: usize, into: &mut Vec<u8>) {
        let Some(conn) = self.conns.get_mut(c) else { return };
        if into.is_empty() {
            std::mem::swap(into, &mut conn.inbuf);
        } else {
            into.extend_from_slice(&conn.inbuf);
        }
        conn.inbuf.clear();
        self.arm_recv(ring, c);
    }

    /// Pauses (`hold`) or resumes receiving on a connection, for an owner that cannot take more
    /// yet (a receive already in flight still completes). Returns whether that changed anything.
    pub fn hold_reading(&mut self, ring: &mut Ring, c: usize, hold: bool) -> bool {
        let Some(conn) = self.conns.get_mut(c) else { return false };
        if conn.held == hold {
            return false;
        }
        conn.held = hold;
        if !hold {
            self.arm_recv(ring, c);
        }
        true
    }

    /// Whether a TLS connection's handshake has not completed yet.
    pub fn tls_handshaking(&self, c: usize) -> bool {
        self.conns.get(c).is_some_and(|x| x.tls.is_some() && !x.tls_ready)
    }

    /// Whether a TLS connection's handshake failed because the peer does not speak TLS.
    pub fn tls_peer_plain(&self, c: usize) -> bool {
        self.conns.get(c).is_some_and(|x| x.tls_peer_plain)
    }

    /// Drops the TLS session of a connection whose peer does not speak TLS (`tls_peer_plain`),
    /// so that `close_now`'s last words reach it in clear (the protocol on top can then say why
    /// in the peer's own language); what was queued for the session goes with it.
    pub fn drop_tls_for_plain_peer(&mut self, c: usize) {
        if let Some(conn) = self.conns.get_mut(c) {
            if conn.tls_peer_plain {
                conn.tls = None;
                conn.err = 0;
                conn.wbuf.clear();
            }
        }
    }

    /// What the TLS session of a connection said when it failed ("" if it did not).
    pub fn tls_error(&self, c: usize) -> &str {
        self.conns.get(c).map_or("", |x| &x.tls_error)
    }

    /// Drops the first `n` received bytes (the owner took them); receiving resumes if it had
    /// paused for read-ahead.
    pub fn consume(&mut self, ring: &mut Ring, c: usize, n: usize) {
        let Some(conn) = self.conns.get_mut(c) else { return };
        let n = n.min(conn.inbuf.len());
        conn.inbuf.drain(..n);
        self.arm_recv(ring, c);
    }
}
