//! User sockets (`luact.socket`): the protocol that hands a thread's stream connections
//! (`conn.rs`) to Lua. Lua names a connection or listener by a handle (slot and generation in
//! 31 bits, so it fits the `res` of a completion); what happens to it reaches Lua as a
//! `Completion` whose `user_data` is the handle and whose `flags` say what happened (the loop's
//! `io_handlers` dispatch them). Reads stay in the connection's buffer until Lua takes them.
use crate::conn::{Conns, Event, SockAddr};
use crate::datagram::Datagrams;
use crate::ring::{Completion, Ring};
use crate::status::{Error, Result, Status};

/// `flags` of a socket completion (mirrored in lua/luact/socket.lua).
pub const EV_CONNECTED: u32 = 1;
pub const EV_READABLE: u32 = 2;
pub const EV_WRITABLE: u32 = 3;
pub const EV_ACCEPTED: u32 = 4;

const SLOT_BITS: u32 = 20;
const GEN_MASK: u32 = 0x1ff;
const LISTENER: u32 = 1 << 30;
const UDP: u32 = 1 << 29;

fn handle(slot: usize, gen: u32, listener: bool) -> u32 {
    (slot as u32 & ((1 << SLOT_BITS) - 1)) | ((gen & GEN_MASK) << SLOT_BITS) | if listener { LISTENER } else { 0 }
}

fn split(h: u32) -> (usize, u32, bool) {
    ((h & ((1 << SLOT_BITS) - 1)) as usize, (h >> SLOT_BITS) & 0x1ff, h & LISTENER != 0)
}

fn bad_handle() -> Error {
    Error::new(Status::BadArgument, "not an open socket of this thread")
}

/// Parses "tcp" (family 0: "ip:port") or "unix" (family 1: a path) addresses.
pub fn address(family: i32, text: &str) -> Result<SockAddr> {
    match family {
        0 => SockAddr::inet(text),
        1 => SockAddr::unix(text),
        _ => Err(Error::new(Status::BadArgument, "unknown address family")),
    }
}

#[derive(Default)]
pub struct Sockets {
    conns: Conns,
    /// TLS client configurations by (CA, certificate, key) paths: built once per thread.
    client_tls: std::collections::HashMap<(String, String, String), std::sync::Arc<crate::tls::ClientTls>>,
    /// UDP sockets (handles with the UDP bit).
    pub datagrams: Datagrams,
}

impl Sockets {
    fn conn(&self, h: u32) -> Result<usize> {
        let (slot, gen, listener) = split(h);
        match self.conns.conn_gen(slot) {
            Some(g) if !listener && g & GEN_MASK == gen => Ok(slot),
            _ => Err(bad_handle()),
        }
    }

    fn listener(&self, h: u32) -> Result<usize> {
        let (slot, gen, listener) = split(h);
        match self.conns.listener_gen(slot) {
            Some(g) if listener && g & GEN_MASK == gen => Ok(slot),
            _ => Err(bad_handle()),
        }
    }

    fn conn_handle(&self, c: usize) -> u32 {
        handle(c, self.conns.conn_gen(c).unwrap_or(0), false)
    }

    pub fn connect(&mut self, ring: &mut Ring, addr: SockAddr) -> Result<u32> {
        let c = self.conns.connect(ring, addr)?;
        Ok(self.conn_handle(c))
    }

    /// Connects with TLS: trusting the CA bundle at `ca`, presenting `cert`/`key` when both
    /// are given, verifying the server's certificate against `server_name`.
    pub fn connect_tls(&mut self, ring: &mut Ring, addr: SockAddr, server_name: &str, ca: &str, cert: &str, key: &str) -> Result<u32> {
        let k = (ca.to_string(), cert.to_string(), key.to_string());
        let client = match self.client_tls.get(&k) {
            Some(c) => c.clone(),
            None => {
                let pair = if cert.is_empty() || key.is_empty() { None } else { Some((cert, key)) };
                let c = std::sync::Arc::new(
                    crate::tls::ClientTls::from_files(ca, pair).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?,
                );
                self.client_tls.insert(k, c.clone());
                c
            }
        };
        let session = client.session(server_name).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
        let c = self.conns.connect_tls(ring, addr, session)?;
        Ok(self.conn_handle(c))
    }

    /// A TLS listener: `cert`/`key` PEM files; `client_ca` (may be empty) requires client
    /// certificates signed by it.
    #[allow(clippy::too_many_arguments)]
    pub fn listen_tls(&mut self, ring: &mut Ring, addr: SockAddr, backlog: i32, max_connections: usize, reuse_port: bool, cert: &str, key: &str, client_ca: &str) -> Result<u32> {
        let ca = if client_ca.is_empty() { None } else { Some(client_ca) };
        let server = std::sync::Arc::new(
            crate::tls::ServerTls::from_files(cert, key, ca).map_err(|e| Error::new(Status::BadArgument, e.to_string()))?,
        );
        let h = self.listen(ring, addr, backlog, max_connections, reuse_port)?;
        self.conns.set_listener_tls(split(h).0, server);
        Ok(h)
    }

    pub fn listen(&mut self, ring: &mut Ring, addr: SockAddr, backlog: i32, max_connections: usize, reuse_port: bool) -> Result<u32> {
        let l = self.conns.listen(ring, addr, backlog, max_connections, reuse_port)?;
        Ok(handle(l, self.conns.listener_gen(l).unwrap_or(0), true))
    }

    pub fn send(&mut self, h: u32, data: &[u8], limit: usize) -> Result<usize> {
        let c = self.conn(h)?;
        self.conns.send(c, data, limit)
    }

    pub fn view(&self, h: u32) -> Result<(&[u8], bool, i32)> {
        let c = self.conn(h)?;
        self.conns.view(c).ok_or_else(bad_handle)
    }

    pub fn consume(&mut self, ring: &mut Ring, h: u32, n: usize) -> Result<()> {
        let c = self.conn(h)?;
        self.conns.consume(ring, c, n);
        Ok(())
    }

    pub fn close(&mut self, ring: &mut Ring, h: u32, abort: bool, linger_until: f64) -> Result<()> {
        if split(h).2 {
            let l = self.listener(h)?;
            self.conns.close_listener(ring, l);
        } else {
            let c = self.conn(h)?;
            self.conns.close(ring, c, abort, linger_until);
        }
        Ok(())
    }

    /// The peer's address ("ip:port" or a path) of a connection; the bound address of a
    /// listener.
    pub fn address_of(&self, h: u32, local: bool) -> Result<SockAddr> {
        if split(h).2 {
            let l = self.listener(h)?;
            self.conns.local_addr(Some(l), None).ok_or_else(bad_handle)
        } else {
            let c = self.conn(h)?;
            if local { self.conns.local_addr(None, Some(c)) } else { self.conns.peer_addr(c) }.ok_or_else(bad_handle)
        }
    }

    pub fn on_completion(&mut self, ring: &mut Ring, user_data: u64, res: i32) {
        if crate::op_id::owner(user_data) == Some(crate::op_id::Owner::Datagrams) {
            self.datagrams.on_completion(ring, user_data, res);
        } else {
            self.conns.on_completion(ring, user_data, res);
        }
    }

    fn udp(&self, h: u32) -> Result<usize> {
        let (slot, gen, _) = split(h);
        match self.datagrams.gen_of(slot) {
            Some(g) if h & UDP != 0 && g & GEN_MASK == gen => Ok(slot),
            _ => Err(bad_handle()),
        }
    }

    /// A UDP socket bound to `addr`; returns its handle.
    pub fn udp_open(&mut self, ring: &mut Ring, addr: SockAddr) -> Result<u32> {
        let slot = self.datagrams.open(ring, addr)?;
        Ok(handle(slot, self.datagrams.gen_of(slot).unwrap_or(0), false) | UDP)
    }

    pub fn udp_sendto(&mut self, ring: &mut Ring, h: u32, data: &[u8], to: SockAddr) -> Result<bool> {
        let slot = self.udp(h)?;
        self.datagrams.sendto(ring, slot, data, to)
    }

    /// Takes the next datagram: its bytes and source address, valid until the next take.
    pub fn udp_take(&mut self, h: u32) -> Result<Option<(&[u8], SockAddr)>> {
        let slot = self.udp(h)?;
        Ok(if self.datagrams.take(slot) { self.datagrams.current.as_ref().map(|(b, a)| (&b[..], *a)) } else { None })
    }

    pub fn udp_close(&mut self, ring: &mut Ring, h: u32) -> Result<()> {
        let slot = self.udp(h)?;
        self.datagrams.close(ring, slot);
        Ok(())
    }

    pub fn udp_local(&self, h: u32) -> Result<SockAddr> {
        let slot = self.udp(h)?;
        self.datagrams.local_addr(slot).ok_or_else(bad_handle)
    }

    pub fn flush(&mut self, ring: &mut Ring) {
        self.conns.flush(ring);
    }

    /// Aborts closed connections past their linger time; returns the next such deadline.
    pub fn tick(&mut self, ring: &mut Ring, now: f64) -> Option<f64> {
        self.conns.tick(ring, now)
    }

    /// Whether events wait for Lua (the loop must not sleep then).
    pub fn pending(&self) -> bool {
        self.conns.has_events() || self.datagrams.has_events()
    }

    /// Moves events into `out` as completions; returns how many (the rest wait for next turn).
    pub fn take_events(&mut self, ring: &mut Ring, out: &mut [Completion]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(slot) = self.datagrams.pop_event() else { break };
            let Some(gen) = self.datagrams.gen_of(slot) else { continue };
            out[n] = Completion { user_data: (handle(slot, gen, false) | UDP) as u64, res: 1, flags: EV_READABLE };
            n += 1;
        }
        while n < out.len() {
            let Some(ev) = self.conns.pop_event() else { break };
            let (slot, res, flags, listener) = match ev {
                Event::Connected(c, r) => (c, r, EV_CONNECTED, false),
                Event::Readable(c, r) => (c, r, EV_READABLE, false),
                Event::Writable(c, r) => (c, r, EV_WRITABLE, false),
                Event::Accepted(l, c) => (l, self.conn_handle(c) as i32, EV_ACCEPTED, true),
            };
            let gen = if listener { self.conns.listener_gen(slot) } else { self.conns.conn_gen(slot) };
            let Some(gen) = gen else {
                // closed by Lua meanwhile: nobody to tell (a connection its listener accepted
                // after Lua closed the listener is closed too)
                if let Event::Accepted(_, c) = ev {
                    self.conns.close(ring, c, true, 0.0);
                }
                continue;
            };
            out[n] = Completion { user_data: handle(slot, gen, listener) as u64, res, flags };
            n += 1;
        }
        n
    }

    pub fn shutdown(&mut self) {
        self.datagrams.shutdown_all();
        self.conns.shutdown_all();
    }
}
