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
//! module owns what the protocols share on top of it: each connection's protocol state (keyed by
//! its own id and generation, which Lua sees), what a connection queues before the turn's flush
//! hands it over, and the completion entry point (this file); the frame dispatch and delivery
//! (`reading.rs`), closing with a reason (`closing.rs`) and timeouts (`tick`, `timers.rs`).
//! Each protocol is a file: `node_link.rs` (dialing, handshake, node
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

mod closing;
mod datagrams;
mod listener_clients;
mod node_link;
mod reading;
mod timers;

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
    /// A node client's token (random per process; 0 for a node): sent as `client/<16 hex>` in
    /// the HELLO's address field, see `hello_addr`.
    pub client_token: u64,
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

    /// What this process's HELLO names as its address: a node's "ip:port"; a node client's
    /// token ("client/<16 hex digits>"), which tells a node whether a client dialing with an id
    /// already connected is that client again or another that drew the same id.
    pub fn hello_addr(&self) -> String {
        if self.is_client() {
            format!("client/{:016x}", self.client_token)
        } else {
            self.addr.clone()
        }
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
    /// A node client's connection (accepted): the address field of its HELLO, its token.
    client_token: String,
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
            client_token: String::new(),
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

    // ---- writing (reading, closing and the deadlines are in reading.rs, closing.rs and
    // timers.rs, each an `impl Transport` block) --------------------------------------------

    /// Sends what the connections queued this turn (write batching: `links` makes one write
    /// per connection per turn), after ending the connections closed in this turn.
    pub fn flush(&mut self, ring: &mut Ring) {
        self.sweep(ring);
        self.links.flush(ring);
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
