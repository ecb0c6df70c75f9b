//! The dnstap pieces on their own: the protobuf encoding against the official field
//! numbers, Frame Streams against a fake collector, the pool's hand-over, and a `Tap`
//! following a destination change.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use prost::Message as _;

use super::fstrm::{self, ACCEPT, CONTENT_TYPE, FINISH, READY, START, STOP};
use super::pool::{IndexQueue, MAX_QUERY, Pool, SMALL, Slot};
use super::proto::{self, Encoder, MessageType, SocketFamily, SocketProtocol};
use super::{Pending, Tap};
use crate::model::{Dnstap, DnstapDest};

fn slot(query: &[u8], response: Option<&[u8]>, client: &str, tcp: bool) -> Slot {
    let mut bytes = query.to_vec();
    bytes.extend_from_slice(response.unwrap_or_default());
    Slot {
        bytes,
        query_len: query.len(),
        responded: response.is_some(),
        client: client.parse().unwrap(),
        tcp,
        query_time: (1_700_000_000, 123_456_789),
        response_time: (1_700_000_001, 5),
    }
}

/// Splits data frames (length, bytes) into their payloads.
fn payloads(mut frames: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while !frames.is_empty() {
        let n = u32::from_be_bytes(frames[..4].try_into().unwrap()) as usize;
        v.push(frames[4..4 + n].to_vec());
        frames = &frames[4 + n..];
    }
    v
}

#[test]
fn events_use_the_official_field_numbers() {
    let mut enc = Encoder::new("ns1", "gslbd 9.9.9");
    let mut out = Vec::new();
    let s = slot(b"QQ", Some(b"RRR"), "192.0.2.7:5353", false);
    assert_eq!(enc.frames(&s, &mut out), 2);
    let events = payloads(&out);
    assert_eq!(events.len(), 2);
    // Byte for byte, as protoc would write it: Dnstap identity (1), version (2),
    // message (14), type (15); Message type (1), socket_family (2), socket_protocol (3),
    // query_address (4), query_port (6), query_time_sec (8), query_time_nsec (9,
    // fixed32), query_message (10).
    let mut message = vec![
        0x08, 1, // type AUTH_QUERY
        0x10, 1, // socket_family INET
        0x18, 1, // socket_protocol UDP
        0x22, 4, 192, 0, 2, 7, // query_address
        0x30, 0xE9, 0x29, // query_port 5353
        0x40, 0x80, 0xE2, 0xCF, 0xAA, 0x06, // query_time_sec 1700000000
        0x4D, 0x15, 0xCD, 0x5B, 0x07, // query_time_nsec 123456789
        0x52, 2, b'Q', b'Q', // query_message
    ];
    let mut expected = vec![0x0A, 3, b'n', b's', b'1', 0x12, 11];
    expected.extend_from_slice(b"gslbd 9.9.9");
    expected.extend_from_slice(&[0x72, message.len() as u8]);
    expected.extend_from_slice(&message);
    expected.extend_from_slice(&[0x78, 1]);
    assert_eq!(events[0], expected);
    // The response: type AUTH_RESPONSE, no query_message, response_time_sec (12),
    // response_time_nsec (13, fixed32), response_message (14).
    message[1] = 2;
    message.truncate(message.len() - 4);
    message.extend_from_slice(&[0x60, 0x81, 0xE2, 0xCF, 0xAA, 0x06]);
    message.extend_from_slice(&[0x6D, 5, 0, 0, 0]);
    message.extend_from_slice(&[0x72, 3, b'R', b'R', b'R']);
    let mut expected = vec![0x0A, 3, b'n', b's', b'1', 0x12, 11];
    expected.extend_from_slice(b"gslbd 9.9.9");
    expected.extend_from_slice(&[0x72, message.len() as u8]);
    expected.extend_from_slice(&message);
    expected.extend_from_slice(&[0x78, 1]);
    assert_eq!(events[1], expected);
}

#[test]
fn events_decode_with_every_field() {
    let mut enc = Encoder::new("ns1", "gslbd 9.9.9");
    let mut out = Vec::new();
    // A TCP exchange over IPv6, then a query without a response (rate limited).
    enc.frames(
        &slot(b"query", Some(b"response"), "[2001:db8::1]:40000", true),
        &mut out,
    );
    assert_eq!(
        enc.frames(&slot(b"q2", None, "198.51.100.1:1", false), &mut out),
        1
    );
    let events: Vec<proto::Dnstap> = payloads(&out)
        .iter()
        .map(|p| proto::Dnstap::decode(&p[..]).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    let m: Vec<&proto::Message> = events.iter().map(|e| e.message.as_ref().unwrap()).collect();
    assert_eq!(m[0].r#type, MessageType::AuthQuery as i32);
    assert_eq!(m[0].socket_family, Some(SocketFamily::Inet6 as i32));
    assert_eq!(m[0].socket_protocol, Some(SocketProtocol::Tcp as i32));
    let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    assert_eq!(m[0].query_address.as_deref(), Some(&v6.octets()[..]));
    assert_eq!(m[0].query_port, Some(40000));
    assert_eq!(m[0].query_message.as_deref(), Some(&b"query"[..]));
    assert_eq!(m[0].response_message, None);
    assert_eq!(m[1].r#type, MessageType::AuthResponse as i32);
    assert_eq!(m[1].query_message, None);
    assert_eq!(m[1].response_message.as_deref(), Some(&b"response"[..]));
    assert_eq!(
        (m[1].query_time_sec, m[1].query_time_nsec),
        (Some(1_700_000_000), Some(123_456_789))
    );
    assert_eq!(
        (m[1].response_time_sec, m[1].response_time_nsec),
        (Some(1_700_000_001), Some(5))
    );
    assert_eq!(m[2].r#type, MessageType::AuthQuery as i32);
    assert_eq!(m[2].query_message.as_deref(), Some(&b"q2"[..]));
    assert_eq!(m[2].response_time_sec, None);
    assert_eq!(events[2].identity.as_deref(), Some(&b"ns1"[..]));
    assert_eq!(events[2].version.as_deref(), Some(&b"gslbd 9.9.9"[..]));
}

#[test]
fn control_frames_match_the_frame_streams_layout() {
    let mut out = Vec::new();
    fstrm::control(READY, Some(CONTENT_TYPE), &mut out);
    let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 22];
    expected.extend_from_slice(b"protobuf:dnstap.Dnstap");
    assert_eq!(out, expected);
    out.clear();
    fstrm::control(STOP, None, &mut out);
    assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]);
    let c = fstrm::read_control(&mut &expected[..]).unwrap();
    assert_eq!(
        (c.kind, c.content_types),
        (READY, vec![CONTENT_TYPE.to_vec()])
    );
    // A data frame where a control frame belongs, or a truncated field, is an error.
    assert!(fstrm::read_control(&mut &[0, 0, 0, 5, 1, 2, 3, 4, 5][..]).is_err());
    assert!(
        fstrm::read_control(&mut &[0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1][..]).is_err()
    );
}

/// A collector on one end of a stream: accepts the handshake, then returns every data
/// frame's payload until STOP, which it answers with FINISH.
fn collect(mut s: UnixStream) -> Vec<Vec<u8>> {
    let ready = fstrm::read_control(&mut s).unwrap();
    assert_eq!(ready.kind, READY);
    assert_eq!(ready.content_types, vec![CONTENT_TYPE.to_vec()]);
    let mut out = Vec::new();
    fstrm::control(ACCEPT, Some(CONTENT_TYPE), &mut out);
    s.write_all(&out).unwrap();
    let start = fstrm::read_control(&mut s).unwrap();
    assert_eq!(start.kind, START);
    let mut frames = Vec::new();
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let n = u32::from_be_bytes(len) as usize;
        if n == 0 {
            // A control frame: its length, then its type.
            let mut head = [0u8; 8];
            s.read_exact(&mut head).unwrap();
            assert_eq!(u32::from_be_bytes(head[4..].try_into().unwrap()), STOP);
            out.clear();
            fstrm::control(FINISH, None, &mut out);
            s.write_all(&out).unwrap();
            return frames;
        }
        let mut frame = vec![0u8; n];
        s.read_exact(&mut frame).unwrap();
        frames.push(frame);
    }
}

#[test]
fn handshake_data_and_stop() {
    let (mut writer, reader) = UnixStream::pair().unwrap();
    writer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let collector = std::thread::spawn(move || collect(reader));
    fstrm::handshake(&mut writer).unwrap();
    writer.write_all(&[0, 0, 0, 3, b'a', b'b', b'c']).unwrap();
    fstrm::stop(&mut writer).unwrap();
    assert_eq!(collector.join().unwrap(), vec![b"abc".to_vec()]);
}

#[test]
fn a_collector_for_another_content_type_is_refused() {
    let (mut writer, mut reader) = UnixStream::pair().unwrap();
    writer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let collector = std::thread::spawn(move || {
        fstrm::read_control(&mut reader).unwrap();
        let mut out = Vec::new();
        fstrm::control(ACCEPT, Some(b"protobuf:other"), &mut out);
        reader.write_all(&out).unwrap();
    });
    let e = fstrm::handshake(&mut writer).unwrap_err();
    assert!(e.to_string().contains("does not accept"), "{e}");
    collector.join().unwrap();
}

#[test]
fn index_queue_is_fifo_and_bounded() {
    let q = IndexQueue::new(4);
    assert!(q.is_empty());
    for i in 0..4 {
        assert!(q.push(i));
    }
    assert!(!q.push(9), "full");
    assert_eq!(q.pop(), Some(0));
    assert!(q.push(4));
    assert_eq!(
        (1..=4).map(|_| q.pop().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(q.pop(), None);
    assert!(q.is_empty());
}

#[test]
fn index_queue_loses_nothing_across_threads() {
    // Four producers and two consumers pass 40,000 values through 64 cells.
    let q = IndexQueue::new(64);
    let seen = std::sync::Mutex::new(vec![false; 40_000]);
    std::thread::scope(|s| {
        for p in 0..4 {
            let q = &q;
            s.spawn(move || {
                for i in 0..10_000 {
                    while !q.push(p * 10_000 + i) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        for _ in 0..2 {
            let (q, seen) = (&q, &seen);
            s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                while Instant::now() < deadline {
                    match q.pop() {
                        Some(v) => {
                            let mut seen = seen.lock().unwrap();
                            assert!(!seen[v], "{v} twice");
                            seen[v] = true;
                            if seen.iter().all(|s| *s) {
                                return;
                            }
                        }
                        None if seen.lock().unwrap().iter().all(|s| *s) => return,
                        None => std::thread::yield_now(),
                    }
                }
            });
        }
    });
    assert!(seen.into_inner().unwrap().iter().all(|s| *s));
}

#[test]
fn the_pool_hands_over_and_refuses_when_full() {
    let pool = Pool::new();
    let client: SocketAddr = "192.0.2.1:53".parse().unwrap();
    let fill = |s: &mut Slot| s.client = client;
    // Small exchanges take small slots, then the large ones, then there is no room.
    let mut n = 0;
    while pool.put(b"query", Some(b"response"), fill) {
        n += 1;
    }
    assert_eq!(n, 1024 + 8);
    let first = pool.ready.pop().unwrap();
    {
        let s = pool.lock(first);
        assert_eq!(
            (&s.bytes[..s.query_len], &s.bytes[s.query_len..]),
            (&b"query"[..], &b"response"[..])
        );
        assert_eq!(s.client, client);
    }
    pool.release(first);
    // A large exchange needs a large slot: none is free.
    let big = vec![0u8; SMALL + 1];
    assert!(!pool.put(b"q", Some(&big), fill));
    assert!(pool.put(b"q", Some(b"r"), fill));
    // A query longer than any UDP query is never kept.
    while let Some(i) = pool.ready.pop() {
        pool.release(i);
    }
    assert!(!pool.put(&vec![0u8; MAX_QUERY + 1], None, fill));
    assert!(pool.put(b"q", Some(&vec![0u8; 65535]), fill));
}

/// A collector listening on `path`: the payloads of each connection, in order, until
/// `connections` have finished.
fn collector(
    path: &std::path::Path,
    connections: usize,
) -> std::thread::JoinHandle<Vec<Vec<Vec<u8>>>> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        (0..connections)
            .map(|_| collect(listener.accept().unwrap().0))
            .collect()
    })
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn exchange(tap: &Tap, id: u8) {
    let query = [id, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let reply = [id, 0, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    Pending {
        tap,
        at: Some(super::now()),
    }
    .end(&query, "127.0.0.1:4000".parse().unwrap(), false, &reply);
}

#[test]
fn a_tap_streams_exchanges_and_follows_a_new_destination() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sock"), dir.path().join("b.sock"));
    let first = collector(&a, 1);
    let second = collector(&b, 1);
    let tap = Tap::default();
    let conf = |p: &std::path::Path| Dnstap {
        dest: DnstapDest::Unix(p.to_path_buf()),
        sample: 1.0,
    };
    tap.configure(Some(&conf(&a)));
    for id in 1..=3 {
        exchange(&tap, id);
    }
    wait_for("6 events sent", || tap.sent() == 6);
    // A reload to another destination: the first stream is finished, the second opened.
    tap.configure(Some(&conf(&b)));
    let to_a = first.join().unwrap();
    assert_eq!(to_a[0].len(), 6);
    exchange(&tap, 4);
    // A query that rate limiting dropped: its AUTH_QUERY alone. A response sent to us
    // (QR=1) with no reply is no exchange at all.
    let client: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let limited = [6, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    Pending {
        tap: &tap,
        at: Some(super::now()),
    }
    .end(&limited, client, false, &[]);
    let response = [5, 0, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    Pending {
        tap: &tap,
        at: Some(super::now()),
    }
    .end(&response, client, false, &[]);
    wait_for("9 events sent", || tap.sent() == 9);
    tap.finish(Duration::from_secs(5));
    let to_b = second.join().unwrap();
    let types: Vec<(i32, u8)> = to_b[0]
        .iter()
        .map(|p| {
            let m = proto::Dnstap::decode(&p[..]).unwrap().message.unwrap();
            let msg = m.query_message.or(m.response_message).unwrap();
            (m.r#type, msg[0])
        })
        .collect();
    assert_eq!(types, [(1, 4), (2, 4), (1, 6)]);
    assert_eq!(tap.dropped(), 0);
}

#[test]
fn without_a_collector_exchanges_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let tap = Tap::default();
    tap.configure(Some(&Dnstap {
        dest: DnstapDest::Unix(dir.path().join("nobody.sock")),
        sample: 1.0,
    }));
    for i in 0..1100 {
        exchange(&tap, i as u8);
    }
    // The pool holds 1032 exchanges; the rest are dropped, two events each.
    assert_eq!(tap.dropped(), 2 * (1100 - 1032));
    assert_eq!(tap.sent(), 0);
    let mut metrics = String::new();
    tap.render(&mut metrics);
    assert!(
        metrics.contains("gslbd_dnstap_dropped_total 136\n"),
        "{metrics}"
    );
    assert!(metrics.contains("gslbd_dnstap_sent_total 0\n"), "{metrics}");
    // Unconfigured, nothing is rendered.
    let mut none = String::new();
    Tap::default().render(&mut none);
    assert!(none.is_empty());
}
