//! TLS between nodes (`luact.start{ tls = { cert, key, ca } }`): this node's identity for its
//! node links, loaded once at start and shared by every thread. It owns what makes a node link
//! mutual TLS: the server side of the node listener (a client certificate signed by `ca` is
//! required), the client side of every dial (the peer's certificate must be signed by `ca` and
//! name the IP address dialed), and the checks at start that this node's own certificate would
//! pass both at its peers (so a wrong file is an error at `luact.start`, not a refusal later).
//! The sessions themselves are `tls.rs`'s; `conn.rs` runs them on the socket. The HMAC handshake
//! (`wire::handshake`, the cluster secret) still runs inside the TLS session, unchanged.
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

use crate::tls::{self, ClientTls, ServerTls, TlsError, TlsSession};

/// The node link TLS of this process.
pub struct NodeTls {
    server: Arc<ServerTls>,
    client: ClientTls,
}

impl NodeTls {
    /// Loads `cert` (PEM chain, leaf first), `key` and `ca` (PEM bundle of the cluster's CA) for
    /// the node at `addr` ("ip:port"), and checks that the certificate is signed by `ca`, may
    /// serve as both a TLS server and a TLS client (no extendedKeyUsage, or both serverAuth and
    /// clientAuth) and names the node's IP (a subjectAltName IP entry): its peers check all of that.
    /// `addr` "" is a node client (it dials and never listens): its certificate need only be
    /// signed by `ca` and allow clientAuth (an acceptor checks no name of the dialer).
    pub fn load(cert: &str, key: &str, ca: &str, addr: &str) -> Result<NodeTls, TlsError> {
        let server = ServerTls::from_files(cert, key, Some(ca))?;
        let client = ClientTls::from_files(ca, Some((cert, key)))?;
        let ip: Option<IpAddr> = if addr.is_empty() {
            None
        } else {
            let ip = addr
                .rsplit_once(':')
                .and_then(|(ip, _)| ip.parse().ok())
                .ok_or_else(|| TlsError::Config(format!("the node address {addr:?} is not ip:port")))?;
            Some(ip)
        };
        check_own(cert, ca, ip)?;
        Ok(NodeTls { server: Arc::new(server), client })
    }

    /// The server side of the node listener (every accepted connection gets a session of it).
    pub fn server(&self) -> Arc<ServerTls> {
        self.server.clone()
    }

    /// A session for a dial to the node at `ip`, whose certificate must name that IP.
    pub fn dial(&self, ip: std::net::Ipv4Addr) -> Result<TlsSession, TlsError> {
        self.client.session(&ip.to_string())
    }
}

/// What a peer will check of our certificate, checked here first (`ip`: the node's; None for a
/// node client, which is never dialed).
fn check_own(cert: &str, ca: &str, ip: Option<IpAddr>) -> Result<(), TlsError> {
    let certs = tls::load_certs(cert)?;
    let roots = Arc::new(tls::load_roots(ca)?);
    let (leaf, chain) = certs.split_first().ok_or_else(|| TlsError::Config(format!("{cert}: no certificate")))?;
    let now = UnixTime::now();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if let Some(ip) = ip {
        let as_server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(format!("{ca}: {e}")))?;
        let name = ServerName::IpAddress(ip.into());
        as_server.verify_server_cert(leaf, chain, &name, &[], now).map_err(|e| TlsError::Config(format!(
            "{cert} would be refused by the nodes that dial this one ({e}): it must be signed by {ca}, name this node's IP {ip} as a subjectAltName (IP:{ip}) and allow serverAuth"
        )))?;
    }
    let as_client = WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| TlsError::Config(format!("{ca}: {e}")))?;
    as_client.verify_client_cert(leaf, chain, now).map_err(|e| TlsError::Config(format!(
        "{cert} would be refused by the nodes this one dials ({e}): it must be signed by {ca} and allow clientAuth"
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_its_peers_would_refuse_is_an_error_at_load() {
        let dir = std::env::temp_dir().join(format!("luact-node-tls-{}", std::process::id()));
        let c = tls::write_test_certs(&dir).expect("certs");
        // the test server certificate names 127.0.0.1 but allows serverAuth only
        let e = NodeTls::load(&c.server_cert, &c.server_key, &c.ca, "127.0.0.1:7000").err().expect("refused").to_string();
        assert!(e.contains("would be refused by the nodes this one dials") && e.contains("clientAuth"), "{e}");
        // another IP than the one it names
        let e = NodeTls::load(&c.server_cert, &c.server_key, &c.ca, "127.0.0.2:7000").err().expect("refused").to_string();
        assert!(e.contains("would be refused by the nodes that dial this one") && e.contains("IP:127.0.0.2"), "{e}");
        // another CA's certificate (refused for its usage first, here)
        let e = NodeTls::load(&c.other_client_cert, &c.other_client_key, &c.ca, "127.0.0.1:7000").err().expect("refused").to_string();
        assert!(e.contains("would be refused by the nodes that dial this one"), "{e}");
        assert!(NodeTls::load(&c.server_cert, &c.server_key, &c.ca, "not an address").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
