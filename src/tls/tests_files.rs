//! Tests of the parent module: certificate and key files that cannot be used are clear errors.
use super::tests::{certs, TempDir};
use super::*;

/// Certificates, and beside them files that are not what they should be: empty, junk, an
/// unterminated PEM block, a PEM block that is not a certificate.
fn bad_files(tag: &str) -> (TempDir, TestCerts) {
    let (d, c) = certs(tag);
    let dir = d.path();
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    std::fs::write(
        dir.join("junk.pem"),
        "hello\n-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.join("open.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    std::fs::write(
        dir.join("notcert.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    (d, c)
}

/// Each case is an error starting with "tls: " and naming what it says is wrong.
fn assert_errors<T>(cases: Vec<(Result<T, TlsError>, &str)>, what: &str) {
    for (i, (r, want)) in cases.into_iter().enumerate() {
        let e = r.err().unwrap_or_else(|| panic!("{what} case {i} accepted"));
        let s = e.to_string();
        assert!(
            s.starts_with("tls: ") && s.contains(want),
            "{what} case {i}: {s:?} lacks {want:?}"
        );
    }
}

#[test]
fn bad_server_files_are_errors() {
    let (d, c) = bad_files("server_files");
    let dir = d.path();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let missing = p("missing.pem");
    let cases: Vec<(Result<ServerTls, TlsError>, &str)> = vec![
        (
            ServerTls::from_files(&missing, &c.server_key, None),
            "missing.pem",
        ),
        (
            ServerTls::from_files(&c.server_cert, &missing, None),
            "missing.pem",
        ),
        (
            ServerTls::from_files(&p("empty.pem"), &c.server_key, None),
            "no certificate",
        ),
        (
            ServerTls::from_files(&c.server_cert, &p("empty.pem"), None),
            "no private key",
        ),
        (
            ServerTls::from_files(&c.server_cert, &c.server_cert, None),
            "no private key",
        ),
        (
            ServerTls::from_files(&p("junk.pem"), &c.server_key, None),
            "junk.pem",
        ),
        (
            ServerTls::from_files(&p("open.pem"), &c.server_key, None),
            "open.pem",
        ),
        (
            ServerTls::from_files(&c.server_cert, &c.client_key, None),
            "server.pem",
        ),
        (
            ServerTls::from_files(&c.server_cert, &c.server_key, Some(&missing)),
            "missing.pem",
        ),
        (
            ServerTls::from_files(&c.server_cert, &c.server_key, Some(&p("empty.pem"))),
            "no certificate",
        ),
        (
            ServerTls::from_files(&c.server_cert, &c.server_key, Some(&p("notcert.pem"))),
            "notcert.pem",
        ),
        (
            ServerTls::from_files(dir.to_str().unwrap(), &c.server_key, None),
            "cannot read",
        ),
    ];
    assert_errors(cases, "server");
}

#[test]
fn bad_client_files_are_errors() {
    let (d, c) = bad_files("client_files");
    let p = |name: &str| d.path().join(name).to_str().unwrap().to_string();
    let missing = p("missing.pem");
    let cases: Vec<(Result<ClientTls, TlsError>, &str)> = vec![
        (ClientTls::from_files(&missing, None), "missing.pem"),
        (
            ClientTls::from_files(&p("empty.pem"), None),
            "no certificate",
        ),
        (
            ClientTls::from_files(&c.ca, Some((&c.client_cert, &missing))),
            "missing.pem",
        ),
        (
            ClientTls::from_files(&c.ca, Some((&c.client_cert, &c.server_key))),
            "client.pem",
        ),
        (
            ClientTls::from_files(&c.ca, Some((&c.client_key, &c.client_key))),
            "no certificate",
        ),
    ];
    assert_errors(cases, "client");
}
