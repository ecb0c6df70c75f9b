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
    let bytes = query("static.gslb.test.", RecordType::A).to_vec().unwrap();
    for _ in 0..n {
        sock.send_to(&bytes, server).unwrap();
    }
    let (mut full, mut tc) = (0, 0);
    let mut buf = [0u8; 1232];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let r = Message::from_vec(&buf[..len]).unwrap();
        if r.metadata.truncation {
            assert!(r.answers.is_empty(), "a slip carries no records");
            tc += 1;
        } else {
            assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
            full += 1;
        }
    }
    (full, tc)
}

#[test]
fn a_flooding_network_is_limited_and_others_are_not() {
    let config = CONFIG.replacen(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\"]\nrate_limit = { responses_per_second = 20, slip = 2 }",
        1,
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    let s = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
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
