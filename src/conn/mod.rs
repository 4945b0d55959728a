//! A stream connection on the thread's io_uring: the mechanics every protocol on a socket needs and
//! none of them should repeat. It owns a slab of connections and listeners keyed by the `user_data`
//! of their operations (`op_id.rs`: owner, operation, slot + generation; a completion for a slot
//! that was freed and reused is ignored), the buffers each operation lends the kernel (the read
//! buffer while a receive is in flight, the send buffer while a send is), connect / accept /
//! receive / send / close over TCP (IPv4) and Unix-domain sockets, optionally inside TLS
//! (`tls.rs`'s sans-IO sessions: ciphertext on the wire, plaintext in the buffers), read-ahead
//! bounded per connection, sends queued and submitted once per loop turn (`flush`), and a close
//! that waits for the in-flight operations before the descriptor and the buffers go away.
//!
//! What happened is queued as `Event`s for the protocol on top: user sockets (`socket.rs`) and
//! the node transport (`transport/`: node links and listener clients) each own a `Conns` under
//! their own `op_id::Owner`. It has no knowledge of frames, handshakes or Lua. The owner decides
//! when reading pauses (`hold_reading`) beyond the read-ahead bound, and how a connection ends:
//! gracefully (what is queued still goes out), at once (`close_now`) or with a reset.
//!
//! This file holds the table and the completions' routing; `dial_listen.rs` opens connections,
//! `input.rs` reads, `output.rs` writes and `closing.rs` ends them (each an `impl Conns` block).
use crate::op_id::{self, Owner};
use crate::ring::Ring;
pub use crate::sockaddr::SockAddr;
use crate::status::{Error, Result, Status};
use crate::tls::{ServerTls, TlsSession};
use std::sync::Arc;
use io_uring::{opcode, types};
use slab::Slab;
use std::collections::VecDeque;

mod closing;
mod dial_listen;
mod input;
mod output;

const OP_CONNECT: u64 = 1;
const OP_RECV: u64 = 2;
const OP_SEND: u64 = 3;
const OP_ACCEPT: u64 = 4;
const OP_CANCEL: u64 = 5;

/// Size of the buffer one receive lends the kernel for user sockets (each connection has one:
/// 16 KiB keeps 10 000 idle connections at 160 MiB, and a TLS record fits).
const READ_BUF: usize = 16 * 1024;
/// The first and the longest pause of a listener that ran out of file descriptors.
const ACCEPT_BACKOFF_MIN: f64 = 0.05;
const ACCEPT_BACKOFF_MAX: f64 = 1.0;
/// How long a connection closed after a TLS failure may take to send the session's alert.
const ALERT_LINGER: f64 = 5.0;
/// Received bytes a connection holds for its reader before it stops receiving (the peer then
/// sees TCP back-pressure).
pub const READ_AHEAD: usize = 256 * 1024;

/// Pseudo-errno of a connection whose TLS handshake failed (a certificate not trusted, a name
/// that does not match, a protocol error before it completed), and of a TLS failure after it.
pub const ERR_TLS_HANDSHAKE: i32 = 10_001;
pub const ERR_TLS: i32 = 10_002;

fn os_error(what: &str) -> Error {
    Error::new(Status::Os, format!("{what}: {}", std::io::Error::last_os_error()))
}

/// What the protocol on top learns (in the order it happened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A connect finished: 0, or a negative errno.
    Connected(usize, i32),
    /// New bytes (count), end of stream (0) or a failure (negative errno) on a connection.
    Readable(usize, i32),
    /// The send queue shrank below what a refused `send` waited for, or sending failed (errno).
    Writable(usize, i32),
    /// A listener accepted connection `.1`.
    Accepted(usize, usize),
}

#[derive(PartialEq, Eq, Debug, Clone, Copy)]
enum State {
    Connecting,
    Open,
    /// The owner closed it; the slot is freed once no operation is in flight.
    Closing,
}

struct Conn {
    fd: i32,
    gen: u32,
    state: State,
    /// Lent to the kernel while `recv_inflight`.
    rbuf: Box<[u8]>,
    /// Received bytes the owner has not consumed yet.
    inbuf: Vec<u8>,
    /// Bytes queued by `send`, submitted by the next `flush` (plaintext: encrypted then when
    /// the connection is TLS).
    wbuf: Vec<u8>,
    /// TLS: the session (a connection is usable once its handshake completed: `tls_ready`).
    tls: Option<Box<TlsSession>>,
    tls_ready: bool,
    /// Lent to the kernel while `send_inflight`: `sending[sent..]` is what is left of it.
    sending: Vec<u8>,
    sent: usize,
    recv_inflight: bool,
    send_inflight: bool,
    connect_inflight: bool,
    dirty: bool,
    /// The peer finished sending.
    eof: bool,
    /// The first failure (errno), 0 while none.
    err: i32,
    /// What the TLS session said when it failed ("" while it did not).
    tls_error: String,
    /// It failed because the peer does not speak TLS (its first bytes were no TLS record).
    tls_peer_plain: bool,
    /// The owner paused reading (`hold_reading`).
    held: bool,
    /// A graceful close (`close_draining`) reads and drops what the peer still sends, from the
    /// close until the peer's FIN or the linger deadline, and ends with a FIN of its own once
    /// what was queued went out: closing with unread input would send a reset, which can cost
    /// the peer what it had not read yet (replies, a CLOSE frame); and a peer blocked writing
    /// to us would never read what we send. `may_drain`: the close asked for that.
    draining: bool,
    may_drain: bool,
    /// A `send` was refused for lack of room: say `Writable` when there is some.
    want_writable: usize,
    /// The listener this connection came from (its live count drops when it is freed).
    listener: Option<usize>,
    /// Read by the kernel while the connect is in flight.
    addr: Box<SockAddr>,
}

struct Listener {
    fd: i32,
    gen: u32,
    accept_inflight: bool,
    /// Out of file descriptors: accept again at this time (0: accepting), after `backoff` s.
    retry_at: f64,
    backoff: f64,
    closing: bool,
    max_connections: usize,
    live: usize,
    /// A TLS listener: every accepted connection gets a server session from this.
    tls: Option<Arc<ServerTls>>,
}

pub struct Conns {
    owner: Owner,
    read_buf: usize,
    conns: Slab<Conn>,
    listeners: Slab<Listener>,
    next_gen: u32,
    events: VecDeque<Event>,
    dirty: Vec<usize>,
    /// Closed connections still sending: (slot, generation, when to give up).
    lingering: Vec<(usize, u32, f64)>,
    /// Times a listener paused accepting because descriptors ran out.
    pub accept_pauses: u64,
    /// Connections freed so far (their buffers given back to the allocator).
    pub freed: u64,
    /// Connections opened (dialed or accepted), bytes received and sent so far (the metrics).
    pub opened: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

fn user_data(owner: Owner, op: u64, slot: usize, gen: u32) -> u64 {
    op_id::encode(owner, op, slot, gen)
}

fn close_fd(fd: i32) {
    // SAFETY: `fd` is a descriptor this module owns and no operation uses any more.
    unsafe { libc::close(fd) };
}

fn new_stream_socket(family: i32) -> Result<i32> {
    // SAFETY: plain syscalls on a fresh descriptor we own; results are checked.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(os_error("socket"));
        }
        if family == libc::AF_INET || family == libc::AF_INET6 {
            let one: i32 = 1;
            libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const i32 as *const _, 4);
        }
        Ok(fd)
    }
}

impl Default for Conns {
    /// User sockets' connections (`Owner::Sockets`, 16 KiB reads).
    fn default() -> Self {
        Conns::new(Owner::Sockets, READ_BUF)
    }
}

impl Conns {
    /// Connections whose operations carry `owner` in their user_data, each reading up to
    /// `read_buf` bytes at a time.
    pub fn new(owner: Owner, read_buf: usize) -> Conns {
        Conns {
            owner,
            read_buf: read_buf.max(1024),
            conns: Slab::new(),
            listeners: Slab::new(),
            next_gen: 0,
            events: VecDeque::new(),
            dirty: Vec::new(),
            lingering: Vec::new(),
            accept_pauses: 0,
            freed: 0,
            opened: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    fn gen(&mut self) -> u32 {
        self.next_gen = op_id::next_gen(self.next_gen);
        self.next_gen
    }

    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The generation of a live connection or listener (what a handle carries).
    pub fn conn_gen(&self, c: usize) -> Option<u32> {
        self.conns.get(c).filter(|x| x.state != State::Closing).map(|x| x.gen)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.conns.len()
    }

    pub fn listener_gen(&self, l: usize) -> Option<u32> {
        self.listeners.get(l).filter(|x| !x.closing).map(|x| x.gen)
    }

    fn new_conn(&mut self, fd: i32, state: State, addr: SockAddr, listener: Option<usize>) -> usize {
        let gen = self.gen();
        let read_buf = self.read_buf;
        self.opened += 1;
        self.conns.insert(Conn {
            fd,
            gen,
            state,
            rbuf: vec![0u8; read_buf].into_boxed_slice(),
            inbuf: Vec::new(),
            wbuf: Vec::new(),
            tls: None,
            tls_ready: false,
            sending: Vec::new(),
            sent: 0,
            recv_inflight: false,
            send_inflight: false,
            connect_inflight: false,
            dirty: false,
            eof: false,
            err: 0,
            tls_error: String::new(),
            tls_peer_plain: false,
            held: false,
            draining: false,
            may_drain: false,
            want_writable: 0,
            listener,
            addr: Box::new(addr),
        })
    }

    // ---- addresses and completions (opening, reading, writing and closing are in
    // dial_listen.rs, input.rs, output.rs and closing.rs) ---------------------------------

    pub fn local_addr(&self, listener: Option<usize>, conn: Option<usize>) -> Option<SockAddr> {
        let fd = match (listener, conn) {
            (Some(l), _) => self.listeners.get(l)?.fd,
            (_, Some(c)) => self.conns.get(c)?.fd,
            _ => return None,
        };
        SockAddr::of_fd(fd, false)
    }

    pub fn peer_addr(&self, c: usize) -> Option<SockAddr> {
        self.conns.get(c).map(|x| *x.addr)
    }

    /// Handles one completion of this owner's operations; a stale one (its slot was freed, or
    /// freed and reused) is ignored.
    pub fn on_completion(&mut self, ring: &mut Ring, user_data: u64, res: i32) {
        let Some(op_id::OpId { op, slot, gen, .. }) = op_id::decode(user_data) else { return };
        match op {
            OP_ACCEPT => {
                if self.listeners.get(slot).is_some_and(|l| l.gen == gen) {
                    self.on_accept(ring, slot, res);
                }
            }
            OP_CONNECT | OP_RECV | OP_SEND => {
                if !self.conns.get(slot).is_some_and(|c| c.gen == gen) {
                    return;
                }
                match op {
                    OP_CONNECT => self.on_connect(ring, slot, res),
                    OP_RECV => self.on_recv(ring, slot, res),
                    _ => self.on_send(ring, slot, res),
                }
            }
            _ => {} // a cancel's own completion
        }
    }

    /// Whether no connection is in the table (open, or closing with operations in flight).
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Gives back the slab's vacant tail (after a burst of connections; live slots stay valid).
    pub fn shrink(&mut self) {
        self.conns.shrink_to_fit();
    }

    /// Closes every descriptor (the thread is leaving). The buffers of operations still in
    /// flight are leaked, not freed: the kernel may write into them until the ring is gone.
    pub fn shutdown_all(&mut self) {
        for (_, conn) in self.conns.iter_mut() {
            Self::shutdown(conn);
            close_fd(conn.fd);
            if conn.recv_inflight {
                std::mem::forget(std::mem::take(&mut conn.rbuf));
            }
            if conn.send_inflight {
                std::mem::forget(std::mem::take(&mut conn.sending));
            }
            if conn.connect_inflight {
                let addr = std::mem::replace(&mut conn.addr, Box::new(SockAddr::unknown()));
                std::mem::forget(addr);
            }
        }
        self.conns.clear();
        for (_, lis) in self.listeners.iter() {
            close_fd(lis.fd);
        }
        self.listeners.clear();
        self.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::Inbox;

    #[test]
    fn ignores_a_completion_for_a_freed_or_reused_slot() {
        let inbox = Inbox::new(4).unwrap();
        let mut ring = Ring::new(64, inbox.doorbell_fd()).unwrap();
        let mut conns = Conns::default();
        let addr = SockAddr::inet("127.0.0.1:0").unwrap();
        let l = conns.listen(&mut ring, addr, 4, 10, false).unwrap();
        let gen = conns.listeners[l].gen;
        let stale = user_data(Owner::Sockets, OP_ACCEPT, l, gen);
        // the accept completes as cancelled: the listener is freed
        conns.close_listener(&mut ring, l);
        conns.on_completion(&mut ring, stale, -libc::ECANCELED);
        assert!(conns.listener_gen(l).is_none());
        // a new listener takes the slot with a new generation: the old completion again (as if
        // duplicated) must not touch it
        let l2 = conns.listen(&mut ring, addr, 4, 10, false).unwrap();
        assert_eq!(l, l2);
        assert_ne!(conns.listeners[l2].gen, gen);
        conns.on_completion(&mut ring, stale, 7); // "accepted fd 7" for the old listener
        assert!(conns.pop_event().is_none());
        assert!(conns.listeners[l2].accept_inflight);
        conns.shutdown_all();
    }

    /// Runs the ring until `done` says the events seen so far are enough (at most 2 s); every
    /// completion must carry the owner `conns` was made with.
    fn pump(ring: &mut Ring, inbox: &Inbox, conns: &mut Conns, seen: &mut Vec<Event>, done: impl Fn(&[Event]) -> bool) {
        let mut out = vec![crate::ring::Completion::default(); 64];
        for _ in 0..200 {
            if done(seen) {
                return;
            }
            conns.flush(ring);
            let n = ring.wait(inbox, 0.01, 0.0, &mut out).unwrap();
            for c in &out[..n] {
                if let Some(owner) = op_id::owner(c.user_data) {
                    assert_eq!(owner, conns.owner, "a completion without the owner's tag");
                    conns.on_completion(ring, c.user_data, c.res);
                }
            }
            while let Some(ev) = conns.pop_event() {
                seen.push(ev);
            }
        }
    }

    #[test]
    fn an_owner_holds_reading_hands_over_buffers_and_closes_with_last_words() {
        let inbox = Inbox::new(4).unwrap();
        let mut ring = Ring::new(64, inbox.doorbell_fd()).unwrap();
        let mut conns = Conns::new(Owner::TransportLinks, 4096); // the node transport's owner
        let l = conns.listen(&mut ring, SockAddr::inet("127.0.0.1:0").unwrap(), 4, usize::MAX, false).unwrap();
        let port = conns.local_addr(Some(l), None).unwrap().port();
        let client = conns.connect(&mut ring, SockAddr::inet(&format!("127.0.0.1:{port}")).unwrap()).unwrap();
        let mut seen = Vec::new();
        pump(&mut ring, &inbox, &mut conns, &mut seen, |e| {
            e.contains(&Event::Connected(client, 0)) && e.iter().any(|x| matches!(x, Event::Accepted(..)))
        });
        let server = seen.iter().find_map(|x| if let Event::Accepted(_, s) = x { Some(*s) } else { None }).expect("accepted");
        // a first message, written straight into the send queue, arrives
        conns.queue(client).unwrap().extend_from_slice(b"first");
        assert_eq!(conns.unsent(client), 5);
        seen.clear();
        pump(&mut ring, &inbox, &mut conns, &mut seen, |e| e.iter().any(|x| matches!(x, Event::Readable(c, _) if *c == server)));
        let mut got = Vec::new();
        conns.take_input(&mut ring, server, &mut got);
        assert_eq!(got, b"first");
        assert_eq!(conns.unsent(client), 0);
        // held: the receive in flight still completes, then nothing more is read
        conns.hold_reading(&mut ring, server, true);
        conns.queue(client).unwrap().extend_from_slice(b"second");
        seen.clear();
        pump(&mut ring, &inbox, &mut conns, &mut seen, |e| e.iter().any(|x| matches!(x, Event::Readable(c, _) if *c == server)));
        conns.queue(client).unwrap().extend_from_slice(b"third");
        seen.clear();
        pump(&mut ring, &inbox, &mut conns, &mut seen, |_| false); // 200 turns: 2 s
        assert!(!seen.iter().any(|x| matches!(x, Event::Readable(c, _) if *c == server)), "read while held: {seen:?}");
        assert_eq!(conns.view(server).unwrap().0, b"second");
        // resumed: the rest comes, appended after what the owner still holds
        conns.hold_reading(&mut ring, server, false);
        pump(&mut ring, &inbox, &mut conns, &mut seen, |e| e.iter().any(|x| matches!(x, Event::Readable(c, _) if *c == server)));
        let mut got = b"s".to_vec();
        conns.take_input(&mut ring, server, &mut got);
        assert_eq!(got, b"ssecondthird");
        // closed at once with last words: the peer reads them, then the end of the stream
        conns.close_now(&mut ring, server, b"bye");
        assert!(conns.conn_gen(server).is_none());
        assert!(conns.queue(server).is_none());
        seen.clear();
        pump(&mut ring, &inbox, &mut conns, &mut seen, |e| e.contains(&Event::Readable(client, 0)));
        let (bytes, eof, err) = conns.view(client).unwrap();
        assert_eq!((bytes, eof, err), (&b"bye"[..], true, 0));
        conns.shutdown_all();
    }

    #[test]
    fn send_takes_at_most_the_room_left_under_the_limit() {
        let inbox = Inbox::new(4).unwrap();
        let mut ring = Ring::new(64, inbox.doorbell_fd()).unwrap();
        let mut conns = Conns::default();
        // a connection that is not connected yet: sends queue (nothing is submitted)
        let c = conns.connect(&mut ring, SockAddr::inet("127.0.0.1:9").unwrap()).unwrap();
        assert_eq!(conns.send(c, &[1u8; 100], 64).unwrap(), 64);
        assert_eq!(conns.send(c, &[1u8; 100], 64).unwrap(), 0);
        assert_eq!(conns.conns[c].want_writable, 64);
        conns.shutdown_all();
    }
}
