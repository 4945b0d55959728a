//! How a node link or listener client ends: the reason it is closed with, the goodbye it sends
//! (if any), and the sweep that frees what closed this turn.
use super::*;

impl Transport {
    /// Closes a connection at once, telling the peer why with a CLOSE frame (best effort).
    pub(super) fn close_with(&mut self, c: usize, reason: &str) {
        let mut out = Vec::new();
        frame::write_close(&mut out, reason);
        self.close_as(c, reason, Goodbye::Now(out));
    }

    /// Closes a connection at once (what it queued is dropped), telling Lua why.
    pub(super) fn close(&mut self, c: usize, reason: &str) {
        self.close_as(c, reason, Goodbye::Now(Vec::new()));
    }

    pub(super) fn close_as(&mut self, c: usize, reason: &str, goodbye: Goodbye) {
        if std::env::var_os("LUACT_NET_DEBUG").is_some() {
            let _ = crate::logger::write_line(format!("luact net: thread {} connection {c} closed: {reason}\n", self.tid).as_bytes());
        }
        let now = crate::clock::monotonic();
        let Some(conn) = self.conns.get_mut(c) else { return };
        if conn.state == State::Closing {
            return;
        }
        let was_ready = conn.state == State::Ready;
        // refused before it could carry anything: a node's handshake, a tls:// client's TLS
        let handshaking = conn.state == State::Handshaking;
        let tls_refused = self.links.tls_handshaking(conn.link);
        let peer = if handshaking || tls_refused { self.links.peer_addr(conn.link).map_or("?".to_string(), |a| a.text()) } else { String::new() };
        // a failed handshake, counted by reason: one of a node link (what went wrong, or the
        // peer went away during it), or a TLS handshake of any connection
        let failed = conn.hs_fail.or_else(|| {
            if handshaking && matches!(conn.role, Role::Dialer | Role::Acceptor) {
                Some("closed")
            } else if tls_refused && conn.state != State::Connecting {
                Some("tls")
            } else {
                None
            }
        });
        if let Some(i) = failed.and_then(|r| crate::metrics::HANDSHAKE_REASONS.iter().position(|x| *x == r)) {
            self.hs_failures[i] += 1;
        }
        conn.state = State::Closing;
        self.closing.push((c, goodbye));
        let machine = conn.machine;
        match conn.role {
            Role::Dialer => {
                if self.dialed.get(&machine) == Some(&c) {
                    self.dialed.remove(&machine);
                }
                let losses = self.losses.entry(machine).or_insert(0);
                *losses = (*losses + 1).min(16);
                let pause = (QUARANTINE * 2f64.powi(*losses as i32 - 1)).min(QUARANTINE_MAX);
                self.quarantine.insert(machine, now + pause);
                // a connection that never authenticated sent none of the messages queued on it
                let kind = if was_ready { EV_NODE_DOWN } else { EV_NODE_UNREACHED };
                self.push_event(kind, c, machine as f64, reason);
            }
            Role::Acceptor => {
                if machine >= CLIENT_MACHINES && self.dialed.get(&machine) == Some(&c) {
                    self.dialed.remove(&machine);   // a node client's connection (node_link.rs)
                }
                if machine != 0 {
                    self.push_event(EV_NODE_DOWN, c, machine as f64, reason);
                } else if handshaking {
                    let why = format!("refused a node connection from {peer}: {reason}");
                    self.push_event(EV_CONN_REFUSED, c, 0.0, &why);
                }
            }
            Role::Caller => {
                let key = (machine, conn.tls_profile);
                if self.callers.get(&key) == Some(&c) {
                    self.callers.remove(&key);
                }
                self.push_event(EV_REMOTE_LISTENER_DOWN, c, machine as f64, reason);
            }
            Role::ListenerClient | Role::HttpClient => {
                if tls_refused {
                    let why = format!("refused a tls:// client from {peer}: {reason}");
                    self.push_event(EV_CONN_REFUSED, c, 0.0, &why);
                }
                self.push_event(EV_CLIENT_CLOSED, c, 0.0, reason);
            }
        }
    }

    /// Ends in `links` the connections closed in this turn and frees their state (kept until
    /// now so that code running after a close still finds it, in state Closing).
    pub(super) fn sweep(&mut self, ring: &mut Ring) {
        if self.closing.is_empty() {
            return;
        }
        let now = crate::clock::monotonic();
        for (c, goodbye) in std::mem::take(&mut self.closing) {
            if !self.conns.contains(c) {
                continue;
            }
            let conn = self.conns.remove(c);
            if self.by_link.get(conn.link) == Some(&c) {
                self.by_link[conn.link] = NONE;
            }
            match goodbye {
                Goodbye::Now(words) => self.links.close_now(ring, conn.link, &words),
                Goodbye::AfterSending => self.links.close_draining(ring, conn.link, now + LINGER),
            }
            if let Some(l) = self.listeners.get_mut(conn.listener) {
                l.open = l.open.saturating_sub(1);
            }
        }
    }
}
