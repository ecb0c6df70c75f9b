//! Protocol behaviour: EDNS(0) payload and version, truncation over UDP with the full
//! answer over TCP, FORMERR/NOTIMP/REFUSED for queries we do not serve.

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};

use crate::dns::{self, query};
use crate::server;

#[test]
fn edns_payload_is_1232_and_only_when_asked() {
    let s = server();
    for asked in [512u16, 1232, 4096, 65535] {
        let r = dns::udp(
            s.udp,
            &dns::with_edns(query("static.gslb.test.", RecordType::A), asked),
        );
        let e = r.edns.as_ref().expect("OPT in reply");
        assert_eq!(e.max_payload(), asked.min(1232), "asked {asked}");
        assert_eq!(e.version(), 0);
    }
    let r = dns::udp(s.udp, &query("static.gslb.test.", RecordType::A));
    assert!(r.edns.is_none(), "no OPT without EDNS in the query");
}

#[test]
fn edns_version_above_zero_gets_badvers() {
    let s = server();
    let mut m = dns::with_edns(query("static.gslb.test.", RecordType::A), 1232);
    m.edns.as_mut().unwrap().set_version(1);
    for r in [dns::udp(s.udp, &m), dns::tcp(s.tcp, &m)] {
        // Code 16 (hickory decodes it as BADSIG, its TSIG name; the wire value is the same).
        assert_eq!(u16::from(r.metadata.response_code), 16);
        assert_eq!(r.edns.as_ref().unwrap().version(), 0);
        assert!(r.answers.is_empty());
    }
}

#[test]
fn big_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let s = server();
    // Four 200-byte strings: over 512 without EDNS, within 1232 with it.
    let plain = query("big.gslb.test.", RecordType::TXT);
    let r = dns::udp(s.udp, &plain);
    assert!(r.metadata.truncation, "TC=1 when it does not fit 512 bytes");
    assert!(r.answers.is_empty());
    assert_eq!(r.queries.len(), 1, "question kept");
    let r = dns::udp(s.udp, &dns::with_edns(plain.clone(), 1232));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 4);
    // Eight 250-byte strings: over 1232 even with EDNS.
    let huge = dns::with_edns(query("huge.gslb.test.", RecordType::TXT), 4096);
    let raw = dns::udp_raw(s.udp, &huge.to_vec().unwrap()).unwrap();
    assert!(raw.len() <= 1232, "UDP reply is {} bytes", raw.len());
    let r = hickory_proto::op::Message::from_vec(&raw).unwrap();
    assert!(r.metadata.truncation);
    assert!(r.edns.is_some(), "OPT kept in a truncated reply");
    assert!(r.metadata.authoritative);
    let r = dns::tcp(s.tcp, &huge);
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 8);
}

#[test]
fn unknown_opcodes_get_notimp() {
    let s = server();
    for op in [
        OpCode::Status,
        OpCode::Notify,
        OpCode::Update,
        OpCode::Unknown(9),
    ] {
        let mut m = query("static.gslb.test.", RecordType::A);
        m.metadata.op_code = op;
        for r in [dns::udp(s.udp, &m), dns::tcp(s.tcp, &m)] {
            assert_eq!(r.metadata.response_code, ResponseCode::NotImp, "{op:?}");
            assert_eq!(r.metadata.op_code, op);
        }
    }
}

#[test]
fn question_count_other_than_one_is_formerr() {
    let s = server();
    let mut none = query("static.gslb.test.", RecordType::A);
    none.queries.clear();
    let mut two = query("static.gslb.test.", RecordType::A);
    two.add_query(query("multi.gslb.test.", RecordType::A).queries[0].clone());
    for m in [none, two] {
        for r in [dns::udp(s.udp, &m), dns::tcp(s.tcp, &m)] {
            assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
            assert!(r.answers.is_empty());
        }
    }
}

#[test]
fn other_classes_transfers_and_meta_types_are_refused_or_formerr() {
    let s = server();
    let ch = dns::with_class(query("version.bind.", RecordType::TXT), DNSClass::CH);
    assert_eq!(
        dns::udp(s.udp, &ch).metadata.response_code,
        ResponseCode::Refused
    );
    let ch = dns::with_class(query("static.gslb.test.", RecordType::A), DNSClass::CH);
    assert_eq!(
        dns::udp(s.udp, &ch).metadata.response_code,
        ResponseCode::Refused
    );
    let axfr = query("gslb.test.", RecordType::AXFR);
    assert_eq!(
        dns::tcp(s.tcp, &axfr).metadata.response_code,
        ResponseCode::Refused
    );
    assert_eq!(
        dns::tcp(s.tcp, &query("gslb.test.", RecordType::IXFR))
            .metadata
            .response_code,
        ResponseCode::Refused
    );
    assert_eq!(
        dns::udp(s.udp, &query("gslb.test.", RecordType::OPT))
            .metadata
            .response_code,
        ResponseCode::FormErr
    );
}

#[test]
fn several_queries_on_one_tcp_connection() {
    use std::io::Write;
    let s = server();
    let mut conn = std::net::TcpStream::connect(s.tcp).unwrap();
    conn.set_read_timeout(Some(dns::TIMEOUT)).unwrap();
    let names = ["static.gslb.test.", "multi.gslb.test.", "www.gslb.test."];
    let mut ids = Vec::new();
    for name in names {
        let m = query(name, RecordType::A);
        ids.push(m.metadata.id);
        let bytes = m.to_vec().unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend(bytes);
        conn.write_all(&framed).unwrap();
    }
    let mut got = Vec::new();
    for _ in names {
        let r = hickory_proto::op::Message::from_vec(&dns::read_frame(&mut conn).unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(!r.answers.is_empty());
        got.push(r.metadata.id);
    }
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
}
