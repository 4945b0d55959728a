//! The transport's clock work, once per loop turn (`tick`): handshake and idle deadlines,
//! connections timed out, redials, and freed slots trimmed.
use super::*;

impl Transport {
    /// Timeouts and stalled deliveries; returns the next deadline (seconds) if any.
    pub fn tick(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], now: f64) -> Option<f64> {
        let mut next: Option<f64> = None;
        let mut due = self.due(now, &mut next);
        self.close_timed_out(&mut due);
        self.trim_freed(now, &mut next);
        if let Some(at) = self.links.tick(ring, now) {
            earliest(&mut next, at);
        }
        for c in std::mem::take(&mut self.to_resume) {
            if self.conns.contains(c) && self.conns[c].state != State::Closing && !self.conns[c].reading_held() {
                self.resume(ring, inboxes, c, now);
                self.update_partial(c, now, true);
            }
        }
        for c in std::mem::take(&mut self.pending_http) {
            if self.conns.contains(c) {
                self.serve_http(inboxes, c, now);
                self.sync_reading(ring, c);
                self.update_partial(c, now, true);
            }
        }
        for c in due.overflowing {
            if self.conns.contains(c) && self.conns[c].state != State::Closing {
                self.retry_overflow(ring, inboxes, c, now);
            }
            // looked at again soon: nothing else wakes this thread when another makes room
            if self.conns.contains(c) && !self.conns[c].overflow.is_empty() {
                earliest(&mut next, now + 0.001);
            }
        }
        for c in due.acks_due {
            if self.conns.contains(c) && self.conns[c].state == State::Ready {
                self.send_acks(c);
            }
        }
        for c in due.unstall {
            if let Some(d) = self.conns[c].stalled.take() {
                self.deliver(inboxes, c, d, now);
                if self.conns[c].stalled.is_none() {
                    // resume reading, and the frames already buffered (which may stall again)
                    self.resume(ring, inboxes, c, now);
                }
            }
            // A connection still stalled is looked at again soon: nothing else wakes this
            // thread when the other thread makes room.
            if self.conns.contains(c) && self.conns[c].stalled.is_some() {
                earliest(&mut next, now + 0.001);
            }
        }
        self.sweep(ring);
        next
    }

    /// What is due at `now`, by connection (gathered first, acted on by `tick` after the
    /// scan); the earliest later deadline goes into `next`.
    pub(super) fn due(&self, now: f64, next: &mut Option<f64>) -> Due {
        let mut due = Due::default();
        for (c, conn) in self.conns.iter() {
            if !conn.overflow.is_empty() && conn.state != State::Closing {
                due.overflowing.push(c);
            }
            if let Some(at) = conn.acks.due() {
                if now >= at {
                    due.acks_due.push(c);
                } else {
                    earliest(next, at);
                }
            }
            if matches!(conn.state, State::Connecting | State::Handshaking) && conn.deadline > 0.0 {
                if now >= conn.deadline {
                    due.expired.push(c);
                } else {
                    earliest(next, conn.deadline);
                }
            }
            if conn.stalled.is_some() {
                due.unstall.push(c);
            }
            if matches!(conn.role, Role::ListenerClient | Role::HttpClient) && conn.state != State::Closing {
                // A request in progress must complete in time; a connection with nothing in
                // progress is closed when idle for too long.
                let ends = if conn.partial_since > 0.0 {
                    Some((conn.partial_since + conn.limits.header_timeout, true))
                } else if conn.calls_pending == 0 && !conn.http_busy && conn.stalled.is_none() {
                    Some((conn.last_active + conn.limits.idle_timeout, false))
                } else {
                    None
                };
                if let Some((at, partial)) = ends {
                    if now >= at {
                        if partial { due.slow.push(c) } else { due.idle.push(c) }
                    } else {
                        earliest(next, at);
                    }
                }
            }
        }
        due
    }

    /// Closes the connections whose handshake, request or idle time ran out.
    pub(super) fn close_timed_out(&mut self, due: &mut Due) {
        for c in std::mem::take(&mut due.expired) {
            if let Some(conn) = self.conns.get_mut(c) {
                conn.hs_fail = Some("timeout");
            }
            self.close_with(c, "handshake timed out");
        }
        for c in std::mem::take(&mut due.slow) {
            self.stats.header_timeouts += 1.0;
            let why = format!("the request did not complete within {} s", self.conns[c].limits.header_timeout);
            if self.conns[c].role == Role::HttpClient {
                self.close(c, &why); // HTTP has no CLOSE frame; the client sees the connection end
            } else {
                self.close_with(c, &why);
            }
        }
        for c in std::mem::take(&mut due.idle) {
            self.stats.idle_timeouts += 1.0;
            let why = format!("idle for {} s", self.conns[c].limits.idle_timeout);
            if self.conns[c].role == Role::HttpClient {
                self.close(c, &why);
            } else {
                self.close_with(c, &why);
            }
        }
    }

    /// Gives memory back after many connections were freed (at most every TRIM_EVERY).
    pub(super) fn trim_freed(&mut self, now: f64, next: &mut Option<f64>) {
        // (counted where the buffers are really freed: `links` frees a closed connection once
        // its operations in flight completed, which may be turns after the close)
        let freed = (self.links.freed - self.freed_at_trim) as usize;
        if freed > 0 {
            let at = self.last_trim + TRIM_EVERY;
            if now >= at && (freed >= TRIM_AFTER || self.links.is_empty() || now >= at + TRIM_EVERY) {
                // the slab keeps room for as many connections as it ever held (2000 clients:
                // megabytes): give back the vacant slots at its end (live keys stay valid)
                self.conns.shrink_to_fit();
                self.links.shrink();
                // SAFETY: malloc_trim only releases free memory of the allocator's arenas.
                unsafe { libc::malloc_trim(0) };
                self.freed_at_trim = self.links.freed;
                self.last_trim = now;
            } else {
                let when = if now >= at { at + TRIM_EVERY } else { at };
                earliest(next, when);
            }
        }
    }
}
