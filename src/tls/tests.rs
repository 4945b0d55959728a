//! Tests of the parent module.
use super::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);
impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "luact-tls-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn certs(tag: &str) -> (TempDir, TestCerts) {
    let dir = TempDir::new(tag);
    let certs = write_test_certs(dir.path()).expect("write_test_certs");
    (dir, certs)
}

use crate::test_rng::Rng;

/// What one side received.
#[derive(Default)]
struct Side {
    got: Vec<u8>,
    err: Option<TlsError>,
}

/// A client and a server session joined in memory; bytes are delivered in odd-sized chunks.
struct Link {
    client: TlsSession,
    server: TlsSession,
    c: Side,
    s: Side,
    chunks: &'static [usize],
    k: usize,
}

const ODD: &[usize] = &[1, 3, 7, 13, 101, 1021, 4093, 5, 16411, 65537, 2];
const WHOLE: &[usize] = &[usize::MAX];

impl Link {
    fn new(client: TlsSession, server: TlsSession) -> Link {
        Link {
            client,
            server,
            c: Side::default(),
            s: Side::default(),
            chunks: WHOLE,
            k: 0,
        }
    }

    fn deliver(
        to: &mut TlsSession,
        side: &mut Side,
        bytes: &[u8],
        chunks: &[usize],
        k: &mut usize,
    ) {
        let mut rest = bytes;
        while !rest.is_empty() && side.err.is_none() {
            let n = chunks[*k % chunks.len()].min(rest.len());
            *k += 1;
            match to.feed(&rest[..n]) {
                Ok(p) => side.got.extend_from_slice(&p),
                Err(e) => side.err = Some(e),
            }
            rest = &rest[n..];
        }
    }

    /// Move bytes both ways until neither side has anything to send.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            let to_server = self.client.take_outgoing();
            let to_client = self.server.take_outgoing();
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
            Self::deliver(
                &mut self.server,
                &mut self.s,
                &to_server,
                self.chunks,
                &mut self.k,
            );
            Self::deliver(
                &mut self.client,
                &mut self.c,
                &to_client,
                self.chunks,
                &mut self.k,
            );
        }
        panic!("pump did not settle");
    }

    fn assert_ok(&self) {
        assert!(
            self.c.err.is_none(),
            "client error: {}",
            self.c.err.as_ref().unwrap()
        );
        assert!(
            self.s.err.is_none(),
            "server error: {}",
            self.s.err.as_ref().unwrap()
        );
    }
}

fn link(server: &ServerTls, client: &ClientTls, name: &str) -> Link {
    let mut l = Link::new(client.session(name).unwrap(), server.session().unwrap());
    l.pump();
    l
}

fn connected(server: &ServerTls, client: &ClientTls, name: &str) -> Link {
    let l = link(server, client, name);
    l.assert_ok();
    assert!(!l.client.is_handshaking() && !l.server.is_handshaking());
    l
}

#[test]
fn handshake_and_plaintext_both_ways() {
    let (_d, c) = certs("basic");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = connected(&server, &client, "127.0.0.1");
    l.client.write(b"ping").unwrap();
    l.pump();
    assert_eq!(l.s.got, b"ping");
    l.server.write(b"pong").unwrap();
    l.server.write(b"!").unwrap();
    l.pump();
    assert_eq!(l.c.got, b"pong!");
    l.client.write(b"").unwrap();
    assert!(
        l.client.take_outgoing().is_empty(),
        "an empty write sends nothing"
    );
    l.assert_ok();
}

#[test]
fn writes_before_the_handshake_are_queued() {
    let (_d, c) = certs("early");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = Link::new(
        client.session("127.0.0.1").unwrap(),
        server.session().unwrap(),
    );
    l.client.write(b"hello ").unwrap();
    l.server.write(b"welcome").unwrap();
    assert!(l.client.is_handshaking());
    l.client.write(b"world").unwrap();
    l.pump();
    l.assert_ok();
    assert_eq!(l.s.got, b"hello world");
    assert_eq!(l.c.got, b"welcome");
}

#[test]
fn one_mib_both_ways_in_odd_chunks() {
    let (_d, c) = certs("big");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = Link::new(
        client.session("127.0.0.1").unwrap(),
        server.session().unwrap(),
    );
    l.chunks = ODD;
    l.pump();
    l.assert_ok();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let up = rng.bytes(1 << 20);
    let down = rng.bytes((1 << 20) + 17);
    l.client.write(&up).unwrap();
    l.server.write(&down).unwrap();
    l.pump();
    l.assert_ok();
    assert!(
        l.s.got == up,
        "server got {} bytes, not the 1 MiB sent",
        l.s.got.len()
    );
    assert!(l.c.got == down, "client got {} bytes", l.c.got.len());
    // Many small writes interleaved with partial delivery.
    l.s.got.clear();
    let mut expect = Vec::new();
    for i in 0..500usize {
        let msg = rng.bytes(i * 7 % 3001);
        l.client.write(&msg).unwrap();
        expect.extend_from_slice(&msg);
        if i % 37 == 0 {
            l.pump();
        }
    }
    l.pump();
    l.assert_ok();
    assert!(l.s.got == expect);
}

#[test]
fn feed_returns_no_more_plaintext_than_ciphertext() {
    let (_d, c) = certs("bound");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = connected(&server, &client, "127.0.0.1");
    let msg = vec![0xabu8; 300_000];
    l.client.write(&msg).unwrap();
    let wire = l.client.take_outgoing();
    let mut total = 0;
    for piece in wire.chunks(777) {
        let p = l.server.feed(piece).unwrap();
        assert!(
            p.len() <= piece.len() + 16 * 1024,
            "{} plaintext bytes from {}",
            p.len(),
            piece.len()
        );
        total += p.len();
    }
    assert_eq!(total, msg.len());
    let all = {
        l.client.write(&msg).unwrap();
        l.client.take_outgoing()
    };
    let p = l.server.feed(&all).unwrap();
    assert!(p.len() <= all.len());
    assert_eq!(p.len(), msg.len());
}

#[test]
fn a_tls12_peer_works_too() {
    let (_d, c) = certs("tls12");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, Some(&c.ca)).unwrap();
    let roots = load_roots(&c.ca).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            load_certs(&c.client_cert).unwrap(),
            load_key(&c.client_key).unwrap(),
        )
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut l = Link::new(
        TlsSession::new(Connection::Client(conn)),
        server.session().unwrap(),
    );
    l.chunks = ODD;
    l.client.write(b"early").unwrap();
    l.pump();
    l.assert_ok();
    assert_eq!(
        l.server.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i * 31) as u8).collect();
    l.server.write(&msg).unwrap();
    l.pump();
    assert_eq!(l.s.got, b"early");
    assert!(l.c.got == msg);
}

#[test]
fn a_server_writing_during_the_handshake_is_not_cut() {
    // A TLS 1.3 server may encrypt (half-RTT) before the client's Finished arrives: records
    // plus handshake messages beyond rustls' buffer limit must spill, not fail half-way.
    let (_d, c) = certs("halfrtt");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut cs = client.session("127.0.0.1").unwrap();
    let mut ss = server.session().unwrap();
    assert!(ss.feed(&cs.take_outgoing()).unwrap().is_empty());
    assert!(ss.is_handshaking());
    let msg = vec![3u8; MAX_PENDING - 1000];
    ss.write(&msg).unwrap();
    assert!(matches!(
        ss.write(&[0u8; 1001]),
        Err(TlsError::Backlog { .. })
    ));
    let mut l = Link::new(cs, ss);
    l.pump();
    l.assert_ok();
    assert!(l.c.got == msg);
}

#[test]
fn mutual_tls_accepts_a_client_certificate_signed_by_the_ca() {
    let (_d, c) = certs("mtls");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, Some(&c.ca)).unwrap();
    let client = ClientTls::from_files(&c.ca, Some((&c.client_cert, &c.client_key))).unwrap();
    let mut l = connected(&server, &client, "127.0.0.1");
    l.client.write(b"authenticated").unwrap();
    l.server.write(b"yes").unwrap();
    l.pump();
    l.assert_ok();
    assert_eq!(l.s.got, b"authenticated");
    assert_eq!(l.c.got, b"yes");
}

/// The server refuses; the alert it sends makes the client fail too, and nothing the client
/// wrote reaches the server's plaintext.
fn assert_refused_by_server(l: &mut Link, want: &str) {
    let e = l.s.err.as_ref().expect("server must refuse").to_string();
    assert!(
        e.contains(want),
        "server error {e:?} should mention {want:?}"
    );
    assert!(l.s.got.is_empty());
    assert!(l.c.err.is_some(), "the client must learn of the refusal");
    assert!(l.server.write(b"x").is_err());
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let (_d, c) = certs("nocert");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, Some(&c.ca)).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = Link::new(
        client.session("127.0.0.1").unwrap(),
        server.session().unwrap(),
    );
    l.client.write(b"let me in").unwrap();
    l.pump();
    assert_refused_by_server(&mut l, "no certificates");
}

#[test]
fn mutual_tls_refuses_a_client_certificate_from_another_ca() {
    let (_d, c) = certs("rogue");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, Some(&c.ca)).unwrap();
    let client =
        ClientTls::from_files(&c.ca, Some((&c.other_client_cert, &c.other_client_key)))
            .unwrap();
    let mut l = Link::new(
        client.session("127.0.0.1").unwrap(),
        server.session().unwrap(),
    );
    l.client.write(b"let me in").unwrap();
    l.pump();
    assert_refused_by_server(&mut l, "UnknownIssuer");
}

/// The client refuses the server; the server hears the alert.
fn assert_refused_by_client(l: &Link, want: &str) {
    let e = l.c.err.as_ref().expect("client must refuse").to_string();
    assert!(
        e.contains(want),
        "client error {e:?} should mention {want:?}"
    );
    assert!(l.s.err.is_some(), "the server must get the client's alert");
    assert!(l.s.got.is_empty() && l.c.got.is_empty());
}

#[test]
fn a_client_trusting_another_ca_refuses_the_server() {
    let (_d, c) = certs("wrongca");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.other_ca, None).unwrap();
    let mut l = Link::new(
        client.session("127.0.0.1").unwrap(),
        server.session().unwrap(),
    );
    l.client.write(b"secret").unwrap();
    l.pump();
    assert_refused_by_client(&l, "UnknownIssuer");
}

#[test]
fn a_server_name_mismatch_is_refused() {
    let (_d, c) = certs("name");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    for name in ["127.0.0.2", "localhost", "node1.example", "::1"] {
        let mut l = Link::new(client.session(name).unwrap(), server.session().unwrap());
        l.client.write(b"secret").unwrap();
        l.pump();
        assert_refused_by_client(&l, "not valid for name");
    }
}

#[test]
fn invalid_server_names_are_errors() {
    let (_d, c) = certs("badname");
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    for name in ["", "not a name", "a..b", "-x-", "127.0.0.1:80", "\u{0}"] {
        match client.session(name) {
            Err(e @ TlsError::ServerName(_)) => assert!(e.to_string().starts_with("tls: ")),
            Err(e) => panic!("{name:?}: unexpected error {e}"),
            Ok(_) => panic!("{name:?} accepted as a server name"),
        }
    }
    client.session("::1").unwrap();
    client.session("localhost").unwrap();
}

#[test]
fn a_truncated_stream_just_waits() {
    let (_d, c) = certs("trunc");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    // A ClientHello cut short: no reply, no error, still handshaking.
    let mut cs = client.session("127.0.0.1").unwrap();
    let mut ss = server.session().unwrap();
    let hello = cs.take_outgoing();
    assert!(hello.len() > 10);
    let (a, b) = hello.split_at(hello.len() / 2);
    assert!(ss.feed(&a[..1]).unwrap().is_empty());
    assert!(ss.feed(&a[1..]).unwrap().is_empty());
    assert!(ss.take_outgoing().is_empty());
    assert!(ss.is_handshaking());
    assert!(ss.feed(b).unwrap().is_empty());
    assert!(
        !ss.take_outgoing().is_empty(),
        "the whole ClientHello gets a reply"
    );
    // An application record cut short: nothing until its last byte.
    let mut l = connected(&server, &client, "127.0.0.1");
    l.client.write(b"hello").unwrap();
    let rec = l.client.take_outgoing();
    let (head, last) = rec.split_at(rec.len() - 1);
    for b in head {
        assert!(l.server.feed(std::slice::from_ref(b)).unwrap().is_empty());
    }
    assert!(l.server.take_outgoing().is_empty());
    assert_eq!(l.server.feed(last).unwrap(), b"hello");
    assert!(l.server.feed(&[]).unwrap().is_empty());
}

#[test]
fn close_notify_ends_the_session() {
    let (_d, c) = certs("close");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = connected(&server, &client, "127.0.0.1");
    l.client.write(b"last words").unwrap();
    l.client.close();
    l.client.close();
    assert!(matches!(l.client.write(b"more"), Err(TlsError::Closed)));
    let wire = l.client.take_outgoing();
    assert!(!l.server.peer_closed());
    assert_eq!(l.server.feed(&wire).unwrap(), b"last words");
    assert!(l.server.peer_closed());
    assert!(matches!(l.server.write(b"reply"), Err(TlsError::Closed)));
    // Anything after close_notify is ignored, garbage included.
    assert!(l
        .server
        .feed(b"\x17\x03\x03\x00\x05trailing garbage")
        .unwrap()
        .is_empty());
}

#[test]
fn a_tampered_record_is_an_error_with_an_alert() {
    let (_d, c) = certs("tamper");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = connected(&server, &client, "127.0.0.1");
    l.client.write(b"pay 10 to alice").unwrap();
    let mut rec = l.client.take_outgoing();
    let i = rec.len() - 20;
    rec[i] ^= 0x01;
    let e = l.server.feed(&rec).unwrap_err();
    assert!(matches!(e, TlsError::Protocol(_)), "{e}");
    assert!(
        !l.server.take_outgoing().is_empty(),
        "an alert for the peer"
    );
    assert!(matches!(l.server.feed(b"x"), Err(TlsError::Closed)));
    assert!(l.server.write(b"x").is_err());
}

#[test]
fn garbage_never_panics() {
    let (_d, c) = certs("garbage");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let (mut errors, mut waits) = (0usize, 0usize);
    for round in 0..4000 {
        let established = round % 20 == 0;
        let mut ss = if established {
            connected(&server, &client, "127.0.0.1").server
        } else {
            server.session().unwrap()
        };
        let len = rng.below(700);
        let mut input = Vec::new();
        match rng.below(4) {
            // A plausible record header (handshake, alert, application data, change cipher
            // spec), then a plausible handshake header, then noise.
            0 => input.extend_from_slice(&[
                0x16,
                0x03,
                0x01,
                (len >> 8) as u8,
                len as u8,
                0x01,
                0,
                0,
            ]),
            1 => input.extend_from_slice(&[
                [0x15, 0x17, 0x14, 0x16][rng.below(4)],
                0x03,
                rng.below(5) as u8,
            ]),
            _ => {}
        }
        input.extend(rng.bytes(len));
        let first = input.first().copied();
        let mut result = Ok(());
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(300));
            match ss.feed(&rest[..n]) {
                Ok(p) => assert!(p.is_empty(), "garbage produced plaintext"),
                Err(e) => {
                    assert!(e.to_string().starts_with("tls: "));
                    result = Err(e);
                    break;
                }
            }
            rest = &rest[n..];
        }
        let _ = ss.take_outgoing();
        match result {
            Err(_) => errors += 1,
            Ok(()) => {
                waits += 1;
                if let Some(b) = first {
                    assert!(
                        (20..=24).contains(&b) || input.len() < 5,
                        "round {round}: content type {b} accepted"
                    );
                }
                if !established {
                    assert!(
                        ss.is_handshaking(),
                        "round {round}: garbage completed a handshake"
                    );
                }
            }
        }
    }
    eprintln!("garbage: {errors} errors, {waits} still waiting for more bytes");
    assert!(errors > 3000);
}

#[test]
fn backlog_before_the_handshake_and_large_writes_after() {
    let (_d, c) = certs("backlog");
    let server = ServerTls::from_files(&c.server_cert, &c.server_key, None).unwrap();
    let client = ClientTls::from_files(&c.ca, None).unwrap();
    let mut l = Link::new(
        client.session("127.0.0.1").unwrap(),
        server.session().unwrap(),
    );
    let big = vec![7u8; MAX_PENDING - 10];
    l.client.write(&big).unwrap();
    match l.client.write(&[1u8; 11]) {
        Err(e @ TlsError::Backlog { .. }) => assert!(e.to_string().contains("limit")),
        other => panic!("expected a backlog error, got {:?}", other.map(|_| ())),
    }
    l.client.write(&[1u8; 10]).unwrap();
    l.pump();
    l.assert_ok();
    assert_eq!(l.s.got.len(), MAX_PENDING);
    assert!(l.s.got[..MAX_PENDING - 10] == big[..] && l.s.got[MAX_PENDING - 10..] == [1u8; 10]);
    // After the handshake there is no limit here: rustls' buffer spills into ours.
    l.s.got.clear();
    let huge: Vec<u8> = (0..MAX_PENDING + (MAX_PENDING / 4))
        .map(|i| i as u8)
        .collect();
    l.client.write(&huge).unwrap();
    l.pump();
    l.assert_ok();
    assert!(l.s.got == huge);
}

/// The `sh` block of the header comment of mod.rs.
fn documented_openssl_commands() -> String {
    let src = include_str!("mod.rs");
    let mut lines = src.lines().skip_while(|l| l.trim() != "//! ```sh").skip(1);
    let mut script = String::new();
    for line in lines.by_ref() {
        if line.trim() == "//! ```" {
            return script;
        }
        script.push_str(line.strip_prefix("//! ").unwrap_or(""));
        script.push('\n');
    }
    panic!("no closing ``` after the sh block in the header");
}

fn run_sh(dir: &Path, script: &str) {
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "script failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openssl_cli_files_are_accepted() {
    // the script below runs `openssl` from PATH: without it this test fails (install.sh installs it)
    crate::test_tools::require_tool("openssl");
    let d = TempDir::new("openssl");
    let script = documented_openssl_commands();
    assert!(script.contains("openssl req -x509") && script.contains("IP:127.0.0.2"));
    run_sh(d.path(), &script);
    let f = |name: &str| d.path().join(name).to_str().unwrap().to_string();
    // Same keys in the other accepted encodings: SEC1 EC and PKCS#1 RSA (client).
    run_sh(
        d.path(),
        "openssl ec -in server.key -out server-sec1.key 2>/dev/null\n\
         openssl req -new -newkey rsa:2048 -nodes -subj '/CN=rsa client' -keyout rsa.key -out rsa.csr 2>/dev/null\n\
         openssl rsa -traditional -in rsa.key -out rsa-pkcs1.key 2>/dev/null\n\
         openssl x509 -req -in rsa.csr -CA ca.pem -CAkey ca.key -set_serial 4 -days 3650 -extfile client.ext -out rsa.pem 2>/dev/null\n",
    );
    let head = |name: &str| {
        std::fs::read_to_string(f(name))
            .unwrap()
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(head("server.key"), "-----BEGIN PRIVATE KEY-----");
    assert_eq!(head("server-sec1.key"), "-----BEGIN EC PRIVATE KEY-----");
    assert_eq!(head("rsa-pkcs1.key"), "-----BEGIN RSA PRIVATE KEY-----");

    let (_d2, rc) = certs("openssl-rcgen");
    for key in ["server.key", "server-sec1.key"] {
        let server =
            ServerTls::from_files(&f("server.pem"), &f(key), Some(&f("ca.pem"))).unwrap();
        for (cert, ckey) in [("client.pem", "client.key"), ("rsa.pem", "rsa-pkcs1.key")] {
            let client =
                ClientTls::from_files(&f("ca.pem"), Some((&f(cert), &f(ckey)))).unwrap();
            let mut l = connected(&server, &client, "127.0.0.2");
            l.client.write(b"over openssl certs").unwrap();
            l.pump();
            l.assert_ok();
            assert_eq!(l.s.got, b"over openssl certs");
            // The certificate is for 127.0.0.2 only.
            let l = link(&server, &client, "127.0.0.1");
            assert_refused_by_client(&l, "not valid for name");
        }
        // A client without a certificate, and one whose certificate comes from another CA.
        let client = ClientTls::from_files(&f("ca.pem"), None).unwrap();
        let mut l = link(&server, &client, "127.0.0.2");
        assert_refused_by_server(&mut l, "no certificates");
        let client =
            ClientTls::from_files(&f("ca.pem"), Some((&rc.client_cert, &rc.client_key)))
                .unwrap();
        let mut l = link(&server, &client, "127.0.0.2");
        // Both CAs are named "luact test CA": webpki finds the issuer by name, then the
        // signature fails (BadSignature rather than UnknownIssuer).
        assert_refused_by_server(&mut l, "invalid peer certificate");
    }
    // The openssl CA does not vouch for the rcgen server.
    let server = ServerTls::from_files(&rc.server_cert, &rc.server_key, None).unwrap();
    let client = ClientTls::from_files(&f("ca.pem"), None).unwrap();
    assert_refused_by_client(
        &link(&server, &client, "127.0.0.1"),
        "invalid peer certificate",
    );
}
