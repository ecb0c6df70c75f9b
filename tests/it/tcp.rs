//! DNS over TCP per RFC 7766: connection limits (per client network, and the table
//! making room by closing the connection idle the longest), idle timeout, pipelining,
//! and clients that stall half-way through a message. Clients of distinct networks are
//! sockets bound to distinct 127.x.y.z source addresses (all of 127/8 is loopback).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd, connect_from};
use crate::http::get;
use crate::{CONFIG, zone_text};

fn start_with(tcp: &str) -> crate::Fixture {
    let config = CONFIG.replacen(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"127.0.0.1:0\"]\ntcp = {tcp}"),
        1,
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    crate::Fixture {
        server: Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]),
        dep,
    }
}

/// True when a query sent over `c` is answered (false when the server closed it).
fn answered(c: &mut TcpStream) -> bool {
    c.set_read_timeout(Some(dns::TIMEOUT)).unwrap();
    let bytes = query("static.gslb.test.", RecordType::A).to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend(bytes);
    c.write_all(&framed).is_ok()
        && dns::read_frame(c).is_some_and(|r| {
            let r = Message::from_vec(&r).unwrap();
            dns::answer_data(&r, RecordType::A) == ["192.0.2.1"]
        })
}

/// The value of the unlabelled counter `name` in the server's metrics.
fn counter(s: &crate::Fixture, name: &str) -> u64 {
    let body = get(s.admin.expect("admin address"), "/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
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
fn one_client_network_cannot_hold_every_connection() {
    let s = start_with("{ max_connections = 8, max_per_client = 4 }");
    // One network (127.0.1.0/24) opens more connections than the server allows at all.
    let mut hog: Vec<TcpStream> = (1..=10)
        .map(|i| connect_from([127, 0, 1, i], s.tcp))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let served = hog.iter_mut().map(answered).filter(|&ok| ok).count();
    assert_eq!(served, 4, "connections of one /24 served: max_per_client");
    // Every other network still gets TCP (the fallback after TC=1 or a slip).
    for i in 2..6 {
        let mut c = connect_from([127, 0, i, 1], s.tcp);
        assert!(answered(&mut c), "client in 127.0.{i}.0/24 not served");
    }
    assert_eq!(counter(&s, "gslbd_tcp_refused_total"), 6);
}

#[test]
fn a_full_table_closes_the_connection_idle_the_longest() {
    let s = start_with("{ max_connections = 3 }");
    let pause = || std::thread::sleep(Duration::from_millis(50));
    let mut oldest = TcpStream::connect(s.tcp).unwrap();
    pause();
    let mut b = TcpStream::connect(s.tcp).unwrap();
    let mut c = TcpStream::connect(s.tcp).unwrap();
    pause();
    // b and c answer a query: `oldest` is now the connection idle the longest.
    assert!(answered(&mut b) && answered(&mut c));
    let mut new = connect_from([127, 0, 9, 1], s.tcp);
    assert!(answered(&mut new), "the new connection is served");
    assert!(
        closed_within(&mut oldest, Duration::from_secs(2)),
        "the connection idle the longest is closed"
    );
    assert!(answered(&mut b) && answered(&mut c), "the others are kept");
    assert_eq!(counter(&s, "gslbd_tcp_idle_closed_total"), 1);
    assert_eq!(counter(&s, "gslbd_tcp_refused_total"), 0);

    // Connections in the middle of a query are never closed to make room: with all three
    // busy (each announced 256 bytes and sent 2), a new one is turned away.
    for conn in [&mut b, &mut c, &mut new] {
        conn.write_all(&[0x01, 0x00, 0xAB, 0xCD]).unwrap();
    }
    pause();
    let mut extra = TcpStream::connect(s.tcp).unwrap();
    let start = Instant::now();
    assert!(closed_within(&mut extra, Duration::from_secs(1)));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(counter(&s, "gslbd_tcp_refused_total"), 1);
    assert_eq!(counter(&s, "gslbd_tcp_idle_closed_total"), 1);
}

#[test]
fn a_reload_applies_new_tcp_limits() {
    let s = start_with("{ max_per_client = 1, idle_timeout = \"10s\" }");
    let _held = TcpStream::connect(s.tcp).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut refused = TcpStream::connect(s.tcp).unwrap();
    assert!(
        closed_within(&mut refused, Duration::from_secs(2)),
        "limit 1"
    );

    let config = std::fs::read_to_string(s.dep.config()).unwrap().replace(
        "tcp = { max_per_client = 1, idle_timeout = \"10s\" }",
        "tcp = { max_per_client = 2, idle_timeout = \"300ms\" }",
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
