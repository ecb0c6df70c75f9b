//! EDNS Client Subnet options that RFC 7871 §6 rejects (#16 item 6): ADDRESS bits set
//! past SOURCE PREFIX-LENGTH, or more ADDRESS octets than the prefix needs, get FORMERR
//! with the question and our OPT, without the ECS option; a well-formed option is echoed
//! with FAMILY, SOURCE PREFIX-LENGTH and ADDRESS as sent. On both query paths (a dynamic
//! name the fast path answers, a CNAME the general path answers), over UDP and TCP.

use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::server;

/// `name A` with EDNS(0) and one ECS option of `family`, `source` and these ADDRESS bytes.
fn raw_ecs(name: &str, family: u16, source: u8, addr: &[u8]) -> (u16, Vec<u8>) {
    let m = dns::with_edns(query(name, RecordType::A), 1232);
    let mut bytes = m.to_vec().unwrap();
    let mut option = vec![0, 8];
    option.extend((4 + addr.len() as u16).to_be_bytes());
    option.extend(family.to_be_bytes());
    option.extend([source, 0]);
    option.extend(addr);
    // The OPT record is last and has no options yet: set its RDLENGTH, append.
    let n = bytes.len();
    bytes[n - 2..].copy_from_slice(&(option.len() as u16).to_be_bytes());
    bytes.extend(option);
    (m.metadata.id, bytes)
}

fn replies(s: &crate::Fixture, bytes: &[u8]) -> [Message; 2] {
    [dns::udp_raw(s.udp, bytes), dns::tcp_raw(s.tcp, bytes)]
        .map(|r| Message::from_vec(&r.expect("a reply")).expect("a parsable reply"))
}

#[test]
fn ecs_with_bits_past_the_prefix_or_extra_octets_gets_formerr_with_opt() {
    let s = server();
    for name in ["www.gslb.test.", "alias.gslb.test."] {
        for (what, family, source, addr) in [
            // 81.2.69.0/22: 69 has its lowest bit set, past a 22-bit prefix.
            ("bits past /22", 1, 22, &[81, 2, 69][..]),
            ("bits past /28", 1, 28, &[81, 2, 69, 77][..]),
            ("an octet for /0", 1, 0, &[0][..]),
            ("a fourth octet for /24", 1, 24, &[81, 2, 69, 0][..]),
            (
                "7 octets for /48",
                2,
                48,
                &[0x20, 1, 0xd, 0xb8, 0xab, 0xcd, 0][..],
            ),
            ("too few octets for /24", 1, 24, &[81, 2][..]),
            ("family 3", 3, 24, &[81, 2, 69][..]),
        ] {
            let (id, bytes) = raw_ecs(name, family, source, addr);
            for r in replies(&s, &bytes) {
                let at = format!("{name} {what}");
                assert_eq!(r.metadata.id, id, "{at}");
                assert_eq!(r.metadata.response_code, ResponseCode::FormErr, "{at}");
                assert!(r.answers.is_empty(), "{at}");
                let edns = r.edns.as_ref().unwrap_or_else(|| panic!("{at}: no OPT"));
                assert_eq!(edns.max_payload(), 1232, "{at}");
                assert_eq!(
                    dns::ecs_of(&r),
                    None,
                    "{at}: the refused option is not echoed"
                );
                // The question is echoed when hickory could read the query (not for the
                // octets it cannot read: too few, or an unknown family).
                if !matches!(what, "too few octets for /24" | "family 3") {
                    assert_eq!(r.queries.len(), 1, "{at}: question echoed");
                    assert_eq!(r.queries[0].name().to_ascii(), name, "{at}");
                }
            }
        }
    }
    // Still answering.
    let r = dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn ecs_is_echoed_as_sent() {
    let s = server();
    for name in ["www.gslb.test.", "alias.gslb.test."] {
        for (family, source, addr, want) in [
            (1, 22, &[81, 2, 68][..], "81.2.68.0"),
            (1, 32, &[81, 2, 69, 77][..], "81.2.69.77"),
            (1, 0, &[][..], "0.0.0.0"),
            (
                2,
                56,
                &[0x20, 1, 0xd, 0xb8, 0xab, 0xcd, 0x12][..],
                "2001:db8:abcd:1200::",
            ),
        ] {
            let (_, bytes) = raw_ecs(name, family, source, addr);
            for r in replies(&s, &bytes) {
                assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
                let (ip, src, _) = dns::ecs_of(&r).expect("ECS echoed");
                assert_eq!(
                    (ip, src),
                    (want.parse::<IpAddr>().unwrap(), source),
                    "{name}"
                );
            }
        }
    }
}
