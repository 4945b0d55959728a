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
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};

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

/// rustls' text of a failure, without a Rust type in it: rustls prints a certificate check that
/// failed for a cause of its own as `invalid peer certificate: Other(OtherError(..))`; that
/// becomes the cause's words. (Other causes keep rustls' names, e.g. `UnknownIssuer`.)
fn protocol_text(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
            format!("invalid peer certificate: {o}")
        }
        e => e.to_string(),
    }
}

#[cfg(test)]
mod protocol_text_tests {
    use super::*;

    #[test]
    fn names_no_rust_types() {
        let other = rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(std::io::Error::other("the CA was used as an end entity")),
        )));
        assert_eq!(rustls::Error::to_string(&other), "invalid peer certificate: Other(OtherError(Custom { kind: Other, error: \"the CA was used as an end entity\" }))");
        assert_eq!(protocol_text(&other), "invalid peer certificate: the CA was used as an end entity");
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { path, reason } => write!(f, "tls: cannot read {path}: {reason}"),
            TlsError::Pem { path, reason } => write!(f, "tls: {path}: {reason}"),
            TlsError::Config(reason) => write!(f, "tls: bad configuration: {reason}"),
            TlsError::ServerName(name) => {
                write!(
                    f,
                    "tls: invalid server name {name:?} (want a DNS name or an IP address)"
                )
            }
            TlsError::Protocol(e) => match hint(e) {
                Some(h) => write!(f, "tls: {} ({h})", protocol_text(e)),
                None => write!(f, "tls: {}", protocol_text(e)),
            },
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

impl TlsError {
    /// The peer's first bytes were not a TLS record: it does not speak TLS at all.
    pub fn peer_not_tls(&self) -> bool {
        matches!(self, TlsError::Protocol(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)))
    }
}

/// What a protocol failure most likely means, for the log line (rustls' words stay first).
fn hint(e: &rustls::Error) -> Option<&'static str> {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => Some("the peer does not speak TLS"),
        rustls::Error::AlertReceived(A::UnknownCA | A::BadCertificate | A::CertificateUnknown | A::CertificateRequired | A::AccessDenied | A::CertificateExpired | A::UnsupportedCertificate) => {
            Some("the peer refused our certificate")
        }
        rustls::Error::AlertReceived(A::BadRecordMac | A::DecryptError) => Some("the peer could not authenticate what we sent: altered on the way?"),
        rustls::Error::DecryptError => Some("a record failed its integrity check: altered on the way?"),
        _ => None,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem_file(path: &str) -> Result<Vec<u8>, TlsError> {
    let file_err = |reason: String| TlsError::File {
        path: path.to_string(),
        reason,
    };
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

pub(crate) fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_string(),
            reason: format!("bad PEM: {e}"),
        })?;
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

pub(crate) fn load_roots(path: &str) -> Result<RootCertStore, TlsError> {
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
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Config(format!("{ca}: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(format!("{cert_path} / {key_path}: {e}")))?;
        Ok(ServerTls {
            config: Arc::new(config),
        })
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
    pub fn from_files(
        ca_path: &str,
        cert_key: Option<(&str, &str)>,
    ) -> Result<ClientTls, TlsError> {
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
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsError::Config(format!("{cert_path} / {key_path}: {e}")))?
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
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
    #[allow(dead_code)] // the transport uses feed_into; the tests read plaintext this way
    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, TlsError> {
        let mut plaintext = Vec::new();
        self.feed_into(ciphertext, &mut plaintext)?;
        Ok(plaintext)
    }

    /// `feed`, appending the plaintext to `plaintext` (no buffer of its own: the transport's
    /// input buffer); returns how many bytes it appended. After an error what was appended
    /// before it is still there (the caller closes the connection and drops it).
    pub fn feed_into(&mut self, ciphertext: &[u8], plaintext: &mut Vec<u8>) -> Result<usize, TlsError> {
        if self.failed {
            return Err(TlsError::Closed);
        }
        let before = plaintext.len();
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
            if let Err(e) = self.drain_plaintext(plaintext) {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(plaintext.len() - before)
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
                return Err(TlsError::Backlog {
                    queued,
                    limit: MAX_PENDING,
                });
            }
            self.queued_early = queued;
        }
        let mut rest = plaintext;
        while !rest.is_empty() {
            let n = self
                .conn
                .writer()
                .write(rest)
                .map_err(|e| TlsError::Io(e.to_string()))?;
            if n == 0 {
                // rustls' outgoing-record buffer is at its limit (its pre-handshake plaintext queue
                // cannot be: `queued_early` keeps below it): move the records out and go on. This
                // also covers a TLS 1.3 server's half-RTT data, encrypted while still handshaking.
                if !self.spill() {
                    return Err(TlsError::Backlog {
                        queued: MAX_PENDING + rest.len(),
                        limit: MAX_PENDING,
                    });
                }
                continue;
            }
            rest = rest.get(n..).unwrap_or_default();
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

    /// `take_outgoing`, appended to `out` (a send buffer whose capacity is reused: one
    /// allocation less per write on a busy connection).
    pub fn take_outgoing_into(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
        while self.conn.wants_write() {
            match self.conn.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// True until the handshake has completed (for a client: until it has sent its Finished; a
    /// server may still refuse its certificate afterwards, which the next `feed` reports).
    #[allow(dead_code)] // for metrics and tests; the transport does not need it
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

/// Paths (as strings, ready for `from_files`) of the PEM files written by `write_test_certs`.
#[cfg(test)]
pub struct TestCerts {
    /// The CA that signed `server_cert` and `client_cert`.
    pub ca: String,
    /// Server certificate for IP 127.0.0.1 (only), signed by `ca`.
    pub server_cert: String,
    pub server_key: String,
    /// Client certificate signed by `ca`.
    pub client_cert: String,
    pub client_key: String,
    /// A second CA, unrelated to the first.
    pub other_ca: String,
    /// Client certificate signed by `other_ca`.
    pub other_client_cert: String,
    pub other_client_key: String,
}

/// Generate a CA, a server certificate for IP 127.0.0.1 and a client certificate signed by it,
/// and a second unrelated CA with a client certificate of its own, as PEM files in `dir`.
#[cfg(test)]
pub fn write_test_certs(dir: &std::path::Path) -> io::Result<TestCerts> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let bad = |e: rcgen::Error| io::Error::other(e.to_string());
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, pem: &str| -> io::Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, pem)?;
        path.to_str()
            .map(str::to_string)
            .ok_or_else(|| io::Error::other("temporary path is not UTF-8"))
    };
    let make_ca = |cn: &str| -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok((params.self_signed(&key)?, key))
    };
    let make_leaf = |sans: Vec<String>,
                     cn: &str,
                     eku: ExtendedKeyUsagePurpose,
                     ca: &rcgen::Certificate,
                     ca_key: &KeyPair|
     -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        Ok((params.signed_by(&key, ca, ca_key)?, key))
    };
    let (ca, ca_key) = make_ca("luact test CA").map_err(bad)?;
    let (other_ca, other_ca_key) = make_ca("luact unrelated CA").map_err(bad)?;
    let (server, server_key) = make_leaf(
        vec!["127.0.0.1".to_string()],
        "127.0.0.1",
        ExtendedKeyUsagePurpose::ServerAuth,
        &ca,
        &ca_key,
    )
    .map_err(bad)?;
    let (client, client_key) = make_leaf(
        vec![],
        "luact test client",
        ExtendedKeyUsagePurpose::ClientAuth,
        &ca,
        &ca_key,
    )
    .map_err(bad)?;
    let (other_client, other_client_key) = make_leaf(
        vec![],
        "luact rogue client",
        ExtendedKeyUsagePurpose::ClientAuth,
        &other_ca,
        &other_ca_key,
    )
    .map_err(bad)?;
    Ok(TestCerts {
        ca: write("ca.pem", &ca.pem())?,
        server_cert: write("server.pem", &server.pem())?,
        server_key: write("server.key", &server_key.serialize_pem())?,
        client_cert: write("client.pem", &client.pem())?,
        client_key: write("client.key", &client_key.serialize_pem())?,
        other_ca: write("other-ca.pem", &other_ca.pem())?,
        other_client_cert: write("other-client.pem", &other_client.pem())?,
        other_client_key: write("other-client.key", &other_client_key.serialize_pem())?,
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_files;
