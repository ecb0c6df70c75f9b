//! DNS over TCP per RFC 7766: connection limit, idle timeout, pipelining, and clients
//! that stall half-way through a message.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::Deployment;
use crate::{CONFIG, zone_text};

fn start_with(tcp: &str) -> crate::Fixture {
    let config = CONFIG.replacen(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"127.0.0.1:0\"]\ntcp = {tcp}"),
        1,
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    crate::Fixture {
        server: dep.start(),
        dep,
    }
}

/// True when the server closed the connection (EOF or reset) within `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1];
    matches!(c.read(&mut b), Ok(0) | Err(_)) && {
        // A timeout is also an Err: tell them apart.
        c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        !matches!(c.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

#[test]
fn connections_beyond_max_connections_are_closed_at_once() {
    let s = start_with("{ max_connections = 3 }");
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(s.tcp).unwrap()).collect();
    // Let the server accept them.
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = TcpStream::connect(s.tcp).unwrap();
    let start = Instant::now();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)),
        "4th connection kept open"
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    // The held ones still work.
    let mut first = held.into_iter().next().unwrap();
    first.set_read_timeout(Some(dns::TIMEOUT)).unwrap();
    let m = query("static.gslb.test.", RecordType::A);
    let bytes = m.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend(bytes);
    first.write_all(&framed).unwrap();
    let r = Message::from_vec(&dns::read_frame(&mut first).unwrap()).unwrap();
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    // Free a slot: new connections are served again.
    drop(first);
    std::thread::sleep(Duration::from_millis(100));
    let r = dns::tcp(s.tcp, &query("static.gslb.test.", RecordType::A));
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
}

#[test]
fn a_reload_applies_new_tcp_limits() {
    let s = start_with("{ max_connections = 1, idle_timeout = \"10s\" }");
    let _held = TcpStream::connect(s.tcp).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut refused = TcpStream::connect(s.tcp).unwrap();
    assert!(
        closed_within(&mut refused, Duration::from_secs(2)),
        "limit 1"
    );

    let config = std::fs::read_to_string(s.dep.config()).unwrap().replace(
        "tcp = { max_connections = 1, idle_timeout = \"10s\" }",
        "tcp = { max_connections = 2, idle_timeout = \"300ms\" }",
    );
    std::fs::write(s.dep.config(), config).unwrap();
    let mut server = s;
    assert!(
        server
            .server
            .signal_and_wait("HUP", Duration::from_millis(50))
            .is_none()
    );
    assert!(server.wait_log("reloaded ", Duration::from_secs(5)));
    // A second connection fits now, and the new idle timeout closes it.
    let mut second = TcpStream::connect(server.tcp).unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut second, Duration::from_secs(3)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2000),
        "closed after {took:?}: not the reloaded idle_timeout (or refused at once)"
    );
}

#[test]
fn idle_connections_are_closed_after_idle_timeout() {
    let s = start_with("{ idle_timeout = \"300ms\" }");
    let mut c = TcpStream::connect(s.tcp).unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(2)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn a_length_prefix_larger_than_the_data_is_cut_off() {
    let s = crate::server();
    let mut c = TcpStream::connect(s.tcp).unwrap();
    c.write_all(&[0x01, 0x00, 0xAB, 0xCD]).unwrap(); // 256 announced, 2 sent
    let start = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(4)));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn pipelined_queries_are_all_answered_with_their_ids() {
    let s = crate::server();
    let mut c = TcpStream::connect(s.tcp).unwrap();
    c.set_read_timeout(Some(dns::TIMEOUT)).unwrap();
    let names = [
        "static", "multi", "www", "nope", "chain", "a.wild", "db", "mx", "big", "ent",
    ];
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let mut m = query(
            &format!("{n}.gslb.test."),
            if *n == "big" {
                RecordType::TXT
            } else {
                RecordType::A
            },
        );
        m.metadata.id = 1000 + i as u16;
        ids.push(m.metadata.id);
        let bytes = m.to_vec().unwrap();
        batch.extend((bytes.len() as u16).to_be_bytes());
        batch.extend(bytes);
    }
    c.write_all(&batch).unwrap(); // all at once, in one segment
    let got: Vec<u16> = names
        .iter()
        .map(|_| {
            Message::from_vec(&dns::read_frame(&mut c).unwrap())
                .unwrap()
                .metadata
                .id
        })
        .collect();
    assert_eq!(got, ids, "answered in order, each with its own ID");
}
