//! A small DNS client for tests: builds queries with hickory-proto, sends them over real
//! UDP or TCP sockets, and parses the replies. Raw-bytes variants send hostile input.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

pub const TIMEOUT: Duration = Duration::from_secs(3);

/// A query message for `name`/`rtype`, RD=0, no EDNS.
pub fn query(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

/// Adds EDNS(0) with `payload`.
pub fn with_edns(mut m: Message, payload: u16) -> Message {
    let mut e = Edns::new();
    e.set_max_payload(payload);
    m.set_edns(e);
    m
}

/// Adds EDNS(0) (1232) with an ECS option for `subnet` (e.g. "81.2.69.0/24").
pub fn with_ecs(m: Message, subnet: &str) -> Message {
    let (addr, prefix) = subnet.split_once('/').unwrap();
    let addr: IpAddr = addr.parse().unwrap();
    let mut m = if m.edns.is_some() {
        m
    } else {
        with_edns(m, 1232)
    };
    m.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            addr,
            prefix.parse().unwrap(),
            0,
        )));
    m
}

/// The ECS option of a reply, as (address, source prefix, scope prefix).
pub fn ecs_of(m: &Message) -> Option<(IpAddr, u8, u8)> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(cs) => Some((cs.addr(), cs.source_prefix(), cs.scope_prefix())),
        _ => None,
    }
}

/// Sends `m` over UDP and parses the reply.
pub fn udp(server: SocketAddr, m: &Message) -> Message {
    let bytes = udp_raw(server, &m.to_vec().unwrap()).expect("no UDP reply");
    let reply = Message::from_vec(&bytes).expect("unparsable reply");
    assert_eq!(reply.metadata.id, m.metadata.id, "reply id");
    reply
}

/// Sends `m` over TCP and parses the reply.
pub fn tcp(server: SocketAddr, m: &Message) -> Message {
    let bytes = tcp_raw(server, &m.to_vec().unwrap()).expect("no TCP reply");
    let reply = Message::from_vec(&bytes).expect("unparsable reply");
    assert_eq!(reply.metadata.id, m.metadata.id, "reply id");
    reply
}

/// Sends raw bytes over UDP; `None` if no reply came within 1 s.
pub fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    udp_raw_wait(server, bytes, Duration::from_secs(1))
}

/// Sends raw bytes over UDP; `None` if no reply came within `wait`.
pub fn udp_raw_wait(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(bytes, server).unwrap();
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends one length-prefixed message over a new TCP connection and reads one reply.
pub fn tcp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, TIMEOUT).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).ok()?;
    read_frame(&mut s)
}

/// Reads one length-prefixed DNS message from a TCP stream.
pub fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// Records as "owner TTL TYPE rdata", lower-cased owner, for readable assertions.
pub fn rrs(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| {
            format!(
                "{} {} {} {}",
                r.name.to_lowercase(),
                r.ttl,
                r.record_type(),
                r.data
            )
        })
        .collect()
}

/// The rdata of the answers of one type, sorted.
pub fn answer_data(m: &Message, t: RecordType) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == t)
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    v
}

/// A query for class `class` instead of IN.
pub fn with_class(mut m: Message, class: DNSClass) -> Message {
    let mut q = m.queries[0].clone();
    q.set_query_class(class);
    m.queries = vec![q];
    m
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u16
}

/// A UDP client on 127.0.0.1 that waits `quiet_ms` for each reply.
pub fn client(quiet_ms: u64) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(quiet_ms)))
        .unwrap();
    sock
}

/// Sends `n` A queries for `name` at once from `sock`, then reads replies until the
/// socket's read timeout passes in quiet: (full answers, truncated replies). A truncated
/// reply must carry no records; each full one is handed to `check`.
pub fn burst(
    sock: &UdpSocket,
    server: SocketAddr,
    name: &str,
    n: usize,
    check: impl Fn(&Message),
) -> (usize, usize) {
    let bytes = query(name, RecordType::A).to_vec().unwrap();
    for _ in 0..n {
        sock.send_to(&bytes, server).unwrap();
    }
    let (mut full, mut tc) = (0, 0);
    let mut buf = [0u8; 1232];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let r = Message::from_vec(&buf[..len]).unwrap();
        if r.metadata.truncation {
            assert!(r.answers.is_empty(), "a truncated reply carries no records");
            tc += 1;
        } else {
            assert!(!r.answers.is_empty(), "a full reply carries the answer");
            check(&r);
            full += 1;
        }
    }
    (full, tc)
}
