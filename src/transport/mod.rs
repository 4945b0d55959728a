//! One thread's sockets (every connection and listener here is served by this thread): node connections (dialed and accepted, authenticated by the handshake
//! in `wire::handshake`), client connections of `tcp://` and `http://` listeners, and this
//! thread's own client connections to other nodes' listeners. All I/O goes through the thread's
//! io_uring (`ring.rs`); frames are decoded by `wire::frame`. Node messages are pushed straight
//! into the destination thread's inbox: Rust routes bytes and never looks inside them. What Lua
//! must know (a node came up or went away) is queued as `NetEvent`s.
//!
//! The sockets themselves are `conn.rs`'s (`links`: connect, accept with back-off, receive into
//! buffers owned by the operation, TLS, one write per loop turn, closing once in-flight
//! operations completed, stale completions ignored), the same module user sockets use. This
//! file owns what the protocols share on top of it: each connection's protocol state (keyed by
//! its own id and generation, which Lua sees), the frame dispatch, what a connection queues
//! before the turn's flush hands it over, closing with a reason, timeouts (`tick`), and the
//! completion entry point. Each protocol is a file: `node_link.rs` (dialing, handshake, node
//! messages and their flow control), `listener_clients.rs` (listeners, their clients, HTTP, calls
//! to other nodes' listeners), `datagrams.rs` (udp://, on its own socket).
use crate::conn::{Conns, Event, SockAddr};
use crate::inbox::Inbox;
use crate::listen_limits::{ListenLimits, ListenStats};
use crate::node_flow::{Acks, Credit, Delivery, Overflow};
use crate::ring::Ring;
use crate::status::{Error, Result, Status};
use crate::tls::{ClientTls, ServerTls};
use crate::wire::frame::{self, FrameDecoder, Header};
use crate::wire::handshake::{self, Handshake, Step};
use crate::wire::{edge, http, trust};
use io_uring::{opcode, types};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

mod datagrams;
mod listener_clients;
mod node_link;

/// The transport's own kind of operation (`op_id::Owner::Transport`): a udp:// receive. Its
/// connections' operations are `links`' (`op_id::Owner::TransportLinks`).
const OP_DATAGRAM: u64 = 5;

/// What one receive of a node or listener connection reads at most.
const READ_BUF: usize = 64 * 1024;
/// How long a connection closed after its last bytes (an HTTP reply with `Connection: close`, a
/// TLS alert, a refusal) may take to send them before it is reset.
const LINGER: f64 = 5.0;
/// Bytes a connection may queue for sending before `send` refuses (back-pressure).
const MAX_QUEUED: usize = 32 * 1024 * 1024;
/// How long a node connection may take to connect and authenticate.
const HANDSHAKE_TIMEOUT: f64 = 5.0;
/// After a node connection is lost, sends to that node fail for this long before it is dialed
/// again, doubling with each loss in a row up to `QUARANTINE_MAX` (reconnect back-off).
const QUARANTINE: f64 = 0.2;
const QUARANTINE_MAX: f64 = 5.0;
/// Largest frame (or HTTP body) an unauthenticated listener client may send.
const CLIENT_MAX_FRAME: usize = 1 << 20;

/// The node identity of this process (from `luact.start`'s `address`, `secret`, `cluster`).
pub struct NodeConfig {
    pub machine_id: u64,
    pub addr: String,
    pub secret: Vec<u8>,
    pub cluster: String,
    pub max_frame: usize,
    /// Node links in mutual TLS (`opts.tls`), or plain TCP (None).
    pub tls: Option<crate::node_tls::NodeTls>,
}

/// Machine ids from here up belong to processes without a node address (`luact_machine_id`):
/// node clients, reached only over the connection they dialed.
pub const CLIENT_MACHINES: u64 = 1 << 48;

impl NodeConfig {
    /// A node client: a process with the secret and no address. It dials nodes (handshake role
    /// `Client`) and never listens; a node answers it over that connection only.
    pub fn is_client(&self) -> bool {
        self.addr.is_empty()
    }
}

/// What Lua learns about connections (`luact_net_event_t` in lua/luact/ffi.lua).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetEvent {
    /// 1 = a node is reachable, 2 = a node connection was lost, 3 = a client connection closed,
    /// 4 = a listener call connection to `host:port` was lost (machine = its conn id).
    pub kind: u32,
    pub conn: u32,
    pub machine: f64,
}

pub const EV_NODE_UP: u32 = 1;
pub const EV_NODE_DOWN: u32 = 2;
pub const EV_CLIENT_CLOSED: u32 = 3;
pub const EV_REMOTE_LISTENER_DOWN: u32 = 4;
/// A dial to a node was refused (ECONNREFUSED: no process listens at its address). Comes before
/// that connection's EV_NODE_DOWN; the cluster's membership takes it as evidence of death.
pub const EV_NODE_REFUSED: u32 = 5;
/// A dialed connection closed before it authenticated: like EV_NODE_DOWN, but nothing queued
/// on it reached the node (the calls waiting on it were never sent).
pub const EV_NODE_UNREACHED: u32 = 6;
/// A connection was refused before it could carry calls: a node that failed the handshake
/// (wrong secret, other cluster, ...) before we knew which node it is, or a tls:// client whose
/// TLS handshake failed. Lua logs its reason (`luact_net_event_reason`).
pub const EV_CONN_REFUSED: u32 = 7;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// We dialed another node.
    Dialer,
    /// Another node dialed our node address.
    Acceptor,
    /// A client of one of our `tcp://` listeners.
    ListenerClient,
    /// A client of one of our `http://` listeners.
    HttpClient,
    /// We dialed another node's `tcp://` listener as a client.
    Caller,
}

/// A batch of MSG bodies is handed to the inbox at this size even if more frames follow.
const DELIVERY_MAX_BYTES: usize = 256 * 1024;
const DELIVERY_MAX_COUNT: usize = 256;

#[derive(PartialEq, Eq, Debug)]
enum State {
    Connecting,
    Handshaking,
    Ready,
    /// Shut down; waiting for in-flight operations before the slot is freed.
    Closing,
}

struct Conn {
    /// The connection in `links` (its slot there).
    link: usize,
    gen: u32,
    role: Role,
    state: State,
    /// The peer node (Dialer/Acceptor once known).
    machine: u64,
    handshake: Option<Handshake>,
    /// The client TLS profile of a Caller connection (0: none; the session itself is in `links`).
    tls_profile: u32,
    decoder: FrameDecoder,
    /// Bytes read but not yet taken by the decoder (kept while a delivery is stalled).
    inbuf: Vec<u8>,
    inpos: usize,
    http_continue_sent: bool,
    /// Frames queued before the handshake completed (sent once the peer is authenticated).
    held: Vec<u8>,
    deadline: f64,
    /// Codec of the client's calls (replies use it).
    codec: u8,
    /// A listener client's call that could not be pushed because the inbox was full (TCP
    /// back-pressure: no more reads until it is delivered).
    stalled: Option<Delivery>,
    /// Node connections: flow control per receiving thread (`node_flow.rs`): the credit we use
    /// sending, what we acknowledge receiving, and messages waiting for a full inbox.
    credit: Credit,
    acks: Acks,
    overflow: Overflow,
    /// An HTTP call is with Lua; later pipelined requests wait for its reply.
    http_busy: bool,
    http_keep_alive: bool,
    /// The listener that accepted this connection (`NO_LISTENER` for dialed ones) and its
    /// limits (listener clients only: `listen_limits.rs`).
    listener: usize,
    limits: ListenLimits,
    /// When the client last sent a byte; when the request in progress started (0: none).
    last_active: f64,
    partial_since: f64,
    /// Calls delivered to Lua and not answered yet (tcp:// clients).
    calls_pending: u32,
    /// Frames held or queued in `links` and not all sent yet (0 again once `links` sent all and
    /// nothing is held): a node connection takes at most `max_queued_msgs` MSG frames (see
    /// `set_max_queued_msgs`).
    unsent_frames: usize,
    /// The port of the listener that accepted this client (0: not a listener client).
    listener_port: u16,
    /// Why its handshake (node or TLS) failed, once known (`metrics::HANDSHAKE_REASONS`).
    hs_fail: Option<&'static str>,
}

const NO_LISTENER: usize = usize::MAX;

impl Conn {
    /// Whether reading must wait until what was received is delivered: a listener client's call
    /// refused by a full inbox, or a node connection whose overflow is over its bound.
    fn reading_held(&self) -> bool {
        self.stalled.is_some() || self.overflow.is_over_limit()
    }
}

/// How a connection `close` ended goes: at once (with a protocol's last words, tried once), or
/// after what it queued is sent.
enum Goodbye {
    Now(Vec<u8>),
    AfterSending,
}

struct Listener {
    /// A udp:// listener's own socket (-1 for the others, whose socket is in `links`).
    fd: i32,
    kind: ListenerKind,
    /// A udp:// listener's datagram buffer (owned by the kernel while a receive is in flight).
    buf: Box<[u8]>,
    limits: ListenLimits,
    /// Connections of this listener still open.
    open: usize,
    /// The bound port (its calls' default timeout is set per port in `lua/luact/listener.lua`).
    port: u16,
}

/// Kernel send and receive buffers of a node connection (set on dialed and accepted ones): with
/// Linux's autotuning a stalled receiver lets megabytes of messages pile up in the kernel on top
/// of the sender's queue, so `actor_overload` comes late. 512 KiB each (the kernel doubles it)
/// still carries a frame of any size, and costs no throughput (README, "Figures behind tuning
/// constants").
const NODE_SOCKET_BUF: i32 = 512 * 1024;

fn set_node_buffers(fd: i32) {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: a plain setsockopt on our own descriptor with a 4-byte int.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, opt, &NODE_SOCKET_BUF as *const i32 as *const _, 4) };
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ListenerKind {
    Node,
    Tcp,
    Http,
    Udp,
}

pub struct Transport {
    tid: usize,
    node: Option<Arc<NodeConfig>>,
    /// The sockets (connections and stream listeners) of all the protocols here.
    links: Conns,
    conns: Slab<Conn>,
    /// The connection id of each connection in `links` (by its slot there; NONE: not ours).
    by_link: Vec<usize>,
    /// The listener of each listener in `links` (by its slot there).
    by_link_listener: HashMap<usize, usize>,
    /// Connections closed in this turn: `sweep` ends them in `links` and frees their state.
    closing: Vec<(usize, Goodbye)>,
    listeners: Slab<Listener>,
    /// Our dialed connection to each node.
    dialed: HashMap<u64, usize>,
    /// Our client connection to each remote listener, by (its "ip:port" as a number, the TLS
    /// profile used to reach it: 0 for none).
    callers: HashMap<(u64, u32), usize>,
    /// TLS client profiles (CA to trust, client certificate) by id, from 1.
    client_tls: Vec<Arc<ClientTls>>,
    /// Nodes whose connection was lost, with the time sends may try again.
    quarantine: HashMap<u64, f64>,
    /// Losses in a row per node (reset by a completed handshake): the back-off exponent.
    losses: HashMap<u64, u32>,
    /// Connection events for Lua, each with why it happened ("" when there is nothing to say).
    events: VecDeque<(NetEvent, String)>,
    /// The reason of the event `pop_event` returned last (`luact_net_event_reason`).
    last_reason: String,
    next_gen: u32,
    /// HTTP connections whose reply went out: look for their next request.
    pending_http: Vec<usize>,
    pub max_frame: usize,
    /// udp:// datagrams dropped (malformed, not a NOTIFY, or the inbox was full).
    pub dropped_datagrams: u64,
    /// Signs the actor references handed to listener clients and checks those they pass back
    /// (`None` in a process that is not a node: no reference passes).
    ref_key: Option<trust::RefKey>,
    /// What listener limits refused (`luact.listen_stats()`).
    stats: ListenStats,
    /// Client connections whose reading paused for `max_pipelined` and may resume.
    to_resume: Vec<usize>,
    /// Requests taken from listener clients so far (tells `on_recv` a read completed one).
    requests_taken: u64,
    /// Frames decoded and frames queued so far (the metrics).
    frames_in: u64,
    frames_out: u64,
    /// Handshake failures by reason (`metrics::HANDSHAKE_REASONS`); flow-control pauses: sends
    /// refused for a full window, and times deliveries for a full inbox began to wait in a
    /// node connection's overflow (the metrics).
    hs_failures: [u64; crate::metrics::HANDSHAKE_REASONS.len()],
    flow_send_pauses: u64,
    flow_receive_pauses: u64,
    /// MSG frames a node connection may hold unsent (`inbox_size`: as many as the receiving
    /// thread's inbox holds), beside the kernel's socket buffers, which `NODE_SOCKET_BUF` bounds.
    max_queued_msgs: usize,
    /// `links.freed` when the allocator last gave memory back, and when it did.
    freed_at_trim: u64,
    last_trim: f64,
}

/// After this many listener connections were freed (and at most once per `TRIM_EVERY` s), the
/// allocator returns free memory to the system: each connection's buffers are freed in the
/// middle of the heap, which malloc otherwise keeps (2000 keep-alive clients left the RSS
/// 110 MB higher after they all left).
const TRIM_AFTER: usize = 64;
const TRIM_EVERY: f64 = 1.0;

fn os_error(what: &str) -> Error {
    Error::new(Status::Os, format!("{what}: {}", std::io::Error::last_os_error()))
}

/// "a.b.c.d:port": node and listener addresses are IPv4 (a machine id holds one).
fn parse_v4(s: &str) -> Result<std::net::SocketAddrV4> {
    s.parse().map_err(|_| Error::new(Status::BadArgument, format!("bad address '{s}' (expected a.b.c.d:port)")))
}

/// A node's machine id is its IPv4 address and port: `ip << 16 | port` (unique per node, and
/// enough to dial it from anywhere a reference travels).
pub fn machine_id_of(addr: &str) -> Result<u64> {
    let sa = parse_v4(addr)?;
    Ok(((u32::from(*sa.ip()) as u64) << 16) | sa.port() as u64)
}

/// The address a machine id names (see `machine_id_of`).
fn machine_addr(machine: u64) -> std::net::SocketAddrV4 {
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::from(((machine >> 16) & 0xffff_ffff) as u32), (machine & 0xffff) as u16)
}

fn new_datagram_socket() -> Result<i32> {
    // SAFETY: a plain syscall; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_error("socket"));
    }
    Ok(fd)
}

fn close_fd(fd: i32) {
    // SAFETY: `fd` is a descriptor this transport owns and no longer uses.
    unsafe { libc::close(fd) };
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    // SAFETY: getrandom writes at most 32 bytes into `n`.
    unsafe { libc::getrandom(n.as_mut_ptr() as *mut _, 32, 0) };
    n
}

fn user_data(op: u64, slot: usize, gen: u32) -> u64 {
    crate::op_id::encode(crate::op_id::Owner::Transport, op, slot, gen)
}

const NONE: usize = usize::MAX;

/// What one `Transport::tick` found due, by connection.
#[derive(Default)]
struct Due {
    /// Dialing or handshaking past the deadline.
    expired: Vec<usize>,
    /// A delivery waits for room in a full inbox.
    unstall: Vec<usize>,
    /// A listener client's request did not complete within `header_timeout`.
    slow: Vec<usize>,
    /// A listener client with nothing in progress for `idle_timeout`.
    idle: Vec<usize>,
    /// Node messages wait for room in a full inbox (the overflow).
    overflowing: Vec<usize>,
    /// Acknowledgements to send.
    acks_due: Vec<usize>,
}

/// Makes `next` the earlier of itself and `at`.
fn earliest(next: &mut Option<f64>, at: f64) {
    *next = Some(next.map_or(at, |n: f64| n.min(at)));
}

impl Transport {
    pub fn new(tid: usize, node: Option<Arc<NodeConfig>>) -> Transport {
        let max_frame = node.as_ref().map(|n| n.max_frame).unwrap_or(16 << 20);
        let ref_key = node.as_ref().map(|n| trust::RefKey::new(&n.secret));
        Transport {
            tid,
            node,
            links: Conns::new(crate::op_id::Owner::TransportLinks, READ_BUF),
            conns: Slab::new(),
            by_link: Vec::new(),
            by_link_listener: HashMap::new(),
            closing: Vec::new(),
            listeners: Slab::new(),
            dialed: HashMap::new(),
            callers: HashMap::new(),
            client_tls: Vec::new(),
            quarantine: HashMap::new(),
            losses: HashMap::new(),
            events: VecDeque::new(),
            last_reason: String::new(),
            next_gen: 1,
            pending_http: Vec::new(),
            max_frame,
            dropped_datagrams: 0,
            ref_key,
            stats: ListenStats::default(),
            to_resume: Vec::new(),
            requests_taken: 0,
            frames_in: 0,
            frames_out: 0,
            hs_failures: [0; crate::metrics::HANDSHAKE_REASONS.len()],
            flow_send_pauses: 0,
            flow_receive_pauses: 0,
            freed_at_trim: 0,
            last_trim: 0.0,
            max_queued_msgs: usize::MAX,
        }
    }

    /// Bounds what a node connection queues, in messages (`inbox_size`).
    pub fn set_max_queued_msgs(&mut self, n: usize) {
        self.max_queued_msgs = n.max(1);
    }

    pub fn pop_event(&mut self) -> Option<NetEvent> {
        let (ev, reason) = self.events.pop_front()?;
        self.last_reason = reason;
        Some(ev)
    }

    /// Why the event `pop_event` returned last happened ("" when there is nothing to say).
    pub fn last_event_reason(&self) -> &str {
        &self.last_reason
    }

    fn push_event(&mut self, kind: u32, c: usize, machine: f64, reason: &str) {
        self.events.push_back((NetEvent { kind, conn: c as u32, machine }, reason.to_string()));
    }

    /// Connection events waiting for `pop_event`.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    fn gen(&mut self) -> u32 {
        self.next_gen = self.next_gen.wrapping_add(1) & 0xff_ffff;
        if self.next_gen == 0 {
            self.next_gen = 1;
        }
        self.next_gen
    }

    /// What listener limits refused and paused so far (`luact.listen_stats()`).
    pub fn listen_stats(&self) -> ListenStats {
        ListenStats { accept_pauses: self.links.accept_pauses as f64, ..self.stats }
    }

    /// Copies this thread's transport counters into its metrics block (src/metrics.rs), once
    /// per poll: a few stores.
    pub fn publish_metrics(&self, tid: usize) {
        use crate::metrics as m;
        m::set(tid, m::CONNS_OPEN, self.links.open() as f64);
        m::set(tid, m::CONNS_OPENED, self.links.opened as f64);
        m::set(tid, m::BYTES_IN, self.links.bytes_in as f64);
        m::set(tid, m::BYTES_OUT, self.links.bytes_out as f64);
        m::set(tid, m::FRAMES_IN, self.frames_in as f64);
        m::set(tid, m::FRAMES_OUT, self.frames_out as f64);
        for (i, n) in self.hs_failures.iter().enumerate() {
            m::set(tid, m::HANDSHAKE_FAILURES + i, *n as f64);
        }
        m::set(tid, m::FLOW_SEND_PAUSES, self.flow_send_pauses as f64);
        m::set(tid, m::FLOW_RECEIVE_PAUSES, self.flow_receive_pauses as f64);
        let s = self.listen_stats();
        let v = [s.header_timeouts, s.idle_timeouts, s.slow_readers, s.refused_connections, s.accept_pauses, s.read_pauses];
        for (i, x) in v.iter().enumerate() {
            m::set(tid, m::LISTEN + i, *x);
        }
    }

    /// The protocol state of connection `link` of `links` (a new connection, dialed or accepted).
    fn new_conn(&mut self, link: usize, role: Role) -> usize {
        let gen = self.gen();
        let limit = match role {
            Role::Dialer | Role::Acceptor => frame::PRE_AUTH_MAX_FRAME,
            Role::ListenerClient | Role::HttpClient => CLIENT_MAX_FRAME.min(self.max_frame),
            Role::Caller => self.max_frame,
        };
        let c = self.conns.insert(Conn {
            link,
            gen,
            role,
            state: State::Ready,
            machine: 0,
            handshake: None,
            tls_profile: 0,
            decoder: FrameDecoder::new(limit),
            inbuf: Vec::new(),
            inpos: 0,
            http_continue_sent: false,
            held: Vec::new(),
            deadline: 0.0,
            codec: 0,
            stalled: None,
            credit: Credit::default(),
            acks: Acks::default(),
            overflow: Overflow::default(),
            http_busy: false,
            http_keep_alive: true,
            listener: NO_LISTENER,
            limits: crate::listen_limits::DEFAULT,
            last_active: 0.0,
            partial_since: 0.0,
            calls_pending: 0,
            unsent_frames: 0,
            listener_port: 0,
            hs_fail: None,
        });
        if self.by_link.len() <= link {
            self.by_link.resize(link + 1, NONE);
        }
        self.by_link[link] = c;
        c
    }

    fn queue_frame(&mut self, c: usize, kind: u8, codec: u8, thread: u16, corr: u32, body: &[u8]) -> Result<()> {
        let max_msgs = self.max_queued_msgs;
        let conn = &mut self.conns[c];
        let unsent = self.links.unsent(conn.link);
        if unsent == 0 && conn.held.is_empty() {
            conn.unsent_frames = 0; // all were sent
        }
        if conn.held.len() + unsent + body.len() > MAX_QUEUED {
            return Err(Error::new(Status::Full, "the connection's send queue is full"));
        }
        if kind == frame::KIND_MSG && conn.unsent_frames >= max_msgs {
            return Err(Error::new(Status::Full, "the connection's send queue is full (messages)"));
        }
        let authenticated = !matches!(conn.role, Role::Dialer | Role::Acceptor) || conn.state == State::Ready;
        let out = if authenticated { self.links.queue(conn.link) } else { Some(&mut conn.held) };
        // (no queue: the connection failed and its close is on the way, with what it carried)
        let Some(out) = out else { return Ok(()) };
        frame::write_frame(out, &Header { kind, codec, thread, corr, body_len: 0 }, body)
            .map_err(|e| Error::new(Status::BadArgument, e.to_string()))?;
        conn.unsent_frames += 1;
        self.frames_out += 1;
        Ok(())
    }

    /// Queues bytes that are not a frame (HTTP, a handshake message) on connection `c`.
    fn queue_bytes(&mut self, c: usize, bytes: &[u8]) {
        if let Some(out) = self.links.queue(self.conns[c].link) {
            out.extend_from_slice(bytes);
        }
    }

    // ---- reading ---------------------------------------------------------------------------

    /// Pauses or resumes reading a connection: paused while its listener limits say so
    /// (`read_paused`) or while what it delivered waits for a full inbox (`reading_held`).
    fn sync_reading(&mut self, ring: &mut Ring, c: usize) {
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
    fn on_link_event(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], ev: Event, now: f64) {
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
    fn note_tls_failure(&mut self, c: usize, errno: i32) {
        if errno != crate::conn::ERR_TLS && errno != crate::conn::ERR_TLS_HANDSHAKE {
            return;
        }
        let Some(conn) = self.conns.get(c) else { return };
        if conn.state != State::Ready || self.links.tls_handshaking(conn.link) {
            self.conns[c].hs_fail = Some("tls");
        }
    }

    /// Why a connection failed: the TLS session's words, or the errno's.
    fn link_error(&self, c: usize, errno: i32) -> String {
        if errno == crate::conn::ERR_TLS || errno == crate::conn::ERR_TLS_HANDSHAKE {
            let said = self.links.tls_error(self.conns[c].link);
            return if said.is_empty() { "TLS failed".to_string() } else { said.to_string() };
        }
        crate::status::os_error_text(errno)
    }

    fn on_recv(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, now: f64) {
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
    fn process_frames(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, now: f64) {
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

    fn on_frame(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, h: Header, body: Vec<u8>, now: f64) {
        let role = self.conns[c].role;
        let state = &self.conns[c].state;
        if *state == State::Handshaking {
            let step = match self.conns[c].handshake.as_mut() {
                Some(hs) => hs.on_frame(&h, &body),
                None => return self.close_with(c, "unexpected frame"),
            };
            match step {
                Err(handshake::HandshakeError::PeerClosed(reason)) => {
                    self.conns[c].hs_fail = Some("peer_refused");
                    return self.close(c, &format!("peer closed: {reason}"));
                }
                Err(e) => {
                    self.conns[c].hs_fail = Some(e.reason());
                    return self.close_with(c, &e.to_string());
                }
                Ok(step) => return self.on_handshake_step(ring, c, step),
            }
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
            (Role::ListenerClient, frame::KIND_CALL | frame::KIND_NOTIFY) => {
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
                let msg = edge::call_from_codec(&body, h.codec, self.ref_key.as_ref()).map(|b| {
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
                            let codec = edge::reply_codec_for_refused(h.codec, &body);
                            let err = edge::error_reply(codec, "bad_request", &e);
                            if !self.unread_beyond_limit(c, err.len() + frame::HEADER_LEN) {
                                let _ = self.queue_frame(c, frame::KIND_REPLY, codec, 0, h.corr, &err);
                            }
                        }
                    }
                }
            }
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
    fn deliver_one(&mut self, inboxes: &[Arc<Inbox>], c: usize, tid: usize, msg: Vec<u8>, now: f64) {
        self.deliver(inboxes, c, Delivery { tid, hdr: tid as u16, bytes: msg, count: 1 }, now);
    }

    /// Pushes messages into a thread's inbox (thread 0 or an unknown one: thread 1); when it is
    /// full, holds them and stops reading this connection until they are delivered (see
    /// `retry_stalled`).
    fn deliver(&mut self, inboxes: &[Arc<Inbox>], c: usize, d: Delivery, now: f64) {
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

    // ---- writing -----------------------------------------------------------------------------

    /// Sends what the connections queued this turn (write batching: `links` makes one write
    /// per connection per turn), after ending the connections closed in this turn.
    pub fn flush(&mut self, ring: &mut Ring) {
        self.sweep(ring);
        self.links.flush(ring);
    }

    // ---- closing -----------------------------------------------------------------------------

    /// Closes a connection at once, telling the peer why with a CLOSE frame (best effort).
    fn close_with(&mut self, c: usize, reason: &str) {
        let mut out = Vec::new();
        frame::write_close(&mut out, reason);
        self.close_as(c, reason, Goodbye::Now(out));
    }

    /// Closes a connection at once (what it queued is dropped), telling Lua why.
    fn close(&mut self, c: usize, reason: &str) {
        self.close_as(c, reason, Goodbye::Now(Vec::new()));
    }

    fn close_as(&mut self, c: usize, reason: &str, goodbye: Goodbye) {
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
    fn sweep(&mut self, ring: &mut Ring) {
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

    // ---- the loop's entry points --------------------------------------------------------------

    /// Handles one transport completion (`op_id::Owner::Transport` or `TransportLinks`).
    pub fn on_completion(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], user_data: u64, res: i32, now: f64) {
        let Some(id) = crate::op_id::decode(user_data) else { return };
        if id.owner == crate::op_id::Owner::TransportLinks {
            self.links.on_completion(ring, user_data, res);
            while let Some(ev) = self.links.pop_event() {
                self.on_link_event(ring, inboxes, ev, now);
            }
            return self.sweep(ring);
        }
        if id.op == OP_DATAGRAM {
            self.on_datagram(ring, inboxes, id.slot, res);
        }
    }

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
    fn due(&self, now: f64, next: &mut Option<f64>) -> Due {
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
    fn close_timed_out(&mut self, due: &mut Due) {
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
    fn trim_freed(&mut self, now: f64, next: &mut Option<f64>) {
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

    /// Handles what `inbuf` holds, then reads again unless a delivery is stalled.
    fn resume(&mut self, ring: &mut Ring, inboxes: &[Arc<Inbox>], c: usize, now: f64) {
        if self.conns[c].role == Role::HttpClient {
            self.serve_http(inboxes, c, now);
        } else {
            self.process_frames(ring, inboxes, c, now);
        }
        self.sync_reading(ring, c);
    }

    /// Closes everything (the thread is leaving its loop).
    pub fn shutdown(&mut self) {
        self.links.shutdown_all();
        for (_, l) in self.listeners.iter_mut() {
            if l.fd >= 0 {
                close_fd(l.fd);
                // the kernel may still write into a receive's buffer until the ring is gone
                std::mem::forget(std::mem::take(&mut l.buf));
            }
        }
        self.conns.clear();
        self.listeners.clear();
    }
}

/// Whether received bytes start like a TLS record (a handshake or an alert, TLS 1.0-1.3), which
/// a plain node reads as a frame far over the pre-authentication limit.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, 0x01..=0x04, ..])
}

fn machine_name(machine: u64) -> String {
    if machine >= CLIENT_MACHINES {
        return format!("process-{}", machine - CLIENT_MACHINES);   // (as luact.node names it)
    }
    machine_addr(machine).to_string()
}
