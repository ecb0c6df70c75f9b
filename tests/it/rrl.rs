//! Response rate limiting over real sockets: one client network flooding gets its rate,
//! every `slip`-th limited answer as TC=1, the rest dropped; other networks and TCP are
//! not limited; the metric counts it.

use std::net::UdpSocket;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd};
use crate::{CONFIG, zone_text};

/// Sends `n` queries at once from `from`, then collects replies until 300 ms of quiet:
/// (full answers, truncated replies).
fn flood(server: std::net::SocketAddr, from: &str, n: usize) -> (usize, usize) {
    let sock = UdpSocket::bind(from).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    dns::burst(&sock, server, "static.gslb.test.", n, |r| {
        assert_eq!(dns::answer_data(r, RecordType::A), ["192.0.2.1"]);
    })
}

/// The test deployment with `rate_limit = { LIMIT }`, started with the admin API.
fn limited(limit: &str) -> (Gslbd, Deployment) {
    let config = CONFIG.replacen(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"127.0.0.1:0\"]\nrate_limit = {{ {limit} }}"),
        1,
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    (
        Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]),
        dep,
    )
}

#[test]
fn a_flooding_network_is_limited_and_others_are_not() {
    let (s, _dep) = limited("responses_per_second = 20, slip = 2");
    let (full, tc) = flood(s.udp, "127.0.0.1:0", 300);
    // A burst of one second's worth (20), plus refills while the flood lasts.
    assert!((18..=40).contains(&full), "{full} full answers");
    let limited = 300 - full;
    // slip = 2: every other limited response is a TC=1 reply, the rest are dropped.
    let half = limited / 2;
    assert!(
        tc + 3 >= half && tc <= half + 3,
        "{tc} truncated of {limited} limited"
    );
    // Another /24 (127.0.1.0/24) is not affected, nor is TCP from the flooding network.
    let (other, other_tc) = flood(s.udp, "127.0.1.1:0", 10);
    assert_eq!((other, other_tc), (10, 0));
    for _ in 0..10 {
        let r = dns::tcp(s.tcp, &query("static.gslb.test.", RecordType::A));
        assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    }
    let metrics = crate::http::request(s.admin.unwrap(), "GET", "/metrics", &[]).body;
    let slip_line = format!("gslbd_rate_limited_total{{action=\"slip\"}} {tc}");
    assert!(metrics.contains(&slip_line), "{slip_line} not in metrics");
    assert!(metrics.contains("gslbd_rate_limited_total{action=\"drop\"}"));
}

#[test]
fn a_slip_never_exceeds_the_udp_limit() {
    // Found by fuzzing: a slip echoed every question, whatever the size, so a
    // rate-limited NOTIMP query with 17 long questions got a 700-byte TC=1 reply
    // without EDNS (512 bytes at most): amplification, the very thing RRL is for.
    let (s, _dep) = limited("responses_per_second = 1, slip = 1");
    // OPCODE 7 (unknown: NOTIMP echoes the questions), 17 questions of 41 bytes.
    let mut q = vec![0x12, 0x34, 0x38, 0x00, 0, 17, 0, 0, 0, 0, 0, 0];
    for i in 0..17u8 {
        q.push(35);
        q.extend(std::iter::repeat_n(b'a' + i, 35));
        q.extend([0, 0, 1, 0, 1]);
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for _ in 0..5 {
        sock.send_to(&q, s.udp).unwrap();
    }
    let mut buf = [0u8; 4096];
    let mut replies = 0;
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        assert!(len <= 512, "a {len}-byte reply to a query without EDNS");
        let r = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        replies += 1;
    }
    // One answer within the rate, then slips (slip = 1: every limited one).
    assert_eq!(replies, 5);
}
