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
use crate::op_id::{self, Owner};
use crate::ring::Ring;
pub use crate::sockaddr::SockAddr;
use crate::status::{Error, Result, Status};
use crate::tls::{ServerTls, TlsSession};
use std::sync::Arc;
use io_uring::{opcode, types};
use slab::Slab;
use std::collections::VecDeque;

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

    // ---- opening ---------------------------------------------------------------------------

    /// Starts connecting to `addr`; `Event::Connected` tells how it went.
    pub fn connect(&mut self, ring: &mut Ring, addr: SockAddr) -> Result<usize> {
        self.connect_with(ring, addr, |_| Ok(()))
    }

    /// Like `connect`, with `setup` called on the new socket before it connects (to bind it to
    /// a local address, size its buffers): its error closes the socket and is returned.
    pub fn connect_with(&mut self, ring: &mut Ring, addr: SockAddr, setup: impl FnOnce(i32) -> Result<()>) -> Result<usize> {
        let fd = new_stream_socket(addr.family())?;
        if let Err(e) = setup(fd) {
            close_fd(fd);
            return Err(e);
        }
        let c = self.new_conn(fd, State::Connecting, addr, None);
        let conn = &mut self.conns[c];
        conn.connect_inflight = true;
        let entry = opcode::Connect::new(types::Fd(fd), conn.addr.ptr(), conn.addr.socklen())
            .build()
            .user_data(user_data(self.owner, OP_CONNECT, c, conn.gen));
        ring.push(entry);
        Ok(c)
    }

    /// Like `connect`, then a TLS handshake with `session`: `Event::Connected` comes once the
    /// handshake completed (or failed: `-ERR_TLS_HANDSHAKE`).
    pub fn connect_tls(&mut self, ring: &mut Ring, addr: SockAddr, session: TlsSession) -> Result<usize> {
        self.connect_tls_with(ring, addr, session, |_| Ok(()))
    }

    /// `connect_tls` with `connect_with`'s `setup`.
    pub fn connect_tls_with(&mut self, ring: &mut Ring, addr: SockAddr, session: TlsSession, setup: impl FnOnce(i32) -> Result<()>) -> Result<usize> {
        let c = self.connect_with(ring, addr, setup)?;
        self.conns[c].tls = Some(Box::new(session));
        Ok(c)
    }

    /// Listens on `addr` (with SO_REUSEPORT when `reuse_port`: several threads may then listen
    /// on the same port and the kernel spreads connections over them); accepts up to
    /// `max_connections` live connections at a time. Returns the listener's slot.
    pub fn listen(&mut self, ring: &mut Ring, addr: SockAddr, backlog: i32, max_connections: usize, reuse_port: bool) -> Result<usize> {
        self.listen_with(ring, addr, backlog, max_connections, reuse_port, |_| {})
    }

    /// Like `listen`, with `setup` called on the socket before it binds (accepted connections
    /// inherit options such as buffer sizes).
    pub fn listen_with(&mut self, ring: &mut Ring, addr: SockAddr, backlog: i32, max_connections: usize, reuse_port: bool, setup: impl FnOnce(i32)) -> Result<usize> {
        let fd = new_stream_socket(addr.family())?;
        setup(fd);
        if let Err(e) = addr.bind_listener(fd, reuse_port) {
            close_fd(fd);
            return Err(e);
        }
        // SAFETY: `fd` is ours and bound.
        if unsafe { libc::listen(fd, backlog.max(1)) } < 0 {
            let e = os_error(&format!("listen {}", addr.text()));
            close_fd(fd);
            return Err(e);
        }
        let gen = self.gen();
        let l = self.listeners.insert(Listener { fd, gen, accept_inflight: false, retry_at: 0.0, backoff: 0.0, closing: false, max_connections: max_connections.max(1), live: 0, tls: None });
        self.arm_accept(ring, l);
        Ok(l)
    }

    /// Makes a listener a TLS one: the connections it accepts from now on handshake with
    /// `server`; `Event::Connected` says when that completed (or failed), after `Accepted`.
    pub fn set_listener_tls(&mut self, l: usize, server: Arc<ServerTls>) {
        if let Some(lis) = self.listeners.get_mut(l) {
            lis.tls = Some(server);
        }
    }

    fn arm_accept(&mut self, ring: &mut Ring, l: usize) {
        let Some(lis) = self.listeners.get_mut(l) else { return };
        if lis.accept_inflight || lis.closing || lis.live >= lis.max_connections || lis.retry_at > 0.0 {
            return;
        }
        lis.accept_inflight = true;
        let entry = opcode::Accept::new(types::Fd(lis.fd), std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(self.owner, OP_ACCEPT, l, lis.gen));
        ring.push(entry);
    }

    fn on_accept(&mut self, ring: &mut Ring, l: usize, res: i32) {
        let lis = &mut self.listeners[l];
        lis.accept_inflight = false;
        if lis.closing {
            return self.maybe_free_listener(l);
        }
        if res >= 0 {
            let fd = res;
            let one: i32 = 1;
            // SAFETY: `fd` is the new connection's descriptor, ours from here on (the option
            // fails harmlessly on a Unix-domain socket).
            unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one as *const i32 as *const _, 4) };
            lis.live += 1;
            lis.backoff = 0.0;
            let session = lis.tls.as_ref().map(|t| t.session());
            let addr = SockAddr::of_fd(fd, true).unwrap_or(SockAddr::unknown());
            let c = self.new_conn(fd, State::Open, addr, Some(l));
            match session {
                None => {}
                Some(Ok(session)) => self.conns[c].tls = Some(Box::new(session)),
                Some(Err(_)) => {
                    self.close(ring, c, true, 0.0);
                    return self.arm_accept(ring, l);
                }
            }
            self.arm_recv(ring, c);
            self.events.push_back(Event::Accepted(l, c));
        } else if matches!(-res, libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) {
            // Out of descriptors: accepting again at once would fail again at once (a spinning
            // core). Pause, doubling up to a second; `tick` accepts again.
            lis.backoff = (lis.backoff * 2.0).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
            lis.retry_at = crate::clock::monotonic() + lis.backoff;
            self.accept_pauses += 1;
            return;
        }
        self.arm_accept(ring, l);
    }

    pub fn close_listener(&mut self, ring: &mut Ring, l: usize) {
        let Some(lis) = self.listeners.get_mut(l) else { return };
        if lis.closing {
            return;
        }
        lis.closing = true;
        if lis.accept_inflight {
            let entry = opcode::AsyncCancel::new(user_data(self.owner, OP_ACCEPT, l, lis.gen)).build().user_data(user_data(self.owner, OP_CANCEL, l, 0));
            ring.push(entry);
        }
        self.maybe_free_listener(l);
    }

    fn maybe_free_listener(&mut self, l: usize) {
        let lis = &self.listeners[l];
        if lis.closing && !lis.accept_inflight {
            close_fd(lis.fd);
            self.listeners.remove(l);
        }
    }

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

    fn on_connect(&mut self, ring: &mut Ring, c: usize, res: i32) {
        let conn = &mut self.conns[c];
        conn.connect_inflight = false;
        if conn.state == State::Closing {
            return self.maybe_free(ring, c);
        }
        let res = if res == 0 { Self::pending_error(conn.fd) } else { res };
        if res < 0 {
            conn.err = -res;
            self.events.push_back(Event::Connected(c, res));
            return;
        }
        conn.state = State::Open;
        if conn.tls.is_none() {
            self.events.push_back(Event::Connected(c, 0));
        }
        self.arm_recv(ring, c);
        self.mark_dirty(c); // (a TLS client's hello goes out with the next flush)
    }

    /// The socket's pending error as a negative errno (0: none). A connect whose SYN was
    /// answered by an ICMP error (host or network unreachable) can complete with 0 on io_uring
    /// and leave the error here; without this check the first read would report it instead.
    fn pending_error(fd: i32) -> i32 {
        let mut err: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `err`, a live i32.
        let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut i32 as *mut _, &mut len) };
        if rc == 0 && err != 0 { -err } else { 0 }
    }

    // ---- reading ---------------------------------------------------------------------------

    fn arm_recv(&mut self, ring: &mut Ring, c: usize) {
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

    fn on_recv(&mut self, ring: &mut Ring, c: usize, res: i32) {
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
    fn on_tls_recv(&mut self, ring: &mut Ring, c: usize, n: usize) {
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

    // ---- writing ---------------------------------------------------------------------------

    /// Bytes queued and in flight.
    fn queued(conn: &Conn) -> usize {
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

    fn mark_dirty(&mut self, c: usize) {
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
    fn send_next(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) -> bool {
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

    fn submit_send(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) {
        conn.send_inflight = true;
        let rest = &conn.sending[conn.sent..];
        let entry = opcode::Send::new(types::Fd(conn.fd), rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(owner, OP_SEND, c, conn.gen));
        ring.push(entry);
    }

    fn on_send(&mut self, ring: &mut Ring, c: usize, res: i32) {
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

    // ---- closing ---------------------------------------------------------------------------

    fn shutdown(conn: &mut Conn) {
        // SAFETY: `fd` is ours; shutdown ends the in-flight receive (it completes with 0).
        unsafe { libc::shutdown(conn.fd, libc::SHUT_RDWR) };
    }

    /// The end of a graceful close once everything queued went out: a FIN. A draining
    /// connection keeps reading (and dropping) the peer's input until its FIN or the linger
    /// deadline (`tick` aborts it); any other is shut down both ways.
    fn finish_graceful(conn: &mut Conn) {
        if !conn.draining || conn.err != 0 {
            return Self::shutdown(conn);
        }
        // SAFETY: `fd` is ours; SHUT_WR sends the FIN and leaves the receive side open.
        unsafe { libc::shutdown(conn.fd, libc::SHUT_WR) };
    }

    /// Submits a receive into the connection's own buffer, whose bytes are dropped (draining).
    fn drain(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) {
        conn.recv_inflight = true;
        let entry = opcode::Recv::new(types::Fd(conn.fd), conn.rbuf.as_mut_ptr(), conn.rbuf.len() as u32)
            .build()
            .user_data(user_data(owner, OP_RECV, c, conn.gen));
        ring.push(entry);
    }

    /// Ends a closing connection at once: the peer gets a reset, the receive and the send in
    /// flight are cancelled (a shutdown would send a FIN before the reset).
    fn abort_now(ring: &mut Ring, owner: Owner, c: usize, conn: &mut Conn) {
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
    fn begin_close(&mut self, ring: &mut Ring, c: usize) -> Option<State> {
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
    fn send_then_shutdown(&mut self, ring: &mut Ring, c: usize, was_connecting: bool, linger_until: f64) {
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

    fn maybe_free(&mut self, ring: &mut Ring, c: usize) {
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

    // ---- completions -----------------------------------------------------------------------

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
