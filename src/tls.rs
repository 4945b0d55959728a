//! TLS for `tls://` (alias `ssl://`) listeners and references: a sans-IO layer on rustls (ring
//! provider, TLS 1.3 and 1.2). This file owns loading PEM certificates/keys/CA bundles into rustls
//! configs (`ServerTls`, `ClientTls`, built once per listener or per client identity) and the
//! per-connection state machine (`TlsSession`). It never touches a socket: the transport feeds the
//! bytes it received (`feed`, which returns the plaintext they produced), hands it plaintext to
//! send (`write`), and after EVERY `feed`/`write`/`close` sends whatever `take_outgoing` returns
//! (handshake messages, records, alerts). Every failure is a `TlsError` value whose Display text is
//! fit for a log line or a CLOSE reason; after an error from `feed` the connection must be closed
//! (after sending `take_outgoing()`, which may hold an alert).
//!
//! Bounds: `feed` returns at most as much plaintext as the ciphertext it was given (a record's
//! plaintext is never longer than the record), rustls caps a handshake message at 64 KiB, and
//! plaintext written before the handshake completes is capped at `MAX_PENDING` (an error beyond).
//! After the handshake `write` never fails for size: it encrypts into this session's outgoing
//! buffer, which the transport drains and bounds with its own send-queue limit. PEM files are read
//! up to `MAX_PEM_FILE` bytes.
//!
//! Certificates for the Lua integration specs, with the `openssl` CLI (OpenSSL 3; checked by the
//! test `openssl_cli_files_are_accepted`, which runs exactly the lines of this block, in an empty
//! directory, with `sh -e`): a CA, a server certificate for IP 127.0.0.2 and a client certificate,
//! both signed by the CA. Keys are P-256 in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`); PKCS#1 RSA
//! and SEC1 EC keys are accepted as well.
//!
//! ```sh
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
//!   -subj "/CN=luact test CA" -keyout ca.key -out ca.pem
//! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!   -subj "/CN=127.0.0.2" -keyout server.key -out server.csr
//! printf 'subjectAltName=IP:127.0.0.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
//! openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 3650 \
//!   -extfile server.ext -out server.pem
//! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!   -subj "/CN=luact test client" -keyout client.key -out client.csr
//! printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
//! openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial 3 -days 3650 \
//!   -extfile client.ext -out client.pem
//! ```
//!
//! Then: listener `cert = "server.pem", key = "server.key"` (plus `client_ca = "ca.pem"` to
//! require client certificates); a client trusts `ca.pem` and, for mutual TLS, presents
//! `client.pem`/`client.key`; it connects to `tls://127.0.0.2:PORT/...`. (A leaf made with
//! `openssl req -x509` and no `-extfile` gets the config's `CA:TRUE` and is refused as a server
//! certificate, hence the CSR + `x509 -req` steps.)

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection};

/// Plaintext that `write` may queue before the handshake completes (the transport's own send
/// queue has the same order of magnitude).
pub const MAX_PENDING: usize = 32 * 1024 * 1024;

/// Largest certificate / key / CA bundle file read.
pub const MAX_PEM_FILE: u64 = 16 * 1024 * 1024;

/// Everything that can go wrong, as a value. Display gives a one-line reason starting `tls: `.
#[derive(Debug)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read (or is larger than `MAX_PEM_FILE`).
    File { path: String, reason: String },
    /// A file holds no usable PEM item of the kind wanted, or a malformed one.
    Pem { path: String, reason: String },
    /// rustls refused the configuration (key does not match the certificate, bad CA, ...).
    Config(String),
    /// The name to verify is neither a DNS name nor an IP literal.
    ServerName(String),
    /// The peer broke the protocol or failed verification (or we refused it); close the connection.
    Protocol(rustls::Error),
    /// Too much plaintext written before the handshake completed.
    Backlog { queued: usize, limit: usize },
    /// `write` after `close`, after the peer's close_notify, or after a failure.
    Closed,
    /// Unexpected failure moving bytes through rustls' buffers.
    Io(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { path, reason } => write!(f, "tls: cannot read {path}: {reason}"),
            TlsError::Pem { path, reason } => write!(f, "tls: {path}: {reason}"),
            TlsError::Config(reason) => write!(f, "tls: bad configuration: {reason}"),
            TlsError::ServerName(name) => {
                write!(f, "tls: invalid server name {name:?} (want a DNS name or an IP address)")
            }
            TlsError::Protocol(e) => write!(f, "tls: {e}"),
            TlsError::Backlog { queued, limit } => write!(
                f,
                "tls: {queued} bytes written before the handshake completed (limit {limit})"
            ),
            TlsError::Closed => write!(f, "tls: session closed"),
            TlsError::Io(reason) => write!(f, "tls: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem_file(path: &str) -> Result<Vec<u8>, TlsError> {
    let file_err = |reason: String| TlsError::File { path: path.to_string(), reason };
    let file = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_err(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(file_err(format!("larger than {MAX_PEM_FILE} bytes")));
    }
    Ok(bytes)
}

fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: path.to_string(), reason: format!("bad PEM: {e}") })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_string(),
            reason: "no certificate (-----BEGIN CERTIFICATE-----) found".to_string(),
        });
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_pem_file(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_string(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key (PKCS#8, PKCS#1 or SEC1 PEM) found".to_string()
            }
            e => format!("bad PEM: {e}"),
        },
    })
}

fn load_roots(path: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_string(),
            reason: format!("unusable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// Server side of a tls:// listener, built once per listener from PEM files.
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// `cert_path`: PEM chain (leaf first); `key_path`: PEM private key (PKCS#8, PKCS#1 or SEC1);
    /// `client_ca_path`: Some(PEM CA bundle) => clients must present a certificate signed by it.
    pub fn from_files(
        cert_path: &str,
        key_path: &str,
        client_ca_path: Option<&str>,
    ) -> Result<ServerTls, TlsError> {
        let certs = load_certs(cert_path)?;
        let key = load_key(key_path)?;
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match client_ca_path {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = load_roots(ca)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError::Config(format!("{ca}: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            TlsError::Config(format!("{cert_path} / {key_path}: {e}"))
        })?;
        Ok(ServerTls { config: Arc::new(config) })
    }

    /// A fresh session for one accepted connection.
    pub fn session(&self) -> Result<TlsSession, TlsError> {
        let conn = ServerConnection::new(self.config.clone()).map_err(TlsError::Protocol)?;
        Ok(TlsSession::new(Connection::Server(conn)))
    }
}

/// Client side (a luact process calling `tls://host:port/name`).
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl ClientTls {
    /// `ca_path`: PEM roots to trust (required: no system roots are used); `cert_key`: optional
    /// client certificate chain + key paths for mutual TLS.
    pub fn from_files(ca_path: &str, cert_key: Option<(&str, &str)>) -> Result<ClientTls, TlsError> {
        let roots = load_roots(ca_path)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match cert_key {
            None => builder.with_no_client_auth(),
            Some((cert_path, key_path)) => {
                let certs = load_certs(cert_path)?;
                let key = load_key(key_path)?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    TlsError::Config(format!("{cert_path} / {key_path}: {e}"))
                })?
            }
        };
        Ok(ClientTls { config: Arc::new(config) })
    }

    /// A fresh session for one outgoing connection; `server_name` (a DNS name or an IP literal
    /// such as "127.0.0.1") is what the server's certificate must match.
    pub fn session(&self, server_name: &str) -> Result<TlsSession, TlsError> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| TlsError::ServerName(server_name.to_string()))?;
        let conn = ClientConnection::new(self.config.clone(), name).map_err(TlsError::Protocol)?;
        Ok(TlsSession::new(Connection::Client(conn)))
    }
}

/// One connection's TLS state, driven by the transport with bytes only.
pub struct TlsSession {
    conn: Connection,
    /// Ciphertext already taken out of rustls (when its own buffer hit its limit) and not yet
    /// handed to the transport.
    out: Vec<u8>,
    /// `close()` was called.
    closed: bool,
    /// The peer sent close_notify.
    peer_closed: bool,
    /// `feed` failed: the connection is dead.
    failed: bool,
    /// Plaintext queued by `write` while handshaking (rustls does not say how much it holds).
    queued_early: usize,
}

impl TlsSession {
    fn new(mut conn: Connection) -> TlsSession {
        // Bounds both the plaintext queued before the handshake completes and rustls' own
        // outgoing-record buffer (which `write` spills into `out` when full).
        conn.set_buffer_limit(Some(MAX_PENDING));
        TlsSession {
            conn,
            out: Vec::new(),
            closed: false,
            peer_closed: false,
            failed: false,
            queued_early: 0,
        }
    }

    /// Bytes read from the socket; returns the plaintext they produced (maybe empty: a partial
    /// record or a handshake message), or an error after which the connection must be closed
    /// (send `take_outgoing()` first: it may hold an alert). Bytes after the peer's close_notify
    /// are ignored. Call `take_outgoing()` afterwards in any case (handshake replies).
    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, TlsError> {
        if self.failed {
            return Err(TlsError::Closed);
        }
        let mut plaintext = Vec::new();
        let mut input = ciphertext;
        while !input.is_empty() {
            match self.conn.read_tls(&mut input) {
                // Only after the peer's close_notify: nothing more is read.
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // "received plaintext buffer full" cannot happen (we drain after every
                    // process_new_packets) and "message buffer full" is malformed input:
                    // either way the connection is unusable.
                    self.failed = true;
                    return Err(TlsError::Io(e.to_string()));
                }
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    self.failed = true;
                    return Err(TlsError::Protocol(e));
                }
            };
            if state.peer_has_closed() {
                self.peer_closed = true;
            }
            if let Err(e) = self.drain_plaintext(&mut plaintext) {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(plaintext)
    }

    fn drain_plaintext(&mut self, plaintext: &mut Vec<u8>) -> Result<(), TlsError> {
        // read_to_end keeps what it read before an error: WouldBlock means "no more for now",
        // Ok means close_notify was received, UnexpectedEof cannot happen (read_tls is never
        // given an empty input, so rustls never sees EOF) but is the peer ending too.
        match self.conn.reader().read_to_end(plaintext) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
            Err(e) => Err(TlsError::Io(e.to_string())),
        }
    }

    /// Plaintext to send: queued (up to `MAX_PENDING` bytes) until the handshake completes, then
    /// encrypted. Fails after `close()`, after the peer closed, after a failure, or when the
    /// pre-handshake queue would exceed its limit (nothing of `plaintext` is queued then).
    pub fn write(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        if self.closed || self.peer_closed || self.failed {
            return Err(TlsError::Closed);
        }
        if self.conn.is_handshaking() {
            // Check before queueing anything, so that a refused write leaves no partial frame
            // (rustls would accept a prefix up to its limit).
            let queued = self.queued_early.saturating_add(plaintext.len());
            if queued > MAX_PENDING {
                return Err(TlsError::Backlog { queued, limit: MAX_PENDING });
            }
            self.queued_early = queued;
        }
        let mut rest = plaintext;
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest).map_err(|e| TlsError::Io(e.to_string()))?;
            if n == 0 {
                // rustls' buffer is at its limit. After the handshake, move its records out and go
                // on; before, it is the pre-handshake plaintext queue and that is the limit.
                if self.conn.is_handshaking() || !self.spill() {
                    return Err(TlsError::Backlog {
                        queued: MAX_PENDING + rest.len(),
                        limit: MAX_PENDING,
                    });
                }
                continue;
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Move rustls' outgoing records into `out`; true if anything moved.
    fn spill(&mut self) -> bool {
        let before = self.out.len();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.out.len() > before
    }

    /// Ciphertext waiting to go to the socket (handshake messages, records, alerts); empty if none.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        self.spill();
        std::mem::take(&mut self.out)
    }

    /// True until the handshake has completed (for a client: until it has sent its Finished; a
    /// server may still refuse its certificate afterwards, which the next `feed` reports).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The peer sent close_notify: no more plaintext will come; close the connection once
    /// `take_outgoing()` has been sent.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Sends close_notify (via `take_outgoing()`); later `write`s fail.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.conn.send_close_notify();
        }
    }
}
