//! What an HTTPS probe says when it refuses a certificate: which problem (unknown
//! issuer, expired, name mismatch) and that `insecure = true` accepts any, instead of
//! reqwest's "error sending request ... client error (Connect)".
//!
//! gslbd verifies against the system's roots, which `SSL_CERT_FILE` replaces: trusting
//! the fixture certificate that way gets the handshake past the issuer to the other
//! checks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gslbd::sim::FakeRegion;

use crate::ZONE;
use crate::harness::{Deployment, gslbd_bin};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

/// Serves a deployment whose one region is probed at `url`, trusting only `trust` (a
/// PEM file) when given; returns the log line of the first probe round's verdict: the
/// target's transition to down, or the round's summary when it stayed up.
fn first_verdict(url: &str, trust: Option<&str>) -> String {
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
[regions.eu-west]
addresses = ["192.0.2.20"]
probe = {{ url = "{url}", interval = "5s", timeout = "2s" }}
[records."www.gslb.test"]
policy = "failover"
"#
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", ZONE)]);
    let mut cmd = Command::new(gslbd_bin());
    cmd.args(["serve", "--config"])
        .arg(dep.config())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match trust {
        Some(file) => cmd.env("SSL_CERT_FILE", Path::new(FIXTURES).join(file)),
        None => cmd.env_remove("SSL_CERT_FILE"),
    };
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let verdict = loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line)
                if line.contains("probe target down") || line.contains("first probe round") =>
            {
                break line;
            }
            Ok(line) => seen.push(line),
            Err(_) => break format!("no verdict; log:\n{}", seen.join("\n")),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    verdict
}

const INSECURE: &str = "`insecure = true` in this probe accepts any certificate";

#[test]
fn a_self_signed_certificate_is_an_unknown_issuer() {
    let region = FakeRegion::start_tls().unwrap();
    let line = first_verdict(&region.url(), None);
    assert!(
        line.contains("reason=error: TLS certificate refused: unknown issuer: self-signed"),
        "{line}"
    );
    assert!(line.contains(INSECURE), "{line}");
    assert!(!line.contains("client error (Connect)"), "{line}");
}

#[test]
fn a_certificate_for_other_names_is_a_name_mismatch() {
    // Trusted, and valid for 127.0.0.1: the probe is up (so the trust works)...
    let region = FakeRegion::start_tls().unwrap();
    let line = first_verdict(&region.url(), Some("cert.pem"));
    assert!(line.contains("first probe round: 1 of 1"), "{line}");
    // ... but not for 127.0.0.2.
    let region = FakeRegion::start_tls_on("127.0.0.2:0".parse().unwrap()).unwrap();
    let line = first_verdict(&region.url(), Some("cert.pem"));
    assert!(
        line.contains(
            "TLS certificate refused: name mismatch: certificate not valid for name \"127.0.0.2\""
        ),
        "{line}"
    );
    assert!(line.contains(INSECURE), "{line}");
}

#[test]
fn an_expired_certificate_says_when_it_expired() {
    let region = FakeRegion::start_tls_with(
        "127.0.0.1:0".parse().unwrap(),
        &fixture("expired.pem"),
        &fixture("key.pem"),
    )
    .unwrap();
    let line = first_verdict(&region.url(), Some("expired.pem"));
    assert!(
        line.contains("TLS certificate refused: expired on 2001-01-01T00:00:00Z"),
        "{line}"
    );
    assert!(line.contains(INSECURE), "{line}");
}
