//! Micro-benchmarks of the query path, stage by stage, on the example deployment
//! (`gslb.toml`, `zones/`, `geoip/sample.mmdb`):
//!
//! - `parse`: the fast path's wire reader against hickory-proto's decoder;
//! - `classify`: the prebuilt wire index lookup;
//! - `geoip`: `GeoDb::locate` over 4096 addresses per kind;
//! - `policy`: `policy::select` for geo, weighted and latency records, and the whole
//!   dynamic decision (`decide::decide`: GeoIP, select, addresses);
//! - `encode`: a whole answer by the fast path against the general path;
//! - `request`: `answer_datagram`, bytes in to bytes out, for 4096 ECS queries from every
//!   continent (the `geo-ecs-mix` workload of `bench/run.py`);
//! - `counters`: the two counts of a dynamic answer (query by rcode and type, answer by
//!   record and region), alone and while another thread counts the same answers, as a
//!   second UDP worker does on another core.
//!
//! `cargo bench --bench query_path`, or one group: `cargo bench --bench query_path -- geoip`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use gslbd::decide::decide;
use gslbd::geo::Location;
use gslbd::model::RecordId;
use gslbd::policy::{self, Client, Family, Pick};
use gslbd::server::{answer_datagram, answer_general};
use gslbd::snapshot::Snapshot;
use gslbd::zone::wire::Lookup;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;

/// Queries per loop in the `geoip` and `request` groups.
const MIX: usize = 4096;

fn example() -> Snapshot {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("gslb.toml");
    Snapshot::load(&config).expect("example deployment loads")
}

fn src() -> SocketAddr {
    "127.0.0.1:5300".parse().unwrap()
}

/// A query as a resolver sends it: EDNS with a 1232-byte payload, optionally ECS.
fn query(id: u16, name: &str, qtype: RecordType, ecs: Option<(IpAddr, u8)>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some((addr, prefix)) = ecs {
        e.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
    }
    m.edns = Some(e);
    m.to_vec().unwrap()
}

/// The three everyday cases: a geo name with ECS, a static A, a name that does not exist.
fn cases() -> [(&'static str, Vec<u8>); 3] {
    let eu: IpAddr = "81.2.69.0".parse().unwrap();
    [
        (
            "geo_ecs",
            query(1, "www.gslb.example.com.", RecordType::A, Some((eu, 24))),
        ),
        (
            "static",
            query(2, "static.gslb.example.com.", RecordType::A, None),
        ),
        (
            "nxdomain",
            query(3, "nope.gslb.example.com.", RecordType::A, None),
        ),
    ]
}

// A fixed-seed xorshift64*, shared with tests/it/fuzzish.rs: the same inputs on every run.
#[path = "../tests/support/rng.rs"]
mod rng;
use rng::Rng;

/// Client /24s like `bench/run.py`'s `ecs_queries`: networks of `geoip/sample.csv` from
/// every continent (weighted), and a quarter from space not in the database.
fn mix_subnets(n: usize) -> Vec<Ipv4Addr> {
    let pools: [(&[u8], u64); 13] = [
        (&[81, 2], 40),
        (&[198, 51, 100], 5),
        (&[89, 160, 20], 5),
        (&[1, 0, 16], 10),
        (&[203, 0, 113], 5),
        (&[175, 16, 199], 10),
        (&[8, 8, 8], 10),
        (&[216, 160, 83], 5),
        (&[192, 0, 2], 5),
        (&[103, 1, 1], 5),
        (&[200, 160], 5),
        (&[41, 0, 0], 5),
        (&[], 25),
    ];
    let total: u64 = pools.iter().map(|(_, w)| w).sum();
    let mut rng = Rng(7);
    (0..n)
        .map(|_| {
            let mut pick = rng.below(total as usize) as u64;
            let (prefix, _) = pools
                .iter()
                .find(|(_, w)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .unwrap();
            let o = match *prefix {
                [] => [11 + rng.below(89) as u8, rng.byte(), rng.byte()],
                [200, 160] => [200, 160, rng.below(16) as u8],
                [a, b] => [*a, *b, rng.byte()],
                [a, b, c] => [*a, *b, *c],
                _ => unreachable!(),
            };
            Ipv4Addr::new(o[0], o[1], o[2], 0)
        })
        .collect()
}

/// Where [`v4_mix`] draws addresses from: leading octets, then `and` and `or` for the
/// last octet (the octets in between are random).
type V4Net = (&'static [u8], u8, u8);

/// MIX IPv4 addresses, taking the networks of `nets` in turn.
fn v4_mix(rng: &mut Rng, nets: &[V4Net]) -> Vec<IpAddr> {
    (0..MIX)
        .map(|i| {
            let (lead, and, or) = nets[i % nets.len()];
            let mut o = [0u8; 4];
            for (k, b) in o.iter_mut().enumerate() {
                *b = lead.get(k).copied().unwrap_or_else(|| rng.byte());
            }
            o[3] = o[3] & and | or;
            IpAddr::V4(Ipv4Addr::from(o))
        })
        .collect()
}

fn mix_queries() -> Vec<Vec<u8>> {
    mix_subnets(MIX)
        .into_iter()
        .enumerate()
        .map(|(i, net)| {
            query(
                i as u16,
                "www.gslb.example.com.",
                RecordType::A,
                Some((IpAddr::V4(net), 24)),
            )
        })
        .collect()
}

fn record(snap: &Snapshot, name: &str) -> RecordId {
    let i = snap.model.records.iter().position(|r| r.name == name);
    RecordId(i.unwrap_or_else(|| panic!("{name} is a dynamic record")) as u32)
}

fn ecs_client(addr: &str, prefix: u8) -> Client {
    Client {
        addr: addr.parse().unwrap(),
        source_prefix: Some(prefix),
    }
}

/// Short groups: `cargo bench --bench query_path` takes about two minutes on 2 vCPU.
fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, msg) in cases() {
        let mut key = [0; gslbd::fast::query::MAX_NAME];
        assert!(
            gslbd::fast::query::parse(&msg, &mut key).is_some(),
            "{name}: fast"
        );
        g.bench_function(format!("fast/{name}"), |b| {
            b.iter(|| gslbd::fast::query::parse(black_box(&msg), &mut key).map(|q| q.qtype))
        });
    }
    let [(name, msg), ..] = cases();
    g.bench_function(format!("hickory_message/{name}"), |b| {
        b.iter(|| Message::from_vec(black_box(&msg)).unwrap())
    });
    g.bench_function(format!("hickory_request/{name}"), |b| {
        b.iter(|| Request::from_bytes(black_box(&msg).to_vec(), src(), Protocol::Udp).unwrap())
    });
    g.finish();
}

fn classify(c: &mut Criterion) {
    let snap = example();
    let wire = snap.zones.wire();
    let mut g = c.benchmark_group("classify");
    for (name, msg) in cases() {
        let mut key = [0; gslbd::fast::query::MAX_NAME];
        let q = gslbd::fast::query::parse(&msg, &mut key).unwrap();
        match (name, wire.lookup(q.key(), q.qtype)) {
            ("geo_ecs", Lookup::Dynamic(..))
            | ("static", Lookup::Static(_))
            | ("nxdomain", Lookup::NxDomain(_)) => {}
            (_, other) => panic!("{name}: {other:?}"),
        }
        g.bench_function(name, |b| {
            b.iter(|| matches!(wire.lookup(black_box(q.key()), q.qtype), Lookup::General))
        });
    }
    g.finish();
}

fn geoip(c: &mut Criterion) {
    let snap = example();
    let db = snap.geo.clone().expect("the example has a GeoIP database");
    let mut rng = Rng(42);
    let v4 = |a: u8, b: u8, c: u8, d: u8| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    // Per kind, MIX addresses in different /24s (or /48s) where the sample database's
    // networks have room for them, so that neither the tree walk nor the decode cache
    // sees one address over and over.
    let mut sets: Vec<(&str, Vec<IpAddr>)> = Vec::new();
    // (leading octets, then random ones; the last octet masked with `and` and `or`-ed).
    let any = 0xFF;
    let eu: &[V4Net] = &[(&[198, 51, 100], any, 0), (&[89, 160, 20], 0x7F, 128)];
    let uk: &[V4Net] = &[(&[81, 2][..], any, 0); 6];
    sets.push(("v4_eu", v4_mix(&mut rng, &[eu, uk].concat())));
    let as_: &[V4Net] = &[
        (&[1, 0, 16], any, 0),
        (&[175, 16, 199], any, 0),
        (&[203, 0, 113], any, 0),
    ];
    sets.push(("v4_as", v4_mix(&mut rng, as_)));
    let na: &[V4Net] = &[
        (&[8, 8, 8], any, 0),
        (&[192, 0, 2], any, 0),
        (&[216, 160, 83], 7, 56),
    ];
    sets.push(("v4_na", v4_mix(&mut rng, na)));
    sets.push((
        "v6",
        (0..MIX)
            .map(|i| {
                let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
                let net: u128 = match i % 4 {
                    0 => 0x2a02_d3c0 << 96 | (r & ((1 << 99) - 1)), // /29, EU
                    1 => 0x2001_0218 << 96 | (r & ((1 << 96) - 1)), // /32, AS
                    2 => 0x2001_0480 << 96 | (r & ((1 << 96) - 1)), // /32, NA
                    _ => (0x2001_0db8_0001 + (r % 6)) << 80,        // /48s of 2001:db8
                };
                IpAddr::V6(Ipv6Addr::from(net))
            })
            .collect(),
    ));
    sets.push((
        "not_found",
        (0..MIX)
            .map(|_| {
                loop {
                    let a = 11 + rng.below(89) as u8;
                    if ![41, 81, 89].contains(&a) {
                        break v4(a, rng.byte(), rng.byte(), 0);
                    }
                }
            })
            .collect(),
    ));
    sets.push((
        "ecs_mix",
        mix_subnets(MIX).into_iter().map(IpAddr::V4).collect(),
    ));
    let mut g = c.benchmark_group("geoip");
    g.throughput(Throughput::Elements(MIX as u64));
    for (name, addrs) in &sets {
        let found = addrs.iter().filter(|a| db.locate(**a).found()).count();
        match *name {
            "not_found" => assert_eq!(found, 0, "{name}"),
            "ecs_mix" => assert!(found > MIX / 2, "{name}: {found}"),
            _ => assert_eq!(found, MIX, "{name}"),
        }
        g.bench_function(*name, |b| {
            b.iter(|| {
                for a in addrs {
                    black_box(db.locate(black_box(*a)));
                }
            })
        });
    }
    g.finish();
}

fn policy(c: &mut Criterion) {
    let snap = example();
    let db = snap.geo.clone().unwrap();
    let cases = [
        ("geo", "www.gslb.example.com.", ecs_client("81.2.69.0", 24)),
        (
            "weighted",
            "api.gslb.example.com.",
            ecs_client("81.2.69.0", 24),
        ),
        // EU has a `[latency]` row; Asia is ranked by distance from its coordinates.
        (
            "latency_table",
            "edge.gslb.example.com.",
            ecs_client("81.2.69.0", 24),
        ),
        (
            "latency_distance",
            "edge.gslb.example.com.",
            ecs_client("1.0.16.0", 24),
        ),
    ];
    let mut g = c.benchmark_group("policy");
    for (name, rec, client) in cases {
        let rec = &snap.model.records[record(&snap, rec).index()];
        let loc = if rec.policy.needs_location() {
            db.locate(client.addr)
        } else {
            Location::default()
        };
        let pick = policy::select(&snap.model, &snap.health, rec, &client, &loc, Family::V4, 1);
        assert!(matches!(pick.pick, Pick::Region(_)), "{name}: {pick:?}");
        let mut rng = Rng(9);
        g.bench_function(name, |b| {
            b.iter(|| {
                policy::select(
                    &snap.model,
                    &snap.health,
                    rec,
                    black_box(&client),
                    black_box(&loc),
                    Family::V4,
                    rng.next(),
                )
                .pick
            })
        });
    }
    // The whole decision of the fast and general paths for a geo name: GeoIP lookup,
    // select, the up addresses, rotated.
    let www = record(&snap, "www.gslb.example.com.");
    let client = ecs_client("81.2.69.0", 24);
    let mut rng = Rng(10);
    g.bench_function("decide/geo", |b| {
        b.iter(|| {
            let rnd = rng.next();
            let d = decide(www, RecordType::A, &snap, black_box(&client), rnd);
            let n: u32 = d
                .rotated(rnd)
                .map(|a| u32::from(black_box(a).is_ipv4()))
                .sum();
            (d.scope, n)
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let state = example().into_shared();
    let snap = state.load();
    let mut g = c.benchmark_group("encode");
    let mut out = Vec::with_capacity(1232);
    for (name, msg) in cases() {
        let took = gslbd::fast::answer(&msg, src(), &snap, false, 1, || 0, &mut out);
        assert!(took && !out.is_empty(), "{name}: the fast path answers it");
        let mut rng = Rng(11);
        g.bench_function(format!("fast/{name}"), |b| {
            b.iter(|| {
                gslbd::fast::answer(
                    black_box(&msg),
                    src(),
                    &snap,
                    false,
                    rng.next(),
                    || 0,
                    &mut out,
                )
            })
        });
        g.bench_function(format!("general/{name}"), |b| {
            b.iter(|| {
                answer_general(black_box(&msg), src(), &snap, false, rng.next(), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

fn request(c: &mut Criterion) {
    let shared = example().into_shared();
    let snap = shared.load();
    let queries = mix_queries();
    let mut out = Vec::with_capacity(1232);
    for q in &queries {
        answer_datagram(q, src(), &shared, &mut out);
        assert!(!out.is_empty());
        let mut fast = Vec::new();
        assert!(
            gslbd::fast::answer(q, src(), &snap, false, 1, || 0, &mut fast),
            "the mix takes the fast path"
        );
    }
    let mut g = c.benchmark_group("request");
    // One iteration is 4096 queries (milliseconds): equal-sized samples fit 3 s.
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(MIX as u64));
    g.bench_function("ecs_mix", |b| {
        b.iter(|| {
            for q in &queries {
                answer_datagram(black_box(q), src(), &shared, &mut out);
                black_box(&out);
            }
        })
    });
    let mut rng = Rng(13);
    g.bench_function("ecs_mix_general", |b| {
        b.iter(|| {
            for q in &queries {
                answer_general(black_box(q), src(), &snap, false, rng.next(), &mut out);
                black_box(&out);
            }
        })
    });
    g.finish();
}

fn counters(c: &mut Criterion) {
    let snap = example().into_shared();
    let rec = record(&snap.snapshot(), "www.gslb.example.com.");
    let count = move |state: &gslbd::Shared| {
        let view = state.load();
        view.queries().count(false, 0, 1);
        view.count_answer(rec, Some(gslbd::model::RegionId(0)));
    };
    let mut g = c.benchmark_group("counters");
    g.bench_function("alone", |b| b.iter(|| count(black_box(&snap))));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (snap, stop) = (snap.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..1024 {
                    count(black_box(&snap));
                }
            }
        })
    };
    g.bench_function("beside_a_counting_thread", |b| {
        b.iter(|| count(black_box(&snap)))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    other.join().unwrap();
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse, classify, geoip, policy, encode, request, counters
}
criterion_main!(benches);
