//! Dynamic names: A/AAAA from the policy's region with the record's TTL, other types
//! NODATA, rotation of several addresses, wildcard dynamic names, ECS echo.

use std::collections::BTreeSet;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query, rrs};
use crate::server;

#[test]
fn failover_answers_with_the_first_region_and_the_record_ttl() {
    let s = server();
    for reply in [
        dns::udp(s.udp, &query("www.gslb.test.", RecordType::A)),
        dns::tcp(s.tcp, &query("www.gslb.test.", RecordType::A)),
    ] {
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        // eu-west is first in the record's regions; both its addresses, TTL 20.
        assert_eq!(
            dns::answer_data(&reply, RecordType::A),
            ["192.0.2.20", "192.0.2.21"]
        );
        assert!(
            reply
                .answers
                .iter()
                .all(|r| r.ttl == 20 && r.name.to_string() == "www.gslb.test.")
        );
    }
    // db has no `regions`: every region in file order, so us-east; defaults.ttl.
    let r = dns::udp(s.udp, &query("db.gslb.test.", RecordType::A));
    assert_eq!(rrs(&r.answers), ["db.gslb.test. 30 A 192.0.2.10"]);
}

#[test]
fn aaaa_skips_regions_without_ipv6() {
    let s = server();
    let r = dns::udp(s.udp, &query("www.gslb.test.", RecordType::AAAA));
    // eu-west has no IPv6 address: the next region, us-east, answers.
    assert_eq!(rrs(&r.answers), ["www.gslb.test. 20 AAAA 2001:db8:10::1"]);
}

#[test]
fn other_types_at_a_dynamic_name_are_nodata_with_soa() {
    let s = server();
    for t in [
        RecordType::TXT,
        RecordType::MX,
        RecordType::CNAME,
        RecordType::NS,
    ] {
        let r = dns::udp(s.udp, &query("www.gslb.test.", t));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{t}");
        assert!(r.metadata.authoritative);
        assert!(r.answers.is_empty(), "{t}");
        assert_eq!(r.authorities.len(), 1, "{t}");
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    }
    // ANY at a dynamic name: one RRset, the A records.
    let r = dns::udp(s.udp, &query("www.gslb.test.", RecordType::ANY));
    assert_eq!(
        dns::answer_data(&r, RecordType::A),
        ["192.0.2.20", "192.0.2.21"]
    );
    assert_eq!(r.answers.len(), 2);
}

#[test]
fn several_addresses_are_rotated_between_answers() {
    let s = server();
    let mut firsts = BTreeSet::new();
    for _ in 0..40 {
        let r = dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
        assert_eq!(r.answers.len(), 2);
        firsts.insert(r.answers[0].data.to_string());
    }
    assert_eq!(
        firsts.len(),
        2,
        "both addresses should come first sometimes: {firsts:?}"
    );
}

#[test]
fn wildcard_dynamic_names_answer_with_the_query_name() {
    let s = server();
    let r = dns::udp(s.udp, &query("Edge-7.pool.gslb.test.", RecordType::A));
    assert_eq!(rrs(&r.answers), ["edge-7.pool.gslb.test. 30 A 192.0.2.30"]);
    assert_eq!(r.answers[0].name.to_string(), "Edge-7.pool.gslb.test.");
    let r = dns::udp(s.udp, &query("pool.gslb.test.", RecordType::A));
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "pool is an empty non-terminal"
    );
    assert!(r.answers.is_empty());
}

#[test]
fn ecs_is_echoed_with_scope_zero_for_failover_and_static_answers() {
    let s = server();
    for (name, t) in [
        ("www.gslb.test.", RecordType::A),
        ("static.gslb.test.", RecordType::A),
        ("nope.gslb.test.", RecordType::A),
    ] {
        for subnet in ["81.2.69.0/24", "2001:db8:abcd::/48"] {
            let m = dns::with_ecs(query(name, t), subnet);
            let (udp, tcp) = (dns::udp(s.udp, &m), dns::tcp(s.tcp, &m));
            for r in [udp, tcp] {
                let (addr, source, scope) = dns::ecs_of(&r).expect("ECS echoed");
                assert_eq!(format!("{addr}/{source}"), subnet, "{name}");
                assert_eq!(scope, 0, "{name}: the answer does not depend on the client");
            }
        }
    }
    // Bits past the source prefix are cleared in the echo (RFC 7871 §6).
    let r = dns::udp(
        s.udp,
        &dns::with_ecs(query("www.gslb.test.", RecordType::A), "81.2.69.77/24"),
    );
    assert_eq!(dns::ecs_of(&r).unwrap().0.to_string(), "81.2.69.0");
    // SOURCE 0: the client opts out; scope 0.
    let r = dns::udp(
        s.udp,
        &dns::with_ecs(query("www.gslb.test.", RecordType::A), "0.0.0.0/0"),
    );
    assert_eq!(dns::ecs_of(&r), Some(("0.0.0.0".parse().unwrap(), 0, 0)));
    // No ECS in the query, none in the reply.
    let r = dns::udp(
        s.udp,
        &dns::with_edns(query("www.gslb.test.", RecordType::A), 1232),
    );
    assert_eq!(dns::ecs_of(&r), None);
}
