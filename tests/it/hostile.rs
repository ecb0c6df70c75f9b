//! Hostile input: truncated headers, compression pointer loops, lying counts, lying
//! EDNS options, responses, random and mutated bytes, broken TCP framing. The server
//! answers FORMERR (same ID) or stays silent, and never stops answering good queries.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::rng::Rng;
use crate::server;

/// A header: id 0xBEEF, flags (QR=0, opcode 0), then the four counts.
fn header(qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = vec![0xBE, 0xEF, 0x00, 0x00];
    for c in [qd, an, ns, ar] {
        h.extend(c.to_be_bytes());
    }
    h
}

fn still_serving(s: &crate::Fixture) {
    let r = dns::udp(s.udp, &query("static.gslb.test.", RecordType::A));
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    let r = dns::tcp(s.tcp, &query("static.gslb.test.", RecordType::A));
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
}

fn assert_formerr(reply: Option<Vec<u8>>, what: &str) {
    let reply = reply.unwrap_or_else(|| panic!("{what}: no reply"));
    assert!(reply.len() >= 12, "{what}: short reply");
    assert_eq!(&reply[..2], &[0xBE, 0xEF], "{what}: id echoed");
    assert_eq!(reply[2] & 0x80, 0x80, "{what}: QR set");
    assert_eq!(
        reply[3] & 0x0F,
        ResponseCode::FormErr.low(),
        "{what}: FORMERR"
    );
}

#[test]
fn shorter_than_a_header_is_ignored() {
    let s = server();
    for n in 0..12 {
        let junk = vec![0xABu8; n];
        assert_eq!(
            dns::udp_raw_wait(s.udp, &junk, Duration::from_millis(150)),
            None,
            "{n} bytes"
        );
    }
    still_serving(&s);
}

#[test]
fn malformed_questions_get_formerr() {
    let s = server();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // QDCOUNT=1 but nothing follows.
    cases.push(("missing question", header(1, 0, 0, 0)));
    // Name is a compression pointer to itself (offset 12).
    let mut p = header(1, 0, 0, 0);
    p.extend([0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01]);
    cases.push(("pointer loop", p));
    // Two pointers pointing at each other.
    let mut p = header(1, 0, 0, 0);
    p.extend([0xC0, 0x0E, 0xC0, 0x0C, 0x00, 0x01, 0x00, 0x01]);
    cases.push(("pointer cycle", p));
    // Pointer past the end.
    let mut p = header(1, 0, 0, 0);
    p.extend([0xC0, 0xFF, 0x00, 0x01, 0x00, 0x01]);
    cases.push(("pointer out of bounds", p));
    // A 64-byte label.
    let mut p = header(1, 0, 0, 0);
    p.push(64);
    p.extend([b'a'; 64]);
    p.extend([0, 0, 1, 0, 1]);
    cases.push(("label too long", p));
    // Name without its terminating zero, question cut short.
    let mut p = header(1, 0, 0, 0);
    p.extend([3, b'w', b'w', b'w']);
    cases.push(("truncated name", p));
    // Counts that lie: 65535 answers announced, none present.
    let mut p = header(1, 65535, 65535, 65535);
    p.extend(query("static.gslb.test.", RecordType::A).to_vec().unwrap()[12..].iter());
    cases.push(("lying counts", p));
    // An OPT record whose option length runs past the end of the message.
    let mut p = header(1, 0, 0, 1);
    p.extend(query("static.gslb.test.", RecordType::A).to_vec().unwrap()[12..].iter());
    p.extend([
        0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 8, 0, 8, 0, 200, 0, 1, 24, 0,
    ]);
    cases.push(("EDNS option longer than its RDATA", p));
    // ECS with an unknown address family.
    let mut p = header(1, 0, 0, 1);
    p.extend(query("static.gslb.test.", RecordType::A).to_vec().unwrap()[12..].iter());
    p.extend([
        0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 11, 0, 8, 0, 7, 0, 3, 24, 0, 81, 2, 69,
    ]);
    cases.push(("ECS family 3", p));
    for (what, bytes) in &cases {
        assert_formerr(dns::udp_raw(s.udp, bytes), &format!("UDP {what}"));
        assert_formerr(dns::tcp_raw(s.tcp, bytes), &format!("TCP {what}"));
    }
    still_serving(&s);
}

#[test]
fn a_question_pointing_into_the_header_gets_formerr_without_echo() {
    // Found by the fuzzer: the name is a compression pointer to offset 0. Echoing the
    // question bytes would make it point into our reply's header instead.
    let s = server();
    let bytes: Vec<u8> = vec![
        0x05, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x00, 0, 0, 0, 1,
    ];
    for reply in [dns::udp_raw(s.udp, &bytes), dns::tcp_raw(s.tcp, &bytes)] {
        let reply = reply.expect("a reply");
        assert_eq!(&reply[..2], &[0x05, 0x40], "id echoed");
        assert_eq!(reply[3] & 0x0F, ResponseCode::FormErr.low());
        assert_eq!(&reply[4..6], &[0, 0], "no question echoed");
    }
    still_serving(&s);
}

#[test]
fn many_questions_get_formerr_without_echoing_them() {
    // Found by the fuzzer: 64 questions do not fit a 512-byte reply, which used to mean
    // no reply at all. QDCOUNT != 1 is FORMERR, and the questions are not echoed.
    let s = server();
    let mut m = query("static.gslb.test.", RecordType::A);
    for i in 0..40 {
        let name = format!("{}.gslb.test.", "x".repeat(20 + i));
        m.add_query(query(&name, RecordType::A).queries[0].clone());
    }
    for r in [dns::udp(s.udp, &m), dns::tcp(s.tcp, &m)] {
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
        assert!(r.queries.is_empty() && r.answers.is_empty());
    }
}

#[test]
fn responses_are_never_answered() {
    let s = server();
    let mut m = query("static.gslb.test.", RecordType::A);
    m.metadata.message_type = hickory_proto::op::MessageType::Response;
    let reply = dns::udp_raw_wait(s.udp, &m.to_vec().unwrap(), Duration::from_millis(300));
    assert_eq!(reply, None);
    // Even a malformed one: no FORMERR to a response (no reflection loops).
    let mut bad = header(1, 0, 0, 0);
    bad[2] = 0x80;
    assert_eq!(
        dns::udp_raw_wait(s.udp, &bad, Duration::from_millis(300)),
        None
    );
    still_serving(&s);
}

#[test]
fn random_and_mutated_datagrams_never_stop_the_server() {
    let mut s = server();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds: Vec<Vec<u8>> = [
        dns::with_ecs(query("www.gslb.test.", RecordType::A), "81.2.69.0/24"),
        dns::with_edns(query("chain.gslb.test.", RecordType::A), 1232),
        query("a.wild.gslb.test.", RecordType::TXT),
    ]
    .iter()
    .map(|m| m.to_vec().unwrap())
    .collect();
    for i in 0..3000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let len = (rng.next() % 600) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % b.len();
                b[at] = rng.next() as u8;
            }
            b
        };
        sock.send_to(&bytes, s.udp).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.server.alive(), "server died; log:\n{}", s.log());
    still_serving(&s);
}

#[test]
fn broken_tcp_framing_does_not_hurt_other_clients() {
    let mut s = server();
    // Announce 500 bytes, send 10, then hang up.
    let mut c = TcpStream::connect(s.tcp).unwrap();
    c.write_all(&[0x01, 0xF4]).unwrap();
    c.write_all(&[0u8; 10]).unwrap();
    drop(c);
    // A zero-length frame.
    let mut c = TcpStream::connect(s.tcp).unwrap();
    c.write_all(&[0, 0]).unwrap();
    // Random garbage frames.
    let mut c2 = TcpStream::connect(s.tcp).unwrap();
    let mut rng = Rng(42);
    let junk: Vec<u8> = (0..4000).map(|_| rng.next() as u8).collect();
    let _ = c2.write_all(&junk);
    // A stalled connection that never sends the rest: others are still served.
    let mut stalled = TcpStream::connect(s.tcp).unwrap();
    stalled.write_all(&[0x00, 0x40, 0x12]).unwrap();
    still_serving(&s);
    drop((c, c2, stalled));
    assert!(s.server.alive());
    still_serving(&s);
}
