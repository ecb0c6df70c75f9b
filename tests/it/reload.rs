//! Reload and stop: SIGHUP re-reads config and zones while queries keep flowing (not
//! one may be lost or answered from a half-built state), a broken config is refused while
//! the last good one keeps serving, SIGTERM stops within 5 s even with TCP clients
//! connected, and the sampled query log.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::{CONFIG, server, zone_text};

const EU: &str = r#"regions = ["eu-west", "us-east"]"#;
const US: &str = r#"regions = ["us-east", "eu-west"]"#;

#[test]
fn twenty_reloads_under_continuous_queries_lose_nothing() {
    let mut s = server();
    let config = s.dep.config();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, lost, bad) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (stop, sent, lost, bad, addr) =
            (stop.clone(), sent.clone(), lost.clone(), bad.clone(), s.udp);
        clients.push(std::thread::spawn(move || {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut buf = [0u8; 1232];
            while !stop.load(Relaxed) {
                let m = query("www.gslb.test.", RecordType::A);
                sock.send_to(&m.to_vec().unwrap(), addr).unwrap();
                sent.fetch_add(1, Relaxed);
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        let r = Message::from_vec(&buf[..n]).unwrap();
                        let got = dns::answer_data(&r, RecordType::A);
                        // Old config (eu-west first) or new (us-east first): nothing else.
                        let ok = r.metadata.id == m.metadata.id
                            && r.metadata.response_code == ResponseCode::NoError
                            && (got == ["192.0.2.20", "192.0.2.21"] || got == ["192.0.2.10"]);
                        if !ok {
                            bad.fetch_add(1, Relaxed);
                        }
                    }
                    Err(_) => {
                        lost.fetch_add(1, Relaxed);
                    }
                }
            }
        }));
    }
    for i in 0..20 {
        let text = if i % 2 == 0 {
            CONFIG.replacen(EU, US, 1)
        } else {
            CONFIG.to_string()
        };
        std::fs::write(&config, text).unwrap();
        assert!(
            s.server
                .signal_and_wait("HUP", Duration::from_millis(50))
                .is_none(),
            "HUP must not stop it"
        );
        // Wait for this reload to be logged before the next one.
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.log().matches("reloaded ").count() < i + 1 {
            assert!(
                Instant::now() < deadline,
                "reload {i} not logged:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (sent, lost, bad) = (sent.load(Relaxed), lost.load(Relaxed), bad.load(Relaxed));
    assert!(sent > 200, "only {sent} queries sent");
    eprintln!("20 reloads under load: {sent} queries, {lost} lost, {bad} wrong");
    assert_eq!(
        (lost, bad),
        (0, 0),
        "{sent} queries: {lost} lost, {bad} wrong"
    );
    // The last reload (i = 19) restored the original order.
    let r = dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
    assert_eq!(
        dns::answer_data(&r, RecordType::A),
        ["192.0.2.20", "192.0.2.21"]
    );
}

#[test]
fn a_broken_reload_keeps_the_last_good_config() {
    let mut s = server();
    std::fs::write(
        s.dep.config(),
        CONFIG.replacen(EU, r#"regions = ["nowhere"]"#, 1),
    )
    .unwrap();
    std::fs::write(
        s.dep.dir.path().join("zones/gslb.test.zone"),
        zone_text().replace("static   IN A   192.0.2.1", "static IN A 1.2.3.4"),
    )
    .unwrap();
    reload_and_wait(&mut s, "reload failed");
    assert!(
        s.wait_log("region \"nowhere\" is not defined", Duration::from_secs(2)),
        "{}",
        s.log()
    );
    // Old zone data, old config.
    let r = dns::udp(s.udp, &query("static.gslb.test.", RecordType::A));
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    let r = dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
    assert_eq!(
        dns::answer_data(&r, RecordType::A),
        ["192.0.2.20", "192.0.2.21"]
    );
}

#[test]
fn sigterm_stops_within_five_seconds_with_tcp_clients_connected() {
    let mut s = server();
    // An idle connection and one in the middle of sending a query.
    let idle = std::net::TcpStream::connect(s.tcp).unwrap();
    let mut half = std::net::TcpStream::connect(s.tcp).unwrap();
    half.write_all(&[0, 40, 1, 2]).unwrap();
    let r = dns::tcp(s.tcp, &query("static.gslb.test.", RecordType::A));
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    let start = Instant::now();
    let status = s
        .server
        .signal_and_wait("TERM", Duration::from_secs(5))
        .expect("stopped within 5 s");
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop((idle, half));
}

#[test]
fn query_log_is_off_by_default_and_sampled_when_on() {
    let s = server();
    dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
    assert!(!s.log().contains("gslbd::query"), "off by default");
    let mut s = server();
    std::fs::write(
        s.dep.config(),
        CONFIG.replacen(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"127.0.0.1:0\"]\nquery_log = { sample = 1.0 }",
            1,
        ),
    )
    .unwrap();
    reload_and_wait(&mut s, "reloaded ");
    dns::udp(
        s.udp,
        &dns::with_ecs(query("www.gslb.test.", RecordType::A), "81.2.69.0/24"),
    );
    assert!(
        s.wait_log("gslbd::query", Duration::from_secs(2)),
        "{}",
        s.log()
    );
    let line = s
        .log()
        .lines()
        .find(|l| l.contains("gslbd::query"))
        .unwrap()
        .to_string();
    for want in [
        "ecs=81.2.69.0/24",
        "name=www.gslb.test.",
        "qtype=A",
        "rcode=NOERROR",
        "region=eu-west",
        "192.0.2.2",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
}

/// Sends SIGHUP (which must not stop the server) and waits for `logged` in its log.
fn reload_and_wait(s: &mut crate::Fixture, logged: &str) {
    let still_running = s
        .server
        .signal_and_wait("HUP", Duration::from_millis(300))
        .is_none();
    assert!(still_running, "SIGHUP stopped the server");
    assert!(
        s.wait_log(logged, Duration::from_secs(5)),
        "{logged:?} not logged:\n{}",
        s.log()
    );
}
