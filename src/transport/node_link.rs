//! Node links: dialing a node (with quarantine after losses), the handshake on a new
//! connection, sending node messages under per-thread flow control (`node_flow.rs`: credit,
//! ACK frames, the overflow of full inboxes), and dropping a node the cluster declared dead.
//! The socket mechanics they use are in `mod.rs`.
use super::*;

impl Transport {
    // ---- node connections ---------------------------------------------------------------

    /// `expect_peer`: the node a dialer dialed (its HELLO must name it before we prove
    /// anything: see `wire::handshake`).
    pub(super) fn start_handshake(&mut self, c: usize, role: handshake::Role, expect_peer: Option<u64>, now: f64) -> bool {
        let Some(node) = self.node.clone() else {
            self.close(c, "this process is not a node (no address)");
            return false;
        };
        let config = handshake::Config {
            role,
            node_id: node.machine_id,
            cluster: node.cluster.clone(),
            addr: node.hello_addr(),
            secret: node.secret.clone(),
            expect_peer,
        };
        let (hs, hello) = match Handshake::new(config, nonce()) {
            Ok(x) => x,
            Err(e) => {
                self.close(c, &e.to_string());
                return false;
            }
        };
        let conn = &mut self.conns[c];
        conn.handshake = Some(hs);
        if conn.state != State::Connecting {
            conn.state = State::Handshaking; // (a dialed one handshakes once connected: on_connect)
        }
        conn.deadline = now + HANDSHAKE_TIMEOUT;
        self.queue_bytes(c, &hello);
        true
    }

    /// The dialed connection to `machine`, dialing it if needed.
    pub(super) fn node_conn(&mut self, ring: &mut Ring, machine: u64, now: f64) -> Result<usize> {
        if let Some(&c) = self.dialed.get(&machine) {
            return Ok(c);
        }
        if machine >= CLIENT_MACHINES {
            // a node client has no address to dial: only the connection it opened reaches it,
            // and that one lives on the thread that accepted it (thread 1, luact.node relays)
            return Err(Error::new(Status::Unreachable, format!("{} is a node client and its connection to this thread is gone", machine_name(machine))));
        }
        if let Some(&until) = self.quarantine.get(&machine) {
            if now < until {
                return Err(Error::new(Status::Unreachable, format!("node {} was lost", machine_name(machine))));
            }
            self.quarantine.remove(&machine);
        }
        if self.node.is_none() {
            return Err(Error::new(Status::Unreachable, "this process is not a node: start it with an 'address' to call actors on other nodes"));
        }
        // Dial from this node's own IP (any port): a node's traffic carries its address both
        // ways, so a firewall rule (or an nftables partition in the specs) can name a node.
        let own = self.node.as_ref().and_then(|n| parse_v4(&n.addr).ok()).map(|own| SockAddr::from_std(std::net::SocketAddrV4::new(*own.ip(), 0).into()));
        let setup = |fd| {
            if let Some(own) = own {
                // SAFETY: binds our fresh socket to a valid socket address of its stated length.
                let rc = unsafe { libc::bind(fd, own.ptr(), own.socklen()) };
                if rc < 0 {
                    return Err(os_error("bind"));
                }
            }
            set_node_buffers(fd);
            Ok(())
        };
        let to = machine_addr(machine);
        let link = match self.node.as_ref().and_then(|n| n.tls.as_ref()) {
            // mutual TLS: the node's certificate must be of our CA and name the IP we dial
            Some(tls) => {
                let session = tls.dial(*to.ip()).map_err(|e| Error::new(Status::Unreachable, e.to_string()))?;
                self.links.connect_tls_with(ring, SockAddr::from_std(to.into()), session, setup)?
            }
            None => self.links.connect_with(ring, SockAddr::from_std(to.into()), setup)?,
        };
        let c = self.new_conn(link, Role::Dialer);
        self.conns[c].machine = machine;
        self.conns[c].state = State::Connecting;
        self.dialed.insert(machine, c);
        let role = if self.node.as_ref().is_some_and(|n| n.is_client()) { handshake::Role::Client } else { handshake::Role::Dialer };
        if !self.start_handshake(c, role, Some(machine), now) {
            // (closed: the calls waiting on it fail with the reason, as for any lost dial)
            return Err(Error::new(Status::Unreachable, format!("cannot start a handshake with {}", machine_name(machine))));
        }
        Ok(c)
    }

    /// A connect (and, for a TLS one, its TLS handshake) finished: 0 or a negative errno.
    pub(super) fn on_connect(&mut self, ring: &mut Ring, c: usize, res: i32) {
        if self.conns[c].state != State::Connecting {
            // an accepted TLS connection's handshake: nothing to do when it completed; when it
            // failed, the connection ends (`links` still sends the alert: the client hears why)
            if res < 0 {
                self.note_tls_failure(c, -res);
                let why = self.link_error(c, -res);
                let link = self.conns[c].link;
                if self.conns[c].role == Role::Acceptor && self.links.tls_peer_plain(link) {
                    // a plain node dialed our TLS node address: tell it why, in a CLOSE frame it
                    // can read (nothing else is sent in clear, and nothing it sent is read)
                    self.links.drop_tls_for_plain_peer(link);
                    let mut out = Vec::new();
                    frame::write_close(&mut out, "this node's links are TLS: start the dialing node with the 'tls' option too");
                    return self.close_as(c, &why, Goodbye::Now(out));
                }
                self.close(c, &why);
            }
            return;
        }
        if res < 0 {
            if res == -libc::ECONNREFUSED && self.conns[c].role == Role::Dialer {
                let machine = self.conns[c].machine;
                self.push_event(EV_NODE_REFUSED, c, machine as f64, "connection refused");
            }
            self.note_tls_failure(c, -res);
            let msg = self.link_error(c, -res);
            return self.close(c, &format!("connect failed: {msg}"));
        }
        let conn = &mut self.conns[c];
        conn.state = if conn.handshake.is_some() { State::Handshaking } else { State::Ready };
        self.sync_reading(ring, c);
    }

    /// Closes every node connection to or from `machine` (the cluster declared it dead): each
    /// raises EV_NODE_DOWN as a lost connection would, and sends to it wait out the quarantine.
    /// Returns how many were closed.
    pub fn drop_machine(&mut self, machine: u64, reason: &str) -> usize {
        let victims: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.machine == machine && matches!(c.role, Role::Dialer | Role::Acceptor) && c.state != State::Closing)
            .map(|(i, _)| i)
            .collect();
        for &c in &victims {
            self.close_with(c, reason);
        }
        victims.len()
    }

    /// Queues a node message for thread `thread` of node `machine`.
    /// Queues a message for thread `thread` of node `machine`; refused (`Status::Full`) when
    /// that thread has not yet taken the window of messages already sent to it (`node_flow.rs`).
    pub fn send_node(&mut self, ring: &mut Ring, machine: u64, thread: u16, body: &[u8], now: f64) -> Result<()> {
        let c = self.node_conn(ring, machine, now)?;
        let max_msgs = self.max_queued_msgs;
        if let Err((msgs, bytes)) = self.conns[c].credit.take(thread, body.len(), max_msgs) {
            self.flow_send_pauses += 1;
            let why = format!("thread {thread} of node {} has not taken the {msgs} messages ({bytes} bytes) sent to it before", machine_name(machine));
            return Err(Error::new(Status::Full, why));
        }
        let queued = self.queue_frame(c, frame::KIND_MSG, 0, thread, 0, body);
        if let Err(e) = &queued {
            self.conns[c].credit.give_back(thread, 1, body.len() as u64);
            if e.status() == Status::Full {
                self.flow_send_pauses += 1; // the connection's send queue is full
            }
        }
        queued
    }

    /// Records messages put into an inbox for the node at the other end of `c`, and sends ACKs
    /// when they are due at once.
    pub(super) fn acknowledge(&mut self, c: usize, thread: u16, msgs: usize, bytes: usize, now: f64) {
        if self.conns[c].acks.delivered(thread, msgs, bytes, now) {
            self.send_acks(c);
        }
    }

    /// Sends an ACK frame for every receiving thread with unacknowledged deliveries.
    pub(super) fn send_acks(&mut self, c: usize) {
        for (thread, msgs, bytes) in self.conns[c].acks.take() {
            let _ = self.queue_frame(c, frame::KIND_ACK, 0, thread, msgs, &bytes.to_le_bytes());
        }
    }

    pub(super) fn on_handshake_step(&mut self, ring: &mut Ring, c: usize, step: Step) {
        if let Some(out) = step.send {
            self.queue_bytes(c, &out);
        }
        if let Some(peer) = step.done {
            let conn = &mut self.conns[c];
            // The machine id we dialed is the address we dialed: the peer must be that node.
            if conn.role == Role::Dialer && peer.node_id != conn.machine {
                let why = format!("dialed {} but the peer says it is {}", machine_name(conn.machine), machine_name(peer.node_id));
                conn.hs_fail = Some("protocol");
                return self.close_with(c, &why);
            }
            let client = conn.role == Role::Acceptor && peer.role == handshake::Role::Client && peer.node_id >= CLIENT_MACHINES;
            if client {
                // the node's answers to a client go over its connection, found by its id: two
                // clients with one id would take each other's replies. Another client (another
                // token) with the id of one connected now is refused; the same one dialing
                // again replaces its connection.
                let taken = self.dialed.get(&peer.node_id).and_then(|&old| self.conns.get(old).filter(|o| old != c && o.state != State::Closing));
                if taken.is_some_and(|o| o.client_token != peer.addr) {
                    let why = format!(
                        "duplicate client id: another node client connected as {} (run this one again: it draws a new id)",
                        machine_name(peer.node_id)
                    );
                    self.conns[c].hs_fail = Some("duplicate_client");
                    return self.close_with(c, &why);
                }
            }
            let conn = &mut self.conns[c];
            if client {
                conn.client_token = peer.addr.clone();
            }
            conn.state = State::Ready;
            conn.handshake = None;
            conn.machine = peer.node_id;
            conn.decoder.set_limit(self.max_frame);
            if conn.role == Role::Dialer {
                self.losses.remove(&peer.node_id);
            }
            if conn.role == Role::Acceptor && peer.role == handshake::Role::Client && peer.node_id >= CLIENT_MACHINES {
                // a node client: what this thread sends it goes back over this connection
                // (the newest one, if it dialed again; closing removes it: mod.rs close_as)
                self.dialed.insert(peer.node_id, c);
            }
            let held = std::mem::take(&mut self.conns[c].held);
            self.queue_bytes(c, &held);
            self.push_event(EV_NODE_UP, c, peer.node_id as f64, "");
            let _ = ring;
        }
    }

    /// Offers a node connection's waiting messages to their inboxes again (in order per inbox),
    /// acknowledges what went in, and resumes reading if the overflow was what held it.
    pub(super) fn retry_overflow(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, now: f64) {
        let held = self.conns[c].overflow.is_over_limit();
        let mut went = Vec::new();
        self.conns[c].overflow.retry(
            |d| inboxes.get(d.tid - 1).is_some_and(|inbox| inbox.push_batch(&d.bytes, d.count) != Status::Full),
            |d| went.push((d.hdr, d.count, d.bytes.len())),
        );
        for (hdr, count, bytes) in went {
            self.acknowledge(c, hdr, count, bytes, now);
        }
        if held && !self.conns[c].reading_held() && self.conns[c].state != State::Closing {
            self.resume(ring, inboxes, c, now);
        }
    }
}
