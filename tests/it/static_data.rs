//! Static zone data: exact answers, NXDOMAIN/NODATA with the SOA, empty non-terminals,
//! CNAME chains, wildcards, referrals with glue, additional-section addresses. Every
//! case runs over UDP and over TCP.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::dns::{self, query, rrs};
use crate::server;

/// Sends `m` over UDP and TCP and checks both replies with `f`.
fn both(s: &crate::Fixture, m: Message, f: impl Fn(&Message)) {
    f(&dns::udp(s.udp, &m));
    f(&dns::tcp(s.tcp, &m));
}

fn assert_auth(r: &Message, rcode: ResponseCode) {
    assert_eq!(r.metadata.response_code, rcode, "rcode of {r:?}");
    assert!(r.metadata.authoritative, "AA must be set: {r:?}");
    assert!(!r.metadata.recursion_available, "RA must be 0");
}

const SOA: &str =
    "gslb.test. 60 SOA ns1.gslb.test. hostmaster.gslb.test. 2024010101 3600 600 86400 60";

#[test]
fn exact_answers_carry_aa_and_no_ra() {
    let s = server();
    both(&s, query("static.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(rrs(&r.answers), ["static.gslb.test. 300 A 192.0.2.1"]);
        assert!(r.authorities.is_empty());
    });
    both(&s, query("static.gslb.test.", RecordType::TXT), |r| {
        assert_eq!(rrs(&r.answers), ["static.gslb.test. 300 TXT hello"]);
    });
    both(&s, query("multi.gslb.test.", RecordType::A), |r| {
        assert_eq!(
            dns::answer_data(r, RecordType::A),
            ["192.0.2.2", "192.0.2.3"]
        );
    });
    both(&s, query("gslb.test.", RecordType::SOA), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, 300, "SOA answered with its own TTL");
    });
    // RD set by the client is copied, but we never recurse.
    let mut m = query("static.gslb.test.", RecordType::A);
    m.metadata.recursion_desired = true;
    both(&s, m, |r| {
        assert!(r.metadata.recursion_desired);
        assert!(!r.metadata.recursion_available);
    });
}

#[test]
fn nxdomain_and_nodata_carry_the_soa_with_negative_ttl() {
    let s = server();
    both(&s, query("nope.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NXDomain);
        assert!(r.answers.is_empty());
        // RFC 2308 §3: TTL = min(SOA TTL 300, MINIMUM 60).
        assert_eq!(rrs(&r.authorities), [SOA]);
    });
    both(&s, query("static.gslb.test.", RecordType::AAAA), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(rrs(&r.authorities), [SOA]);
    });
    // Below an existing name that has no children.
    both(&s, query("x.static.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NXDomain);
    });
}

#[test]
fn empty_non_terminal_is_nodata_not_nxdomain() {
    let s = server();
    both(&s, query("ent.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(rrs(&r.authorities), [SOA]);
    });
    both(&s, query("host.ent.gslb.test.", RecordType::A), |r| {
        assert_eq!(rrs(&r.answers), ["host.ent.gslb.test. 300 A 192.0.2.5"]);
    });
}

#[test]
fn names_outside_the_zones_are_refused() {
    let s = server();
    for name in ["example.com.", "test.", ".", "gslb.test.example."] {
        both(&s, query(name, RecordType::A), |r| {
            assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{name}");
            assert!(
                !r.metadata.authoritative,
                "{name}: REFUSED is not authoritative"
            );
            assert!(r.answers.is_empty());
        });
    }
}

#[test]
fn cname_chains_are_followed_inside_the_zone() {
    let s = server();
    both(&s, query("chain.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(
            rrs(&r.answers),
            [
                "chain.gslb.test. 300 CNAME alias.gslb.test.",
                "alias.gslb.test. 300 CNAME static.gslb.test.",
                "static.gslb.test. 300 A 192.0.2.1",
            ]
        );
    });
    // Asking for the CNAME itself does not follow it.
    both(&s, query("chain.gslb.test.", RecordType::CNAME), |r| {
        assert_eq!(
            rrs(&r.answers),
            ["chain.gslb.test. 300 CNAME alias.gslb.test."]
        );
    });
    // A CNAME to a dynamic name ends in the policy's answer.
    both(&s, query("towww.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(r.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(
            dns::answer_data(r, RecordType::A),
            ["192.0.2.20", "192.0.2.21"]
        );
    });
    // Out of zone: the resolver chases it.
    both(&s, query("away.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(
            rrs(&r.answers),
            ["away.gslb.test. 300 CNAME www.example.net."]
        );
    });
    // RFC 6604: the rcode is the last name's.
    both(&s, query("dangling.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NXDomain);
        assert_eq!(
            rrs(&r.answers),
            ["dangling.gslb.test. 300 CNAME nothing.gslb.test."]
        );
        assert_eq!(rrs(&r.authorities), [SOA]);
    });
    // A loop stops at the first repeated name, each CNAME once (RFC 2181 §5: no
    // duplicate records in a reply).
    both(&s, query("loop1.gslb.test.", RecordType::A), |r| {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            rrs(&r.answers),
            [
                "loop1.gslb.test. 300 CNAME loop2.gslb.test.",
                "loop2.gslb.test. 300 CNAME loop1.gslb.test."
            ]
        );
    });
    // ... and the loop was reported at load, with the file and line of a CNAME in it.
    assert!(s.wait_log("CNAME loop", std::time::Duration::from_secs(2)));
    let log = s.log();
    let warn = log.lines().find(|l| l.contains("CNAME loop")).unwrap();
    assert!(
        warn.contains("WARN")
            && (warn.contains("gslb.test.zone:16:") || warn.contains("gslb.test.zone:17:")),
        "{warn}"
    );
}

#[test]
fn wildcards_synthesise_for_missing_names_only() {
    let s = server();
    both(&s, query("anything.wild.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(
            rrs(&r.answers),
            ["anything.wild.gslb.test. 300 A 192.0.2.7"]
        );
    });
    // RFC 4592: the closest encloser is wild.gslb.test, so deeper names match too.
    both(&s, query("a.b.wild.gslb.test.", RecordType::TXT), |r| {
        assert_eq!(rrs(&r.answers), ["a.b.wild.gslb.test. 300 TXT wildcard"]);
    });
    // A type the wildcard lacks: NODATA, not NXDOMAIN.
    both(
        &s,
        query("anything.wild.gslb.test.", RecordType::AAAA),
        |r| {
            assert_auth(r, ResponseCode::NoError);
            assert!(r.answers.is_empty());
            assert_eq!(rrs(&r.authorities), [SOA]);
        },
    );
    // An existing name is never covered by the wildcard, even for types it lacks.
    both(&s, query("exists.wild.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert!(r.answers.is_empty());
    });
    both(&s, query("exists.wild.gslb.test.", RecordType::TXT), |r| {
        assert_eq!(rrs(&r.answers), ["exists.wild.gslb.test. 300 TXT explicit"]);
    });
    // Below an existing name, the wildcard of the parent does not apply (RFC 4592 §2.2.1).
    both(&s, query("x.exists.wild.gslb.test.", RecordType::A), |r| {
        assert_auth(r, ResponseCode::NXDomain);
    });
}

#[test]
fn delegations_get_referrals_with_glue_and_no_aa() {
    let s = server();
    for name in [
        "host.sub.gslb.test.",
        "sub.gslb.test.",
        "a.b.sub.gslb.test.",
        "ns.sub.gslb.test.",
    ] {
        both(&s, query(name, RecordType::A), |r| {
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(
                !r.metadata.authoritative,
                "{name}: referral must not set AA"
            );
            assert!(r.answers.is_empty(), "{name}");
            let mut ns = rrs(&r.authorities);
            ns.sort();
            assert_eq!(
                ns,
                [
                    "sub.gslb.test. 300 NS ns.elsewhere.example.",
                    "sub.gslb.test. 300 NS ns.sub.gslb.test.",
                ],
                "{name}"
            );
            assert_eq!(
                rrs(&r.additionals),
                ["ns.sub.gslb.test. 300 A 192.0.2.53"],
                "{name}"
            );
        });
    }
    // DS at the cut is the parent's data: authoritative NODATA here.
    both(&s, query("sub.gslb.test.", RecordType::DS), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(rrs(&r.authorities), [SOA]);
    });
}

#[test]
fn ns_and_mx_answers_add_in_zone_addresses() {
    let s = server();
    both(&s, query("gslb.test.", RecordType::NS), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 2);
        let mut add = rrs(&r.additionals);
        add.sort();
        assert_eq!(
            add,
            [
                "ns1.gslb.test. 300 A 127.0.0.1",
                "ns2.gslb.test. 300 AAAA ::1"
            ]
        );
    });
    both(&s, query("mx.gslb.test.", RecordType::MX), |r| {
        assert_eq!(rrs(&r.answers), ["mx.gslb.test. 300 MX 10 mail.gslb.test."]);
        assert_eq!(rrs(&r.additionals), ["mail.gslb.test. 300 A 192.0.2.25"]);
    });
}

#[test]
fn any_gets_a_minimal_answer() {
    let s = server();
    // RFC 8482: one RRset, not everything at the name.
    both(&s, query("static.gslb.test.", RecordType::ANY), |r| {
        assert_auth(r, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1, "{:?}", rrs(&r.answers));
    });
    both(&s, query("gslb.test.", RecordType::ANY), |r| {
        let types: std::collections::BTreeSet<_> =
            r.answers.iter().map(|a| a.record_type()).collect();
        assert_eq!(types.len(), 1, "{:?}", rrs(&r.answers));
    });
    both(&s, query("nope.gslb.test.", RecordType::ANY), |r| {
        assert_auth(r, ResponseCode::NXDomain);
    });
}

#[test]
fn question_letter_case_is_preserved() {
    let s = server();
    both(&s, query("StAtIc.GsLb.TeSt.", RecordType::A), |r| {
        assert_eq!(r.queries[0].name().to_string(), "StAtIc.GsLb.TeSt.");
        assert_eq!(dns::answer_data(r, RecordType::A), ["192.0.2.1"]);
        assert!(r.metadata.authoritative);
    });
    both(&s, query("WWW.gslb.TEST.", RecordType::A), |r| {
        assert_eq!(r.queries[0].name().to_string(), "WWW.gslb.TEST.");
        assert_eq!(r.answers.len(), 2);
    });
}
