//! How a connection ends: gracefully (what is queued still goes out, then a shutdown), at once
//! with last words, or with a reset; lingering deadlines (`tick`); and freeing the slot once no
//! operation is in flight.
use super::*;

impl Conns {
    pub(super) fn shutdown(conn: &mut Conn) {
        // SAFETY: `fd` is ours; shutdown ends the in-flight receive (it completes with 0).
        unsafe { libc::shutdown(conn.fd, libc::SHUT_RDWR) };
    }

    /// The end of a graceful close once everything queued went out: a FIN. A draining
    /// connection keeps reading (and dropping) the peer's input until its FIN or the linger
    /// deadline (`tick` aborts it); any other is shut down both ways.
    pub(super) fn finish_graceful(conn: &mut Conn) {
        if !conn.draining || conn.err != 0 {
            return Self::shutdown(conn);
        }
        // SAFETY: `fd` is ours; SHUT_WR sends the FIN and leaves the receive side open.
        unsafe { libc::shutdown(conn.fd, libc::SHUT_WR) };
    }

    /// Submits a receive into the connection's own buffer, whose bytes are dropped (draining).
    pub(super) fn drain(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) {
        conn.recv_inflight = true;
        let entry = opcode::Recv::new(types::Fd(conn.fd), conn.rbuf.as_mut_ptr(), conn.rbuf.len() as u32)
            .build()
            .user_data(user_data(owner, OP_RECV, c, conn.gen));
        ring.push(entry);
    }

    /// Ends a closing connection at once: the peer gets a reset, the receive and the send in
    /// flight are cancelled (a shutdown would send a FIN before the reset).
    pub(super) fn abort_now(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) {
        conn.wbuf.clear();
        let lg = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: SO_LINGER with a zero timeout on our own descriptor (close then sends a
        // reset); setsockopt reads `size_of::<linger>()` bytes from the live `lg`.
        unsafe { libc::setsockopt(conn.fd, libc::SOL_SOCKET, libc::SO_LINGER, &lg as *const _ as *const _, std::mem::size_of::<libc::linger>() as u32) };
        for (op, inflight) in [(OP_RECV, conn.recv_inflight), (OP_SEND, conn.send_inflight)] {
            if inflight {
                ring.push(opcode::AsyncCancel::new(user_data(owner, op, c, conn.gen)).build().user_data(user_data(owner, OP_CANCEL, c, 0)));
            }
        }
    }

    /// What every close does first: the connection stops being usable (no event about it
    /// follows), what it received goes, and so does what it queued if it never connected or
    /// failed; a connect in flight is cancelled. Returns the state it was in (None: closing
    /// already, or gone).
    pub(super) fn begin_close(&mut self, ring: &mut Ring, c: usize) -> Option<State> {
        let owner = self.owner;
        let conn = self.conns.get_mut(c)?;
        let was = conn.state;
        if was == State::Closing {
            return None;
        }
        conn.state = State::Closing;
        conn.inbuf = Vec::new();
        if conn.err != 0 || was == State::Connecting {
            conn.wbuf.clear();
        }
        if conn.connect_inflight {
            ring.push(opcode::AsyncCancel::new(user_data(owner, OP_CONNECT, c, conn.gen)).build().user_data(user_data(owner, OP_CANCEL, c, 0)));
        }
        Some(was)
    }

    /// Closes a connection: what is queued is still sent unless `abort` (then it is dropped and
    /// the peer sees the connection end at once). A graceful close whose bytes are not all sent
    /// by `linger_until` (monotonic seconds; 0: no limit) is aborted then (see `tick`). No event
    /// about it follows.
    pub fn close(&mut self, ring: &mut Ring, c: usize, abort: bool, linger_until: f64) {
        let Some(was) = self.begin_close(ring, c) else { return };
        if abort {
            Self::abort_now(ring, self.owner, c, &mut self.conns[c]);
            return self.maybe_free(ring, c);
        }
        self.send_then_shutdown(ring, c, was == State::Connecting, linger_until);
    }

    /// `close` without abort, whose end reads and drops the peer's input until its FIN (see
    /// `Conn::draining`), within `linger_until` (which must be set: a peer that never closes
    /// is then aborted).
    pub fn close_draining(&mut self, ring: &mut Ring, c: usize, linger_until: f64) {
        if let Some(conn) = self.conns.get_mut(c) {
            if conn.state != State::Closing && linger_until > 0.0 {
                conn.may_drain = true;
            }
        }
        self.close(ring, c, false, linger_until);
    }

    /// The rest of a graceful close: what is queued (and, after a TLS failure, the session's
    /// alert) goes out, then a FIN.
    pub(super) fn send_then_shutdown(&mut self, ring: &mut Ring, c: usize, was_connecting: bool, linger_until: f64) {
        let owner = self.owner;
        let conn = &mut self.conns[c];
        let gen = conn.gen;
        // a TLS failure leaves its alert in the session: it still goes out (send_next)
        let tls_alert = matches!(conn.err, ERR_TLS | ERR_TLS_HANDSHAKE);
        if let Some(tls) = conn.tls.as_mut() {
            if conn.err == 0 && !was_connecting {
                tls.close(); // close_notify goes out with what is queued
            }
        }
        if conn.may_drain && linger_until > 0.0 && conn.err == 0 && !was_connecting && !conn.eof {
            conn.draining = true;
            if !conn.recv_inflight {
                Self::drain(ring, owner, c, conn);
            }
        }
        if !conn.send_inflight {
            // send what is queued now; the shutdown follows its completion (on_send)
            if !((conn.err == 0 || tls_alert) && !was_connecting && Self::send_next(ring, owner, c, conn)) {
                Self::finish_graceful(conn);
                if !conn.draining {
                    return self.maybe_free(ring, c);
                }
            }
        }
        if linger_until > 0.0 {
            self.lingering.push((c, gen, linger_until));
        }
        self.maybe_free(ring, c);
    }

    /// Closes a connection at once, dropping what is queued: `last_words` (a protocol's goodbye)
    /// are tried once without waiting, unless a send is in flight (they would land in the middle
    /// of it); on a TLS connection they go inside TLS, followed by close_notify. Then a FIN, and
    /// the slot is freed once the operations in flight complete. After a TLS failure the
    /// session's alert is what the peer must hear: it goes out as in a graceful close (aborted
    /// after `ALERT_LINGER`). No event about it follows.
    pub fn close_now(&mut self, ring: &mut Ring, c: usize, last_words: &[u8]) {
        let Some(was) = self.begin_close(ring, c) else { return };
        let conn = &mut self.conns[c];
        if matches!(conn.err, ERR_TLS | ERR_TLS_HANDSHAKE) {
            let until = crate::clock::monotonic() + ALERT_LINGER;
            return self.send_then_shutdown(ring, c, was == State::Connecting, until);
        }
        conn.wbuf.clear();
        if was == State::Open && !conn.send_inflight && conn.err == 0 {
            let mut out = Vec::new();
            match conn.tls.as_mut() {
                Some(tls) => {
                    if conn.tls_ready && !last_words.is_empty() {
                        let _ = tls.write(last_words);
                    }
                    tls.close();
                    out = tls.take_outgoing();
                }
                None => out.extend_from_slice(last_words),
            }
            if !out.is_empty() {
                // SAFETY: a non-blocking send of our own bytes on our own descriptor; nothing
                // else is sending on it (no send in flight).
                unsafe { libc::send(conn.fd, out.as_ptr() as *const _, out.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            }
        }
        Self::shutdown(conn);
        self.maybe_free(ring, c);
    }

    /// Aborts the closed connections whose linger time passed (their peer did not take what
    /// was queued); returns the next such deadline.
    pub fn tick(&mut self, ring: &mut Ring, now: f64) -> Option<f64> {
        let mut next: Option<f64> = None;
        for l in 0..self.listeners.capacity() {
            let Some(lis) = self.listeners.get_mut(l) else { continue };
            if lis.retry_at > 0.0 {
                if now >= lis.retry_at {
                    lis.retry_at = 0.0;
                    self.arm_accept(ring, l);
                } else {
                    next = Some(next.map_or(lis.retry_at, |n: f64| n.min(lis.retry_at)));
                }
            }
        }
        if self.lingering.is_empty() {
            return next;
        }
        for (c, gen, at) in std::mem::take(&mut self.lingering) {
            let Some(conn) = self.conns.get_mut(c) else { continue };
            if conn.gen != gen || conn.state != State::Closing {
                continue;
            }
            if now >= at {
                Self::abort_now(ring, self.owner, c, conn);
                self.maybe_free(ring, c);
            } else {
                next = Some(next.map_or(at, |n: f64| n.min(at)));
                self.lingering.push((c, gen, at));
            }
        }
        next
    }

    pub(super) fn maybe_free(&mut self, ring: &mut Ring, c: usize) {
        let conn = &self.conns[c];
        if conn.state != State::Closing || conn.recv_inflight || conn.send_inflight || conn.connect_inflight {
            return;
        }
        close_fd(conn.fd);
        let listener = conn.listener;
        self.conns.remove(c);
        self.freed += 1;
        if let Some(l) = listener {
            if let Some(lis) = self.listeners.get_mut(l) {
                lis.live = lis.live.saturating_sub(1);
            }
            self.arm_accept(ring, l);
        }
    }
}
