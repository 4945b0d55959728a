//! The send side of a connection: bytes queued by the owner, one send in flight at a time,
//! submitted once per loop turn (`flush`), TLS records encrypted on the way out.
use super::*;

impl Conns {
    /// Bytes queued and in flight.
    pub(super) fn queued(conn: &Conn) -> usize {
        conn.wbuf.len() + conn.sending.len().saturating_sub(conn.sent)
    }

    /// Bytes queued and in flight on a connection (0 for one that is gone).
    pub fn unsent(&self, c: usize) -> usize {
        self.conns.get(c).map_or(0, Self::queued)
    }

    /// The send queue of a connection, for an owner that writes into it directly and bounds
    /// what it queues itself (`unsent`): what it writes goes out with the next `flush`. None for
    /// a connection that failed or is closing (there is nobody to send to).
    pub fn queue(&mut self, c: usize) -> Option<&mut Vec<u8>> {
        let conn = self.conns.get_mut(c)?;
        if conn.err != 0 || conn.state == State::Closing {
            return None;
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(c);
        }
        Some(&mut conn.wbuf)
    }

    /// Queues up to `limit` bytes minus what is queued already; returns how many were taken.
    /// When not all of `data` fit, `Event::Writable` follows once there is room for more.
    pub fn send(&mut self, c: usize, data: &[u8], limit: usize) -> Result<usize> {
        let conn = self.conns.get_mut(c).ok_or_else(|| Error::new(Status::BadArgument, "no such connection"))?;
        if conn.err != 0 || conn.state == State::Closing {
            return Ok(0);
        }
        let room = limit.saturating_sub(Self::queued(conn));
        let n = data.len().min(room);
        conn.wbuf.extend_from_slice(&data[..n]);
        if n < data.len() {
            conn.want_writable = limit.max(1);
        }
        if n > 0 {
            self.mark_dirty(c);
        }
        Ok(n)
    }

    pub(super) fn mark_dirty(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(c);
        }
    }

    /// Submits one send per connection with queued bytes (called once per loop turn: what a
    /// turn queued goes out in one write).
    pub fn flush(&mut self, ring: &mut Ring) {
        for c in std::mem::take(&mut self.dirty) {
            let Some(conn) = self.conns.get_mut(c) else { continue };
            conn.dirty = false;
            if conn.send_inflight || conn.state == State::Connecting {
                continue;
            }
            Self::send_next(ring, self.owner, c, conn);
        }
    }

    /// Starts sending what is queued (encrypted first on a TLS connection); false if nothing is.
    pub(super) fn send_next(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) -> bool {
        if let Some(tls) = conn.tls.as_mut() {
            if !conn.wbuf.is_empty() {
                if tls.write(&conn.wbuf).is_err() && conn.err == 0 {
                    conn.err = ERR_TLS;
                }
                conn.wbuf.clear();
            }
            conn.sending.clear();
            tls.take_outgoing_into(&mut conn.sending);
        } else {
            std::mem::swap(&mut conn.sending, &mut conn.wbuf);
            conn.wbuf.clear();
        }
        conn.sent = 0;
        if conn.sending.is_empty() {
            return false;
        }
        Self::submit_send(ring, owner, c, conn);
        true
    }

    pub(super) fn submit_send(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) {
        conn.send_inflight = true;
        let rest = &conn.sending[conn.sent..];
        let entry = opcode::Send::new(types::Fd(conn.fd), rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(owner, OP_SEND, c, conn.gen));
        ring.push(entry);
    }

    pub(super) fn on_send(&mut self, ring: &mut Ring, c: usize, res: i32) {
        let owner = self.owner;
        let conn = &mut self.conns[c];
        conn.send_inflight = false;
        if res < 0 && res != -libc::EINTR && res != -libc::EAGAIN {
            if conn.err == 0 {
                conn.err = -res;
            }
            conn.sending.clear();
            conn.wbuf.clear();
            if conn.state == State::Closing {
                return self.maybe_free(ring, c);
            }
            self.events.push_back(Event::Writable(c, res));
            self.events.push_back(Event::Readable(c, res));
            return;
        }
        conn.sent += res.max(0) as usize;
        self.bytes_out += res.max(0) as u64;
        if conn.sent < conn.sending.len() {
            return Self::submit_send(ring, owner, c, conn);
        }
        conn.sending.clear();
        conn.sent = 0;
        if conn.state == State::Closing {
            if Self::send_next(ring, owner, c, conn) {
                return;
            }
            Self::finish_graceful(conn);
            return self.maybe_free(ring, c);
        }
        if !conn.wbuf.is_empty() || conn.tls.is_some() {
            self.mark_dirty(c);
        }
        let conn = &mut self.conns[c];
        if conn.want_writable > 0 && Self::queued(conn) < conn.want_writable {
            conn.want_writable = 0;
            self.events.push_back(Event::Writable(c, 0));
        }
    }
}
