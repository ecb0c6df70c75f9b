//! The fast path against the general path: for every name of two deployments, many
//! types, letter cases, EDNS and ECS variants, sources and health states, a reply from
//! the fast path must be the general path's reply, compared decoded (the bytes differ:
//! the fast path also compresses names against the question), and the everyday cases
//! must take the fast path.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use crate::health::{Health, RegionHealth};
use crate::model::RegionId;
use crate::server::answer_general;
use crate::snapshot::Snapshot;

// The reply comparison shared with the fuzz targets (std and hickory-proto only).
#[allow(unreachable_pub)]
#[path = "../../fuzz/src/compare.rs"]
mod compare;

fn example() -> Snapshot {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Snapshot::load(&root.join("gslb.toml")).expect("example deployment loads")
}

/// The example deployment with `[dnssec]` and a key made for the test.
fn signed_example() -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let config = signed::signed_example_config(dir.path());
    crate::dnssec::tool::keygen(&config, None, false).unwrap();
    let snap = Snapshot::load(&config).expect("signed example loads");
    (dir, snap)
}

fn test_zone() -> (tempfile::TempDir, Snapshot) {
    deployment(include_str!("../../tests/fixtures/it/gslb.toml"))
}

/// The test zone with `config` as gslb.toml, loaded.
fn deployment(config: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::write(
        zones.join("gslb.test.zone"),
        include_str!("../../tests/fixtures/it/gslb.test.zone"),
    )
    .unwrap();
    let path = dir.path().join("gslb.toml");
    std::fs::write(&path, config).unwrap();
    let snap = Snapshot::load(&path).expect("test deployment loads");
    (dir, snap)
}

/// Health variants: all up, each region down in turn, all down, and the first address
/// of each region down.
fn healths(snap: &Snapshot) -> Vec<Arc<Health>> {
    let n = snap.model.regions.len();
    let with =
        |f: &dyn Fn(usize) -> RegionHealth| Arc::new(Health::from_regions((0..n).map(f).collect()));
    let mut v = vec![snap.health.clone()];
    for down in 0..n {
        v.push(with(&|i| RegionHealth {
            up: i != down,
            ..RegionHealth::default()
        }));
    }
    v.push(with(&|_| RegionHealth {
        up: false,
        ..RegionHealth::default()
    }));
    v.push(with(&|i| {
        let r = &snap.model.region(RegionId(i as u16));
        let mut addr_up = vec![true; r.v4.len() + r.v6.len()];
        if let Some(first) = addr_up.first_mut() {
            *first = false;
        }
        RegionHealth {
            addr_up,
            ..RegionHealth::default()
        }
    }));
    v
}

/// The OPT variants of a query.
fn edns_variants() -> Vec<Option<Edns>> {
    let mut v = vec![None];
    let plain = |payload: u16, dnssec_ok: bool| {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_dnssec_ok(dnssec_ok);
        e
    };
    v.push(Some(plain(1232, false)));
    v.push(Some(plain(4096, true)));
    v.push(Some(plain(100, false)));
    for (addr, prefix) in [
        ("81.2.69.0", 24),    // EU
        ("1.0.16.0", 24),     // AS
        ("8.8.8.0", 24),      // NA
        ("41.0.0.0", 20),     // AF, odd prefix
        ("203.0.113.77", 32), // unknown, host bits kept
        ("0.0.0.0", 0),       // "do not use my subnet"
        ("2001:db8:1234::", 56),
        ("2a02:c7f::", 48),
        ("::ffff:81.2.69.0", 120), // IPv4-mapped: the IPv4 subnet, scope + 96
        ("::ffff:0:0", 100),       // mapped, /4 of IPv4
        ("2002:5102:4500::", 40),  // 6to4
    ] {
        let mut e = plain(1232, false);
        let addr: IpAddr = addr.parse().unwrap();
        e.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
        v.push(Some(e));
    }
    // A COOKIE option, as dig and BIND send: ignored by both paths.
    let mut e = plain(1232, false);
    e.options_mut()
        .insert(EdnsOption::Unknown(10, vec![1, 2, 3, 4, 5, 6, 7, 8]));
    v.push(Some(e));
    v
}

fn query(id: u16, name: &str, qtype: RecordType, edns: Option<&Edns>, rd: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.metadata.checking_disabled = id % 3 == 0;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(e) = edns {
        m.edns = Some(e.clone());
    }
    m.to_vec().unwrap()
}

/// Mixed letter case, as resolvers using DNS 0x20 send.
fn mixed_case(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Runs every query through both paths, each against its own runtime (counters and, with
/// `server.rate_limit`, limiter), and checks that they reply alike, rate limiting
/// included, and count alike; checks that `expected` = (fast, total): how many of the
/// queries the fast path answered, of all it sent. The exact count pins which queries
/// the fast path takes: a change to that must change the number on purpose.
fn compare(snap: &Snapshot, names: &[&str], types: &[RecordType], expected: (usize, usize)) {
    let sources: [SocketAddr; 3] = [
        "127.0.0.1:5300".parse().unwrap(),
        "81.2.69.160:5300".parse().unwrap(),
        "[2001:480:10::1]:5300".parse().unwrap(),
    ];
    let (mut fast, mut total) = (0, 0);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for health in healths(snap) {
        let snap = Snapshot {
            health,
            ..snap.clone()
        };
        let (fast_state, general_state) = (snap.clone().into_shared(), snap.clone().into_shared());
        let (fast_view, general_view) = (fast_state.load(), general_state.load());
        for name in names {
            for lower in [true, false] {
                let qname = if lower {
                    name.to_string()
                } else {
                    mixed_case(name)
                };
                for &qtype in types {
                    for (i, edns) in edns_variants().iter().enumerate() {
                        for (j, src) in sources.iter().enumerate() {
                            for tcp in [false, true] {
                                let id = (total % 65536) as u16;
                                let msg = query(id, &qname, qtype, edns.as_ref(), i % 2 == 0);
                                let rnd = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(total as u64 + 1);
                                total += 1;
                                let took =
                                    super::answer(&msg, *src, &fast_view, tcp, rnd, || 0, &mut a);
                                if !took {
                                    continue;
                                }
                                fast += 1;
                                answer_general(&msg, *src, &general_view, tcp, rnd, &mut b);
                                let what = format!(
                                    "{qname} {qtype} edns#{i} src#{j} tcp={tcp} health={:?}",
                                    snap.health
                                );
                                if a.is_empty() || b.is_empty() {
                                    assert_eq!(
                                        a.is_empty(),
                                        b.is_empty(),
                                        "{what}: one path dropped"
                                    );
                                    continue;
                                }
                                same(&a, &b, &what);
                            }
                        }
                    }
                }
            }
        }
        let metrics = |state: &crate::runtime::Shared| {
            let rt = state.runtime();
            let mut s = String::new();
            rt.queries.render(&mut s);
            rt.answers().render(&mut s);
            if let Some(rrl) = rt.rrl() {
                s += &format!("limited {} slipped {}\n", rrl.limited(), rrl.slipped());
            }
            s
        };
        assert_eq!(
            metrics(&fast_state),
            metrics(&general_state),
            "both paths count alike"
        );
    }
    assert_eq!((fast, total), expected, "fast path taken of all queries");
}

fn same(fast: &[u8], general: &[u8], what: &str) {
    if let Err(e) = compare::same_reply(fast, general) {
        panic!("{what}: {e}");
    }
}

/// Whether the fast path takes this one query (a fresh snapshot, no ECS).
fn takes(snap: &Snapshot, name: &str, qtype: RecordType, edns: Option<&Edns>) -> bool {
    let msg = query(1, name, qtype, edns, false);
    let src = "127.0.0.1:5300".parse().unwrap();
    let state = snap.clone().into_shared();
    super::answer(&msg, src, &state.load(), false, 1, || 0, &mut Vec::new())
}

const TYPES: [RecordType; 9] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::TXT,
    RecordType::MX,
    RecordType::NS,
    RecordType::SOA,
    RecordType::CNAME,
    RecordType::DS,
    RecordType::CAA,
];

#[test]
fn example_deployment_fast_replies_equal_general_replies() {
    let snap = example();
    let names = [
        "gslb.example.com",
        "www.gslb.example.com",
        "api.gslb.example.com",
        "edge.gslb.example.com",
        "db.gslb.example.com",
        "static.gslb.example.com",
        "ns1.gslb.example.com",
        "mail.gslb.example.com",
        "shop.gslb.example.com",
        "x.apps.gslb.example.com",
        "apps.gslb.example.com",
        "lab.gslb.example.com",
        "ns1.lab.gslb.example.com",
        "nope.gslb.example.com",
        "deep.nope.gslb.example.com",
        "nope.www.gslb.example.com",
        "example.com",
        "other.test",
    ];
    // Most of these are everyday queries.
    compare(&snap, &names, &TYPES, (124_416, 186_624));
}

#[test]
fn signed_example_fast_replies_equal_general_replies() {
    // With [dnssec], DO=1 queries (the 4096-byte variant) get the signed twins of the
    // templates and the precomputed signatures of dynamic answers; the general path
    // signs the same RRsets from the same stores.
    let (_dir, snap) = signed_example();
    let names = [
        "gslb.example.com",
        "www.gslb.example.com",
        "api.gslb.example.com",
        "edge.gslb.example.com",
        "db.gslb.example.com",
        "static.gslb.example.com",
        "mail.gslb.example.com",
        "apps.gslb.example.com",
        "lab.gslb.example.com",
        "nope.gslb.example.com",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
        RecordType::DNSKEY,
        RecordType::CDS,
        RecordType::DS,
    ];
    compare(&snap, &names, &types, (72_024, 80_640));
}

#[test]
fn rate_limited_fast_replies_equal_general_replies() {
    // A budget of 3 answers a second per network and kind, every second limited reply
    // slipped: most of these replies are dropped or slipped, by both paths alike.
    let base = example();
    let mut model = (*base.model).clone();
    model.server.rate_limit = Some(crate::model::RateLimit {
        responses_per_second: 3,
        slip: 2,
    });
    let snap = Snapshot {
        model: Arc::new(model),
        ..base
    };
    let names = [
        "www.gslb.example.com",
        "static.gslb.example.com",
        "nope.gslb.example.com",
    ];
    compare(
        &snap,
        &names,
        &[RecordType::A, RecordType::TXT],
        (6_912, 6_912),
    );
    let state = snap.into_shared();
    let view = state.load();
    let msg = query(1, "www.gslb.example.com", RecordType::A, None, false);
    let src: SocketAddr = "192.0.2.1:5300".parse().unwrap();
    let mut kinds = [0; 3];
    for _ in 0..40 {
        let mut out = Vec::new();
        assert!(super::answer(&msg, src, &view, false, 1, || 0, &mut out));
        kinds[match out.get(2) {
            None => 0,
            Some(f) if f & 0x02 != 0 => 1,
            Some(_) => 2,
        }] += 1;
    }
    assert_eq!(
        kinds,
        [19, 18, 3],
        "[dropped, slipped, answered] within one second"
    );
}

#[test]
fn test_zone_fast_replies_equal_general_replies() {
    let (_dir, snap) = test_zone();
    let names = [
        "gslb.test",
        "static.gslb.test",
        "multi.gslb.test",
        "alias.gslb.test",
        "towww.gslb.test",
        "host.ent.gslb.test",
        "ent.gslb.test",
        "a.wild.gslb.test",
        "exists.wild.gslb.test",
        "*.wild.gslb.test",
        "ns.sub.gslb.test",
        "x.sub.gslb.test",
        "mx.gslb.test",
        "www.gslb.test",
        "db.gslb.test",
        "x.pool.gslb.test",
        "big.gslb.test",
        "huge.gslb.test",
        "missing.gslb.test",
        "a.b.missing.gslb.test",
    ];
    compare(&snap, &names, &TYPES, (145_152, 207_360));
}

#[test]
fn cname_regions_fast_replies_equal_general_replies() {
    let config = format!(
        "{}\n[regions.cloud]\ncname = \"eu-west-1.lb.CLOUD.example.\"\n\
         [regions.local]\ncname = \"static.gslb.test.\"\n\
         [records.\"lb.gslb.test\"]\npolicy = \"failover\"\nregions = [\"cloud\", \"us-east\"]\n\
         [records.\"inner.gslb.test\"]\npolicy = \"failover\"\nregions = [\"local\", \"us-east\"]\n\
         [records.\"all.gslb.test\"]\npolicy = \"failover\"\nregions = [\"cloud\", \"us-east\"]\n\
         when_all_down = \"all\"\n",
        include_str!("../../tests/fixtures/it/gslb.toml")
    );
    let (_dir, snap) = deployment(&config);
    let names = [
        "lb.gslb.test",
        "inner.gslb.test",
        "all.gslb.test",
        "www.gslb.test",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::MX,
    ];
    // With the health variants, cloud and local are up, down, or every region is down.
    compare(&snap, &names, &types, (25_344, 30_720));
}

#[path = "../../tests/support/everyday.rs"]
#[allow(unreachable_pub)]
mod everyday;
#[path = "../../tests/support/signed.rs"]
mod signed;

#[test]
fn everyday_queries_take_the_fast_path() {
    let snap = example();
    let mut ecs = Edns::new();
    ecs.options_mut()
        .insert(EdnsOption::Subnet(ClientSubnet::new(
            "81.2.69.0".parse().unwrap(),
            24,
            0,
        )));
    for (name, qtype) in everyday::EVERYDAY {
        for edns in [None, Some(&ecs)] {
            assert!(takes(&snap, name, qtype, edns), "{name} {qtype} {edns:?}");
        }
    }
    for (name, qtype) in [
        ("shop.gslb.example.com", RecordType::A),    // CNAME
        ("x.apps.gslb.example.com", RecordType::A),  // wildcard
        ("lab.gslb.example.com", RecordType::A),     // delegation
        ("ns1.lab.gslb.example.com", RecordType::A), // below it
        ("example.com", RecordType::A),              // not ours
        ("www.gslb.example.com", RecordType::ANY),
        ("gslb.example.com", RecordType::AXFR),
    ] {
        assert!(!takes(&snap, name, qtype, None), "{name} {qtype}");
    }
}

#[test]
fn unusual_queries_are_left_to_the_general_path() {
    let snap = example();
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let base = query(7, "www.gslb.example.com", RecordType::A, None, false);
    let mut out = Vec::new();
    let state = snap.into_shared();
    let snap = state.load();
    assert!(super::answer(&base, src, &snap, false, 1, || 0, &mut out));
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("response", {
            let mut m = base.clone();
            m[2] |= 0x80;
            m
        }),
        ("opcode NOTIFY", {
            let mut m = base.clone();
            m[2] |= 4 << 3;
            m
        }),
        ("two questions", {
            let mut m = base.clone();
            m[5] = 2;
            m
        }),
        ("trailing byte", {
            let mut m = base.clone();
            m.push(0);
            m
        }),
        ("short", base[..base.len() - 1].to_vec()),
        ("class CH", {
            let mut m = base.clone();
            let n = m.len();
            m[n - 1] = 3;
            m
        }),
        ("compressed name", {
            let mut m = base[..12].to_vec();
            m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
            m
        }),
        ("EDNS version 1", {
            let mut e = Edns::new();
            e.set_version(1);
            query(7, "www.gslb.example.com", RecordType::A, Some(&e), false)
        }),
        ("NSID", {
            let mut e = Edns::new();
            e.options_mut().insert(EdnsOption::Unknown(3, vec![]));
            query(7, "www.gslb.example.com", RecordType::A, Some(&e), false)
        }),
        ("ECS scope set", {
            let mut e = Edns::new();
            let cs = ClientSubnet::new("81.2.69.0".parse().unwrap(), 24, 8);
            e.options_mut().insert(EdnsOption::Subnet(cs));
            query(7, "www.gslb.example.com", RecordType::A, Some(&e), false)
        }),
    ];
    for (what, msg) in variants {
        assert!(
            !super::answer(&msg, src, &snap, false, 1, || 0, &mut out),
            "{what}"
        );
    }
    // ECS whose address is longer than its prefix says.
    let mut e = Edns::new();
    e.options_mut().insert(EdnsOption::Unknown(
        u16::from(EdnsCode::Subnet),
        vec![0, 1, 24, 0, 81, 2, 69, 1],
    ));
    let msg = query(7, "www.gslb.example.com", RecordType::A, Some(&e), false);
    assert!(!super::answer(&msg, src, &snap, false, 1, || 0, &mut out));
}
