//! The node-to-node handshake: a pure state machine over HELLO and AUTH frames.
//!
//! Owns the HELLO body layout, the AUTH MAC (HMAC-SHA256 over both nonces, both roles' sender,
//! both node ids, the cluster and both addresses) and every refusal. It never touches a socket, a
//! clock or a random source: the caller passes a fresh nonce in, sends the bytes it gets back,
//! feeds it the peer's frames, and drops the connection when the handshake does not finish in
//! time. Depends on std, hmac, sha2 and `super::frame` only, so `spec/fuzz` can include this
//! file by path. The protocol is documented in PROTOCOL.md ("Node handshake"): change both
//! together.
//!
//! ```text
//! us                                   peer
//! HELLO(version, role, id, nonce, ...) ->   (sent by `Handshake::new`)
//!                                      <- HELLO
//! AUTH(mac) ->                              (returned by `on_frame(HELLO)` in `Step::send`)
//!                                      <- AUTH
//!                                           (`on_frame(AUTH)` verifies: `Step::done`)
//! ```
//! The peer's AUTH can only follow its HELLO, and our AUTH always answers that HELLO, so a step
//! carries `send` or `done`, never both; the `Step` struct allows both so callers need not
//! care. Frames may arrive after `done` before the peer has verified our AUTH: the peer closes
//! the connection if it fails, and its frames are dispatched only after it sent its own AUTH.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::frame::{self, Header};

/// The only protocol version this code speaks. 2: node links carry ACK frames (credit per
/// receiving thread); a version-1 node would close on the first one, so the two refuse each other.
pub const VERSION: u16 = 2;
/// Bytes in a nonce and in a MAC.
pub const NONCE_LEN: usize = 32;
pub const MAC_LEN: usize = 32;
/// Domain separation for the MAC; a new MAC layout gets a new label.
const MAC_LABEL: &[u8] = b"luact-auth-v1";
/// The fixed part of a HELLO body: version, role, node id, nonce, cluster_len, addr_len.
const HELLO_FIXED: usize = 2 + 1 + 8 + NONCE_LEN + 1 + 1;
/// Longest cluster name and address (their length is one byte on the wire).
pub const MAX_NAME: usize = 255;

type HmacSha256 = Hmac<Sha256>;

/// Who is speaking. A dialer (or a client process that dials without listening) talks to an
/// acceptor, and an acceptor to either: the role goes into the MAC, so an AUTH reflected back to
/// its sender never verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// The node that opened the connection.
    Dialer = 1,
    /// The node that accepted it.
    Acceptor = 2,
    /// A process that opened the connection and does not listen for nodes itself.
    Client = 3,
}

impl Role {
    pub fn from_u8(b: u8) -> Option<Role> {
        match b {
            1 => Some(Role::Dialer),
            2 => Some(Role::Acceptor),
            3 => Some(Role::Client),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Dialer => "dialer",
            Role::Acceptor => "acceptor",
            Role::Client => "client",
        }
    }

    /// Whether a connection between `self` and `peer` has exactly one acceptor.
    fn pairs_with(self, peer: Role) -> bool {
        (self == Role::Acceptor) != (peer == Role::Acceptor)
    }
}

/// This side of the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub role: Role,
    /// This process's machine id.
    pub node_id: u64,
    /// Nodes of different clusters refuse each other (at most 255 bytes).
    pub cluster: String,
    /// "ip:port" this node listens on for nodes, or "" (at most 255 bytes).
    pub addr: String,
    /// The shared cluster secret (the HMAC key).
    pub secret: Vec<u8>,
    /// The node id this side means to reach (a dialer: the node it dialed; `None` for an
    /// acceptor). A HELLO naming any other node is refused before this side sends anything that
    /// proves the secret, and the AUTH this side sends names this node as its receiver, so a
    /// proof relayed to any other node does not verify there.
    pub expect_peer: Option<u64>,
}

impl Config {
    /// Checks what `Handshake::new` would refuse, so a bad configuration is reported at start.
    pub fn validate(&self) -> Result<(), HandshakeError> {
        if self.cluster.len() > MAX_NAME {
            return Err(HandshakeError::Config("the cluster name is longer than 255 bytes"));
        }
        if self.addr.len() > MAX_NAME {
            return Err(HandshakeError::Config("the address is longer than 255 bytes"));
        }
        Ok(())
    }
}

/// The authenticated peer, once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: u64,
    /// "ip:port" the peer listens on for nodes; a node client's token ("client/<16 hex>"), or ""
    /// from an older client.
    pub addr: String,
    pub role: Role,
    pub cluster: String,
}

/// What to do after a frame: send `send` (our AUTH frame) and/or use `done` (the peer is
/// authenticated: leave the handshake, raise the frame limit, dispatch its frames).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    pub send: Option<Vec<u8>>,
    pub done: Option<Peer>,
}

/// Why a handshake was refused. The `Display` text is meant for the reason of a CLOSE frame;
/// after any error the connection is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// Our own configuration cannot be sent (see `Config::validate`).
    Config(&'static str),
    Version(u16),
    UnknownRole(u8),
    /// Two dialers or two acceptors.
    RoleMismatch { ours: Role, theirs: Role },
    ClusterMismatch { ours: String, theirs: String },
    /// The peer claims our own node id.
    OwnNodeId(u64),
    /// The peer's HELLO names another node than the one this side dialed (a relay, or the
    /// address now belongs to another node): refused before our AUTH is sent.
    WrongPeer { expected: u64, claimed: u64 },
    /// The peer's nonce is ours: our HELLO came back.
    EchoedNonce,
    MalformedHello(&'static str),
    MalformedAuth { len: usize },
    DuplicateHello,
    AuthBeforeHello,
    /// The MAC did not verify: another secret, or a replayed, reflected or altered handshake.
    BadMac,
    /// A frame other than HELLO/AUTH before the handshake completed.
    Unexpected(u8),
    /// The peer sent CLOSE during the handshake (its reason, cut and made UTF-8).
    PeerClosed(String),
    /// `on_frame` after the handshake completed.
    Finished,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandshakeError::*;
        match self {
            Config(what) => write!(f, "bad handshake configuration: {what}"),
            Version(v) => write!(f, "unsupported protocol version {v} (this node speaks {VERSION})"),
            UnknownRole(r) => write!(f, "malformed HELLO: unknown role {r}"),
            RoleMismatch { ours, theirs } => write!(
                f,
                "role mismatch: the peer is {}, this node is {} (exactly one must be acceptor)",
                theirs.name(),
                ours.name()
            ),
            ClusterMismatch { ours, theirs } => {
                write!(f, "cluster mismatch: the peer is in {theirs:?}, this node is in {ours:?}")
            }
            OwnNodeId(id) => write!(f, "the peer claims this node's own id {id:#018x}"),
            WrongPeer { expected, claimed } => write!(
                f,
                "dialed node {expected:#018x} but the peer says it is {claimed:#018x} (nothing was proven to it)"
            ),
            EchoedNonce => write!(f, "the peer sent this node's nonce back"),
            MalformedHello(what) => write!(f, "malformed HELLO: {what}"),
            MalformedAuth { len } => write!(f, "malformed AUTH: {len} bytes, expected {MAC_LEN}"),
            DuplicateHello => write!(f, "duplicate HELLO"),
            AuthBeforeHello => write!(f, "AUTH before HELLO"),
            BadMac => write!(f, "authentication failed (wrong cluster secret?)"),
            Unexpected(kind) => {
                write!(f, "{} frame before the handshake completed", frame::kind_name(*kind))
            }
            PeerClosed(reason) => write!(f, "the peer closed the connection: {reason}"),
            Finished => write!(f, "the handshake is already finished"),
        }
    }
}

impl HandshakeError {
    /// The reason a metric counts this failure under (`luact_handshake_failures_total`): one of
    /// a few fixed words, whatever the details.
    pub fn reason(&self) -> &'static str {
        use HandshakeError::*;
        match self {
            BadMac => "bad_secret",
            ClusterMismatch { .. } => "wrong_cluster",
            Version(_) => "version",
            PeerClosed(_) => "peer_refused",
            _ => "protocol",
        }
    }
}

impl std::error::Error for HandshakeError {}

/// What a HELLO says (its layout is in PROTOCOL.md).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hello {
    version: u16,
    role: Role,
    node_id: u64,
    nonce: [u8; NONCE_LEN],
    cluster: Vec<u8>,
    addr: Vec<u8>,
}

impl Hello {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HELLO_FIXED + self.cluster.len() + self.addr.len());
        b.extend_from_slice(&self.version.to_le_bytes());
        b.push(self.role as u8);
        b.extend_from_slice(&self.node_id.to_le_bytes());
        b.extend_from_slice(&self.nonce);
        push_short(&mut b, &self.cluster);
        push_short(&mut b, &self.addr);
        b
    }

    /// Parses a HELLO body: the version first (another version may have another layout), then
    /// the rest, refusing short or trailing bytes.
    fn decode(body: &[u8]) -> Result<Hello, HandshakeError> {
        let mut r = Reader(body);
        let version = r.u16().ok_or(HandshakeError::MalformedHello("truncated"))?;
        if version != VERSION {
            return Err(HandshakeError::Version(version));
        }
        let truncated = HandshakeError::MalformedHello("truncated");
        let role_byte = r.take(1).ok_or(truncated.clone())?[0];
        let role = Role::from_u8(role_byte).ok_or(HandshakeError::UnknownRole(role_byte))?;
        let node_id = r.u64().ok_or(truncated.clone())?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(r.take(NONCE_LEN).ok_or(truncated.clone())?);
        let cluster = r.short().ok_or(truncated.clone())?.to_vec();
        let addr = r.short().ok_or(truncated)?.to_vec();
        if !r.0.is_empty() {
            return Err(HandshakeError::MalformedHello("trailing bytes"));
        }
        if std::str::from_utf8(&addr).is_err() {
            return Err(HandshakeError::MalformedHello("the address is not UTF-8"));
        }
        Ok(Hello { version, role, node_id, nonce, cluster, addr })
    }
}

fn push_short(b: &mut Vec<u8>, s: &[u8]) {
    // Lengths are checked by Config::validate / Hello::decode to fit one byte.
    b.push(s.len().min(MAX_NAME) as u8);
    b.extend_from_slice(&s[..s.len().min(MAX_NAME)]);
}

/// A cursor over a body that never reads past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    /// A u8 length then that many bytes.
    fn short(&mut self) -> Option<&'a [u8]> {
        let n = self.take(1)?[0] as usize;
        self.take(n)
    }
}

/// The MAC that `sender` sends to `receiver`:
/// `HMAC-SHA256(secret, "luact-auth-v1" | u8 sender_role | sender_nonce | receiver_nonce |
///  u64 sender_node | u64 receiver_node | u8 len | cluster | u8 len | sender_addr |
///  u8 len | receiver_addr)`.
/// Each side puts in its own view of both endpoints: its own HELLO as it sent it, and as the
/// receiver the node it means to reach (a dialer: the node it dialed, checked against the HELLO
/// before this is computed; an acceptor verifying: itself). A proof is therefore only valid at
/// the node its sender meant.
fn mac_for(secret: &[u8], sender: &Hello, receiver: &Hello) -> Result<HmacSha256, HandshakeError> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret)
        .map_err(|_| HandshakeError::Config("the secret is not a valid HMAC key"))?;
    mac.update(MAC_LABEL);
    mac.update(&[sender.role as u8]);
    mac.update(&sender.nonce);
    mac.update(&receiver.nonce);
    mac.update(&sender.node_id.to_le_bytes());
    mac.update(&receiver.node_id.to_le_bytes());
    for field in [&sender.cluster, &sender.addr, &receiver.addr] {
        mac.update(&[field.len().min(MAX_NAME) as u8]);
        mac.update(&field[..field.len().min(MAX_NAME)]);
    }
    Ok(mac)
}

#[derive(Debug)]
enum State {
    AwaitHello,
    AwaitAuth(Hello),
    Done,
    Failed(HandshakeError),
}

/// One connection's handshake. See the module header for the sequence.
#[derive(Debug)]
pub struct Handshake {
    secret: Vec<u8>,
    expect_peer: Option<u64>,
    ours: Hello,
    state: State,
}

impl Handshake {
    /// Starts a handshake; returns it with our HELLO frame, to be sent first. `nonce` must be
    /// fresh random bytes for every connection (the transport uses getrandom).
    pub fn new(config: Config, nonce: [u8; NONCE_LEN]) -> Result<(Handshake, Vec<u8>), HandshakeError> {
        config.validate()?;
        let ours = Hello {
            version: VERSION,
            role: config.role,
            node_id: config.node_id,
            nonce,
            cluster: config.cluster.into_bytes(),
            addr: config.addr.into_bytes(),
        };
        let hello = control_frame(frame::KIND_HELLO, &ours.encode());
        Ok((Handshake { secret: config.secret, expect_peer: config.expect_peer, ours, state: State::AwaitHello }, hello))
    }

    /// True once the peer's AUTH verified.
    #[allow(dead_code)] // read by the tests and the fuzz targets (spec/fuzz), not by the core
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Takes one frame from the peer. On an error the connection is to be closed (with the
    /// error's text in a CLOSE frame, unless the error is `PeerClosed`); the handshake then
    /// returns the same error forever.
    pub fn on_frame(&mut self, header: &Header, body: &[u8]) -> Result<Step, HandshakeError> {
        let result = self.step(header.kind, body);
        if let Err(e) = &result {
            if !matches!(self.state, State::Done) || *e != HandshakeError::Finished {
                self.state = State::Failed(e.clone());
            }
        }
        result
    }

    fn step(&mut self, kind: u8, body: &[u8]) -> Result<Step, HandshakeError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done => return Err(HandshakeError::Finished),
            _ => {}
        }
        match kind {
            frame::KIND_HELLO => self.on_hello(body),
            frame::KIND_AUTH => self.on_auth(body),
            frame::KIND_CLOSE => {
                let mut end = body.len().min(frame::MAX_CLOSE_REASON);
                let text = loop {
                    // Cut at a character boundary (up to 3 bytes back) or fall back to lossy.
                    match std::str::from_utf8(&body[..end]) {
                        Ok(s) => break s.to_string(),
                        Err(e) if end - e.valid_up_to() <= 3 && e.error_len().is_none() => {
                            end = e.valid_up_to()
                        }
                        Err(_) => break String::from_utf8_lossy(&body[..end]).into_owned(),
                    }
                };
                Err(HandshakeError::PeerClosed(text))
            }
            other => Err(HandshakeError::Unexpected(other)),
        }
    }

    fn on_hello(&mut self, body: &[u8]) -> Result<Step, HandshakeError> {
        if matches!(self.state, State::AwaitAuth(_)) {
            return Err(HandshakeError::DuplicateHello);
        }
        let peer = Hello::decode(body)?;
        if !self.ours.role.pairs_with(peer.role) {
            return Err(HandshakeError::RoleMismatch { ours: self.ours.role, theirs: peer.role });
        }
        if peer.cluster != self.ours.cluster {
            return Err(HandshakeError::ClusterMismatch {
                ours: String::from_utf8_lossy(&self.ours.cluster).into_owned(),
                theirs: String::from_utf8_lossy(&peer.cluster).into_owned(),
            });
        }
        if peer.node_id == self.ours.node_id {
            return Err(HandshakeError::OwnNodeId(peer.node_id));
        }
        if peer.nonce == self.ours.nonce {
            return Err(HandshakeError::EchoedNonce);
        }
        // A dialer checks whom it reached before it proves anything: its AUTH would otherwise
        // be a proof that a relay could hand to the node the HELLO names.
        if let Some(expected) = self.expect_peer {
            if peer.node_id != expected {
                return Err(HandshakeError::WrongPeer { expected, claimed: peer.node_id });
            }
        }
        let receiver = Hello { node_id: self.expect_peer.unwrap_or(peer.node_id), ..peer.clone() };
        let tag = mac_for(&self.secret, &self.ours, &receiver)?.finalize().into_bytes();
        self.state = State::AwaitAuth(peer);
        Ok(Step { send: Some(control_frame(frame::KIND_AUTH, &tag)), done: None })
    }

    fn on_auth(&mut self, body: &[u8]) -> Result<Step, HandshakeError> {
        let State::AwaitAuth(peer) = &self.state else {
            return Err(HandshakeError::AuthBeforeHello);
        };
        if body.len() != MAC_LEN {
            return Err(HandshakeError::MalformedAuth { len: body.len() });
        }
        // verify_slice compares in constant time.
        mac_for(&self.secret, peer, &self.ours)?
            .verify_slice(body)
            .map_err(|_| HandshakeError::BadMac)?;
        let done = Peer {
            node_id: peer.node_id,
            // Both checked in on_hello: the address is UTF-8, the cluster equals ours.
            addr: String::from_utf8_lossy(&peer.addr).into_owned(),
            role: peer.role,
            cluster: String::from_utf8_lossy(&peer.cluster).into_owned(),
        };
        self.state = State::Done;
        Ok(Step { send: None, done: Some(done) })
    }
}

/// A handshake frame: codec 0, thread 0, corr 0.
fn control_frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame::HEADER_LEN + body.len());
    // Cannot fail: handshake bodies are under 600 bytes.
    let _ = frame::write_frame(&mut out, &Header::control(kind), body);
    out
}

#[cfg(test)]
mod tests {
    use super::frame::{FrameDecoder, PRE_AUTH_MAX_FRAME};
    use super::*;

    const SECRET: &[u8] = b"s3cret";

    fn config(role: Role, node_id: u64, addr: &str) -> Config {
        Config { role, node_id, cluster: "prod".into(), addr: addr.into(), secret: SECRET.to_vec(), expect_peer: None }
    }

    fn nonce(seed: u8) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        for (i, b) in n.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        n
    }

    /// The one frame in `bytes`, through the real decoder with the pre-auth limit.
    fn frame_of(bytes: &[u8]) -> (Header, Vec<u8>) {
        let mut dec = FrameDecoder::new(PRE_AUTH_MAX_FRAME);
        let mut rest = bytes;
        let f = dec.decode(&mut rest).expect("decodes").expect("one whole frame");
        assert!(rest.is_empty());
        f
    }

    fn feed(hs: &mut Handshake, bytes: &[u8]) -> Result<Step, HandshakeError> {
        let (h, b) = frame_of(bytes);
        hs.on_frame(&h, &b)
    }

    fn send_of(step: Result<Step, HandshakeError>) -> Vec<u8> {
        let step = step.expect("step");
        assert!(step.done.is_none());
        step.send.expect("an AUTH to send")
    }

    /// A dialer (node 1) and an acceptor (node 2) after exchanging HELLOs: (dialer, acceptor,
    /// dialer's AUTH, acceptor's AUTH).
    fn after_hellos(d_nonce: u8, a_nonce: u8) -> (Handshake, Handshake, Vec<u8>, Vec<u8>) {
        let (mut d, d_hello) = dialer_to(1, "127.0.0.1:7001", 2, d_nonce);
        let (mut a, a_hello) = Handshake::new(config(Role::Acceptor, 2, "127.0.0.1:7002"), nonce(a_nonce)).unwrap();
        let d_auth = send_of(feed(&mut d, &a_hello));
        let a_auth = send_of(feed(&mut a, &d_hello));
        (d, a, d_auth, a_auth)
    }

    fn hello_body(version: u16, role: u8, node_id: u64, nonce: [u8; 32], cluster: &[u8], addr: &[u8]) -> Vec<u8> {
        let mut b = version.to_le_bytes().to_vec();
        b.push(role);
        b.extend_from_slice(&node_id.to_le_bytes());
        b.extend_from_slice(&nonce);
        b.push(cluster.len() as u8);
        b.extend_from_slice(cluster);
        b.push(addr.len() as u8);
        b.extend_from_slice(addr);
        b
    }

    fn hello_frame(body: &[u8]) -> (Header, Vec<u8>) {
        (Header { body_len: body.len() as u32, ..Header::control(frame::KIND_HELLO) }, body.to_vec())
    }

    /// A dialer (node `id`) that dialed node `target`.
    fn dialer_to(id: u64, addr: &str, target: u64, seed: u8) -> (Handshake, Vec<u8>) {
        Handshake::new(Config { expect_peer: Some(target), ..config(Role::Dialer, id, addr) }, nonce(seed)).unwrap()
    }

    #[test]
    fn relayed_proof_refused() {
        // Node Y (id 1) was made to dial the attacker M (id 9). M dials node X (id 2) posing as
        // Y and relays the HELLOs both ways, hoping to relay Y's AUTH to X.
        let (mut y, y_hello) = dialer_to(1, "127.0.0.1:7001", 9, 1);
        let (mut x, x_hello) = Handshake::new(config(Role::Acceptor, 2, "127.0.0.1:7002"), nonce(2)).unwrap();
        send_of(feed(&mut x, &y_hello));
        // Y sees X's HELLO where it expected M's: refused, and no AUTH leaves Y.
        let refused = feed(&mut y, &x_hello);
        assert_eq!(refused, Err(HandshakeError::WrongPeer { expected: 9, claimed: 2 }));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "dialed node 0x0000000000000009 but the peer says it is 0x0000000000000002 (nothing was proven to it)"
        );
        // M rewrites X's HELLO to claim its own id, keeping X's nonce and address: Y answers,
        // but its proof names M as the receiver, so X refuses it.
        let (mut y, y_hello) = dialer_to(1, "127.0.0.1:7001", 9, 1);
        let (mut x, x_hello) = Handshake::new(config(Role::Acceptor, 2, "127.0.0.1:7002"), nonce(2)).unwrap();
        send_of(feed(&mut x, &y_hello));
        let (_, x_body) = frame_of(&x_hello);
        let mut forged = x_body.clone();
        forged[3..11].copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(forged, hello_body(VERSION, 2, 9, nonce(2), b"prod", b"127.0.0.1:7002"));
        let (h, b) = hello_frame(&forged);
        let y_auth = send_of(y.on_frame(&h, &b));
        assert_eq!(feed(&mut x, &y_auth), Err(HandshakeError::BadMac));
        assert!(!x.is_done());
    }

    fn acceptor() -> Handshake {
        Handshake::new(config(Role::Acceptor, 2, "127.0.0.1:7002"), nonce(2)).unwrap().0
    }

    #[test]
    fn hello_layout() {
        let (_, bytes) = Handshake::new(config(Role::Dialer, 0x0102, "a:1"), nonce(1)).unwrap();
        let (h, body) = frame_of(&bytes);
        assert_eq!((h.kind, h.codec, h.thread, h.corr), (frame::KIND_HELLO, 0, 0, 0));
        assert_eq!(body, hello_body(VERSION, 1, 0x0102, nonce(1), b"prod", b"a:1"));
    }

    #[test]
    fn round_trip_dialer_acceptor() {
        let (mut d, mut a, d_auth, a_auth) = after_hellos(1, 2);
        assert!(!d.is_done() && !a.is_done());
        let d_peer = feed(&mut d, &a_auth).unwrap();
        let a_peer = feed(&mut a, &d_auth).unwrap();
        assert_eq!(d_peer, Step { send: None, done: Some(Peer { node_id: 2, addr: "127.0.0.1:7002".into(), role: Role::Acceptor, cluster: "prod".into() }) });
        assert_eq!(a_peer, Step { send: None, done: Some(Peer { node_id: 1, addr: "127.0.0.1:7001".into(), role: Role::Dialer, cluster: "prod".into() }) });
        assert!(d.is_done() && a.is_done());
        assert_eq!(feed(&mut d, &a_auth), Err(HandshakeError::Finished));
        assert!(d.is_done(), "a stray call after completion does not undo it");
    }

    #[test]
    fn round_trip_client_role_with_empty_address() {
        let (mut c, c_hello) = Handshake::new(config(Role::Client, 9, ""), nonce(9)).unwrap();
        let (mut a, a_hello) = Handshake::new(config(Role::Acceptor, 2, "127.0.0.1:7002"), nonce(2)).unwrap();
        let c_auth = send_of(feed(&mut c, &a_hello));
        let a_auth = send_of(feed(&mut a, &c_hello));
        assert_eq!(feed(&mut a, &c_auth).unwrap().done.unwrap().role, Role::Client);
        assert_eq!(feed(&mut c, &a_auth).unwrap().done.unwrap().addr, "127.0.0.1:7002");
    }

    #[test]
    fn wrong_secret_refused() {
        let (mut d, d_hello) = Handshake::new(config(Role::Dialer, 1, ""), nonce(1)).unwrap();
        let other = Config { secret: b"guess".to_vec(), ..config(Role::Acceptor, 2, "") };
        let (mut a, a_hello) = Handshake::new(other, nonce(2)).unwrap();
        let d_auth = send_of(feed(&mut d, &a_hello));
        let a_auth = send_of(feed(&mut a, &d_hello));
        assert_eq!(feed(&mut a, &d_auth), Err(HandshakeError::BadMac));
        assert_eq!(feed(&mut d, &a_auth), Err(HandshakeError::BadMac));
        assert_eq!(HandshakeError::BadMac.to_string(), "authentication failed (wrong cluster secret?)");
    }

    #[test]
    fn replayed_auth_from_another_session_refused() {
        // An eavesdropper recorded session 1 and replays the dialer's side against a new
        // connection: the acceptor's fresh nonce makes the recorded AUTH worthless.
        let (_, _, d_auth_1, _) = after_hellos(1, 2);
        let (_, d_hello_1) = Handshake::new(config(Role::Dialer, 1, "127.0.0.1:7001"), nonce(1)).unwrap();
        let (mut a2, _) = Handshake::new(config(Role::Acceptor, 2, "127.0.0.1:7002"), nonce(3)).unwrap();
        send_of(feed(&mut a2, &d_hello_1));
        assert_eq!(feed(&mut a2, &d_auth_1), Err(HandshakeError::BadMac));
    }

    #[test]
    fn reflected_auth_refused() {
        // A man in the middle sends the acceptor's own AUTH back to it.
        let (_, mut a, _, a_auth) = after_hellos(1, 2);
        assert_eq!(feed(&mut a, &a_auth), Err(HandshakeError::BadMac));
        // And a HELLO reflected back to its sender is refused outright.
        let (mut d, d_hello) = Handshake::new(config(Role::Dialer, 1, ""), nonce(1)).unwrap();
        assert!(matches!(feed(&mut d, &d_hello), Err(HandshakeError::RoleMismatch { .. })));
    }

    #[test]
    fn tampered_address_refused() {
        // The addresses are in the MAC: a relay cannot advertise itself as the dialer's address.
        let (mut d, d_hello) = Handshake::new(config(Role::Dialer, 1, "127.0.0.1:7001"), nonce(1)).unwrap();
        let (mut a, a_hello) = Handshake::new(config(Role::Acceptor, 2, "127.0.0.1:7002"), nonce(2)).unwrap();
        let d_auth = send_of(feed(&mut d, &a_hello));
        let (_, body) = frame_of(&d_hello);
        let forged = hello_body(VERSION, 1, 1, nonce(1), b"prod", b"127.0.0.1:6666");
        assert_ne!(body, forged);
        let (h, b) = hello_frame(&forged);
        send_of(a.on_frame(&h, &b));
        assert_eq!(feed(&mut a, &d_auth), Err(HandshakeError::BadMac));
    }

    #[test]
    fn refusals_with_their_texts() {
        let cases: Vec<(Vec<u8>, HandshakeError, &str)> = vec![
            (hello_body(1, 1, 1, nonce(1), b"prod", b""), HandshakeError::Version(1),
                "unsupported protocol version 1 (this node speaks 2)"),
            (hello_body(VERSION, 1, 1, nonce(1), b"test", b""),
                HandshakeError::ClusterMismatch { ours: "prod".into(), theirs: "test".into() },
                "cluster mismatch: the peer is in \"test\", this node is in \"prod\""),
            (hello_body(VERSION, 1, 2, nonce(1), b"prod", b""), HandshakeError::OwnNodeId(2),
                "the peer claims this node's own id 0x0000000000000002"),
            (hello_body(VERSION, 2, 1, nonce(1), b"prod", b""),
                HandshakeError::RoleMismatch { ours: Role::Acceptor, theirs: Role::Acceptor },
                "role mismatch: the peer is acceptor, this node is acceptor (exactly one must be acceptor)"),
            (hello_body(VERSION, 7, 1, nonce(1), b"prod", b""), HandshakeError::UnknownRole(7),
                "malformed HELLO: unknown role 7"),
            (hello_body(VERSION, 1, 1, nonce(2), b"prod", b""), HandshakeError::EchoedNonce,
                "the peer sent this node's nonce back"),
            (hello_body(VERSION, 1, 1, nonce(1), b"prod", b"\xff:1"), HandshakeError::MalformedHello("the address is not UTF-8"),
                "malformed HELLO: the address is not UTF-8"),
            ([hello_body(VERSION, 1, 1, nonce(1), b"prod", b""), vec![0]].concat(),
                HandshakeError::MalformedHello("trailing bytes"), "malformed HELLO: trailing bytes"),
            (hello_body(VERSION, 1, 1, nonce(1), b"prod", b"")[..20].to_vec(),
                HandshakeError::MalformedHello("truncated"), "malformed HELLO: truncated"),
            (vec![1], HandshakeError::MalformedHello("truncated"), "malformed HELLO: truncated"),
        ];
        for (body, err, text) in cases {
            let mut a = acceptor();
            let (h, b) = hello_frame(&body);
            assert_eq!(a.on_frame(&h, &b), Err(err.clone()));
            assert_eq!(err.to_string(), text);
            // Sticky: the handshake stays failed.
            let (h, b) = hello_frame(&hello_body(VERSION, 1, 1, nonce(1), b"prod", b""));
            assert_eq!(a.on_frame(&h, &b), Err(err));
        }
    }

    #[test]
    fn out_of_order_frames_refused() {
        // AUTH before HELLO.
        let mut a = acceptor();
        let auth = Header { body_len: 32, ..Header::control(frame::KIND_AUTH) };
        assert_eq!(a.on_frame(&auth, &[0; 32]), Err(HandshakeError::AuthBeforeHello));
        assert_eq!(HandshakeError::AuthBeforeHello.to_string(), "AUTH before HELLO");
        // Duplicate HELLO.
        let (_, mut a, _, _) = after_hellos(1, 2);
        let (_, d_hello) = Handshake::new(config(Role::Dialer, 1, "127.0.0.1:7001"), nonce(1)).unwrap();
        assert_eq!(feed(&mut a, &d_hello), Err(HandshakeError::DuplicateHello));
        // Anything else before completion, before or after the HELLO.
        for kind in [frame::KIND_MSG, frame::KIND_CALL, frame::KIND_REPLY, frame::KIND_NOTIFY, frame::KIND_PING, frame::KIND_PONG] {
            let h = Header { codec: frame::CODEC_MSGPACK, thread: 1, corr: 5, ..Header::control(kind) };
            assert_eq!(acceptor().on_frame(&h, b""), Err(HandshakeError::Unexpected(kind)));
            let (_, mut a, _, _) = after_hellos(1, 2);
            assert_eq!(a.on_frame(&h, b""), Err(HandshakeError::Unexpected(kind)));
        }
        assert_eq!(HandshakeError::Unexpected(frame::KIND_MSG).to_string(), "MSG frame before the handshake completed");
    }

    #[test]
    fn malformed_auth_refused() {
        let (mut d, _, _, a_auth) = after_hellos(1, 2);
        let (h, body) = frame_of(&a_auth);
        assert_eq!(d.on_frame(&h, &body[..31]), Err(HandshakeError::MalformedAuth { len: 31 }));
        assert_eq!(HandshakeError::MalformedAuth { len: 31 }.to_string(), "malformed AUTH: 31 bytes, expected 32");
        // The right MAC after a failure does not revive it.
        assert_eq!(d.on_frame(&h, &body), Err(HandshakeError::MalformedAuth { len: 31 }));
    }

    #[test]
    fn peer_close_reports_its_reason() {
        let mut a = acceptor();
        let mut out = Vec::new();
        frame::write_close(&mut out, "cluster mismatch");
        assert_eq!(feed(&mut a, &out), Err(HandshakeError::PeerClosed("cluster mismatch".into())));
        let mut a = acceptor();
        let h = Header { body_len: 4, ..Header::control(frame::KIND_CLOSE) };
        assert_eq!(a.on_frame(&h, b"ab\xc3"), Err(HandshakeError::PeerClosed("ab".into())), "cut at a boundary");
        let mut a = acceptor();
        assert_eq!(a.on_frame(&h, b"a\xffb"), Err(HandshakeError::PeerClosed("a\u{fffd}b".into())));
    }

    #[test]
    fn config_limits() {
        let long = "x".repeat(256);
        let c = Config { cluster: long.clone(), ..config(Role::Dialer, 1, "") };
        assert_eq!(c.validate(), Err(HandshakeError::Config("the cluster name is longer than 255 bytes")));
        assert!(Handshake::new(c, nonce(1)).is_err());
        let c = Config { addr: long, ..config(Role::Dialer, 1, "") };
        assert!(Handshake::new(c, nonce(1)).is_err());
        // The longest names still fit under the pre-authentication frame limit.
        let max = "y".repeat(255);
        let c = Config { cluster: max.clone(), addr: max, ..config(Role::Dialer, 1, "") };
        let (_, hello) = Handshake::new(c, nonce(1)).unwrap();
        assert!(hello.len() <= PRE_AUTH_MAX_FRAME);
        frame_of(&hello);
    }

    use crate::test_rng::Rng;

    #[test]
    fn random_garbage_never_panics_or_authenticates() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let valid = hello_body(VERSION, 1, 1, nonce(1), b"prod", b"127.0.0.1:7001");
        for round in 0..20_000 {
            let mut a = acceptor();
            // Half the rounds start from a valid HELLO so that AUTH parsing runs too.
            if round % 2 == 0 {
                let (h, b) = hello_frame(&valid);
                send_of(a.on_frame(&h, &b));
            }
            for _ in 0..1 + rng.next() % 3 {
                let kind = (rng.next() % 11) as u8;
                let len = match rng.next() % 4 {
                    0 => 32,
                    1 => valid.len(),
                    _ => (rng.next() % 100) as usize,
                };
                let mut body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if kind == frame::KIND_HELLO && len >= 3 && rng.next() & 1 == 0 {
                    body[..3].copy_from_slice(&valid[..3]); // a plausible version and role
                }
                let h = Header { body_len: body.len() as u32, ..Header::control(kind) };
                if let Ok(step) = a.on_frame(&h, &body) {
                    assert!(step.done.is_none(), "round {round}: garbage authenticated");
                }
            }
        }
    }
}
