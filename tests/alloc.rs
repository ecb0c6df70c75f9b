//! The steady-state UDP query path allocates nothing: every everyday query — static,
//! NODATA, NXDOMAIN, and dynamic names of every policy, with and without EDNS Client
//! Subnet — goes from request bytes to reply bytes through the public entry point
//! (`answer_datagram`) without touching the heap. Counted by a global allocator that
//! counts per thread (so other tests running in parallel do not disturb it).
//!
//! The same with dnstap configured and no collector: exchanges are queued, then dropped
//! and counted, without allocating either.
//!
//! The same allocator counts bytes: a zone of many simple names is held in a bounded
//! number of bytes per name, loading it needs a bounded number more, and `geoip build`
//! a small multiple of the file it writes (the figures of whole processes are
//! `bench/memory.py`'s).
//!
//! Its own test binary: a counting allocator is global to the binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use gslbd::Shared;
use gslbd::geo::GeoDb;
use gslbd::model::{Dnstap, DnstapDest};
use gslbd::server::answer_datagram;
use gslbd::snapshot::Snapshot;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Bytes this thread holds (allocated less freed), and the most it held since reset.
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn count(bytes: i64) {
    // `try_with`: the allocator may run while this thread's locals are torn down.
    if bytes > 0 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    }
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + bytes);
        let _ = PEAK.try_with(|p| p.set(p.get().max(live.get())));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        count(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by this thread while running `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// What `f` returns, the bytes this thread holds more after it (what it returned holds)
/// and the most it held more while it ran.
fn bytes<T>(f: impl FnOnce() -> T) -> (T, i64, i64) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let out = f();
    (
        out,
        LIVE.with(Cell::get) - before,
        PEAK.with(Cell::get) - before,
    )
}

fn query(name: &str, qtype: RecordType, ecs: Option<(&str, u8)>, edns: bool) -> Vec<u8> {
    query_do(name, qtype, ecs, edns, false)
}

fn query_do(
    name: &str,
    qtype: RecordType,
    ecs: Option<(&str, u8)>,
    edns: bool,
    dnssec_ok: bool,
) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns || ecs.is_some() || dnssec_ok {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.set_dnssec_ok(dnssec_ok);
        if let Some((addr, prefix)) = ecs {
            let addr: IpAddr = addr.parse().unwrap();
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
        }
        m.edns = Some(e);
    }
    m.to_vec().unwrap()
}

/// Client subnets on every continent of the sample database, and outside it.
const SUBNETS: [(&str, u8); 10] = [
    ("81.2.69.0", 24),
    ("1.0.16.0", 24),
    ("8.8.8.0", 24),
    ("41.0.0.0", 24),
    ("103.1.1.0", 24),
    ("200.1.2.0", 24),
    ("203.0.113.0", 24),
    ("2001:db8:1234::", 56),
    ("2a02:c7f::", 48),
    ("0.0.0.0", 0),
];

#[path = "support/everyday.rs"]
mod everyday;
#[path = "support/signed.rs"]
mod signed;

fn workload() -> Vec<(String, Vec<u8>)> {
    let mut w = Vec::new();
    let mut add = |what: String, msg: Vec<u8>| w.push((what, msg));
    for (name, qtype) in everyday::EVERYDAY {
        for edns in [false, true] {
            add(
                format!("{name} {qtype} edns={edns}"),
                query(name, qtype, None, edns),
            );
        }
    }
    for name in ["www", "api", "edge", "db"] {
        let name = format!("{name}.gslb.example.com");
        for qtype in [RecordType::A, RecordType::AAAA] {
            add(format!("{name} {qtype}"), query(&name, qtype, None, false));
            for ecs in SUBNETS {
                add(
                    format!("{name} {qtype} ecs={ecs:?}"),
                    query(&name, qtype, Some(ecs), true),
                );
            }
        }
    }
    w
}

/// The workload with DO=1, for a signed deployment: everything but the names that do
/// not exist (their compact denial is signed per name, on the general path).
fn signed_workload() -> Vec<(String, Vec<u8>)> {
    let mut w = Vec::new();
    for (name, qtype) in everyday::EVERYDAY {
        if !name.contains("nope.") {
            w.push((
                format!("{name} {qtype} DO"),
                query_do(name, qtype, None, true, true),
            ));
        }
    }
    for name in ["www", "api", "edge", "db"] {
        let name = format!("{name}.gslb.example.com");
        for qtype in [RecordType::A, RecordType::AAAA] {
            for ecs in SUBNETS {
                w.push((
                    format!("{name} {qtype} ecs={ecs:?} DO"),
                    query_do(&name, qtype, Some(ecs), true, true),
                ));
            }
        }
    }
    w
}

fn example() -> Snapshot {
    Snapshot::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("gslb.toml")).unwrap()
}

#[test]
fn the_everyday_udp_path_does_not_allocate() {
    assert_no_allocations(&example().into_shared(), 1);
}

#[test]
fn with_dnstap_and_no_collector_the_udp_path_does_not_allocate() {
    // Every exchange is copied into the dnstap queue until it is full (nothing drains
    // it: the writer cannot connect), then dropped and counted: neither allocates.
    let dir = tempfile::tempdir().unwrap();
    let snap = example();
    let mut model = (*snap.model).clone();
    model.server.dnstap = Some(Dnstap {
        dest: DnstapDest::Unix(dir.path().join("nobody.sock")),
        sample: 1.0,
    });
    let shared = Snapshot {
        model: Arc::new(model),
        ..snap
    }
    .into_shared();
    // Enough rounds to fill the queue (1032 exchanges) and go on past it.
    let per_round = (workload().len() * 2) as u64;
    let rounds = 1032 / per_round + 2;
    assert_no_allocations(&shared, rounds);
    let tap = &shared.runtime().dnstap;
    assert_eq!(tap.sent(), 0);
    // The warm-up round and `rounds` more, two events each, less what the queue holds.
    let events = 2 * (per_round * (rounds + 1) - 1032);
    assert_eq!(tap.dropped(), events);
}

/// Answers the workload from IPv4 and IPv6 (once to warm up, then `rounds` times),
/// asserting that no answer allocates and that each is as expected.
fn assert_no_allocations(shared: &Shared, rounds: u64) {
    assert_workload_does_not_allocate(shared, rounds, &workload());
}

fn assert_workload_does_not_allocate(shared: &Shared, rounds: u64, work: &[(String, Vec<u8>)]) {
    let signed = work.iter().any(|(w, _)| w.ends_with(" DO"));
    let sources: [SocketAddr; 2] = [
        "127.0.0.1:40000".parse().unwrap(),
        "[::1]:40000".parse().unwrap(),
    ];
    let mut out = Vec::with_capacity(1232);
    // Warm up: thread-local caches (GeoIP decode cache, arc-swap's debt list) fill once.
    for (_, msg) in work {
        for src in sources {
            answer_datagram(msg, src, shared, &mut out);
        }
    }
    for (what, msg) in (0..rounds).flat_map(|_| work) {
        for src in sources {
            let n = allocations(|| answer_datagram(msg, src, shared, &mut out));
            assert_eq!(n, 0, "{what} from {src}: {n} allocations");
            // And it was answered, as expected.
            let reply = Message::from_vec(&out).unwrap();
            let nx = what.contains("nope.");
            let rcode = if nx {
                ResponseCode::NXDomain
            } else {
                ResponseCode::NoError
            };
            assert_eq!(reply.metadata.response_code, rcode, "{what}");
            assert!(reply.metadata.authoritative, "{what}");
            let has_data = ["static", " MX", " NS", " SOA", ".gslb.example.com A"];
            if has_data.iter().any(|d| what.contains(d)) && !nx {
                assert!(!reply.answers.is_empty(), "{what}");
            }
            if signed {
                // Every section's data is signed: an RRSIG in the answer, or with the
                // NSEC of a NODATA in the authority section.
                let rrsigs = reply
                    .answers
                    .iter()
                    .chain(&reply.authorities)
                    .filter(|r| r.record_type() == RecordType::RRSIG)
                    .count();
                assert!(rrsigs > 0, "{what}: no RRSIG");
            }
        }
    }
}

#[test]
fn signed_answers_to_do_queries_do_not_allocate() {
    // The example deployment with [dnssec]: zones and GeoIP from the repository, a key
    // made for this test.
    let dir = tempfile::tempdir().unwrap();
    let config = signed::signed_example_config(dir.path());
    gslbd::dnssec::tool::keygen(&config, None, false).unwrap();
    let shared = Snapshot::load(&config).unwrap().into_shared();
    assert_workload_does_not_allocate(&shared, 1, &signed_workload());
}

#[test]
fn the_counter_sees_allocations() {
    // The test above would pass with a counter that never counts.
    let n = allocations(|| drop(std::hint::black_box(vec![1u8; 10])));
    assert_eq!(n, 1);
    // The general path (here: a CNAME, which it answers) does allocate.
    let shared = example().into_shared();
    let msg = query("shop.gslb.example.com", RecordType::A, None, false);
    let mut out = Vec::with_capacity(1232);
    let src = "127.0.0.1:40000".parse().unwrap();
    answer_datagram(&msg, src, &shared, &mut out);
    assert!(allocations(|| answer_datagram(&msg, src, &shared, &mut out)) > 0);
}

#[test]
fn decoding_a_geoip_record_does_not_allocate() {
    // A database opened anew has an empty decode cache: every lookup decodes.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample.mmdb");
    let warm = GeoDb::open(&path).unwrap();
    let addrs: Vec<IpAddr> = SUBNETS.iter().map(|(a, _)| a.parse().unwrap()).collect();
    for a in &addrs {
        warm.locate(*a);
    }
    let cold = GeoDb::open(&path).unwrap();
    for a in &addrs {
        let n = allocations(|| {
            std::hint::black_box(cold.locate(*a));
        });
        assert_eq!(n, 0, "{a}");
    }
    assert!(
        cold.locate("81.2.69.160".parse().unwrap())
            .subdivision
            .is_some()
    );
}

#[test]
fn a_zone_of_many_simple_names_takes_little_memory_per_name() {
    // 20,000 names with one A record each, in one zone, and one dynamic name.
    const N: i64 = 20_000;
    let mut text = String::from(
        "$ORIGIN big.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 604800 60\n\
         @ IN NS ns1\nns1 IN A 192.0.2.53\n",
    );
    for i in 0..N {
        let (a, b) = (i >> 8 & 255, i & 255);
        text.push_str(&format!("h{i} IN A 10.0.{a}.{b}\n"));
    }
    let config = "[server]\nlisten = [\"127.0.0.1:0\"]\nzones = \"zones\"\n\
                  [regions.one]\naddresses = [\"192.0.2.10\"]\n\
                  [records.\"www.big.test\"]\npolicy = \"failover\"\n";
    let model = gslbd::config::parse(config, Path::new("gslb.toml")).unwrap();
    let origin = Name::from_ascii("big.test.").unwrap();
    let path = Path::new("zones/big.test.zone");
    let (snap, held, peak) = bytes(|| {
        let file = gslbd::zone::file::parse_zone(&text, path, &origin).unwrap();
        Snapshot::build(model, vec![file]).unwrap()
    });
    // The served index (general path nodes and the fast path's templates): 975 bytes a
    // name when every name was a hickory `Name` keying hickory `Record`s beside boxed
    // wire templates; 150 now. Loading held 1,286 bytes a name at its peak, with
    // hickory's map of every record; 185 now, parsing a chunk at a time.
    let (held, peak) = (held / N, peak / N);
    assert!(
        held < 200 && peak < 260,
        "{held} bytes per name held, {peak} at the peak"
    );
    // And it answers, from the fast path.
    let shared = snap.into_shared();
    let msg = query("h19999.big.test", RecordType::A, None, false);
    let mut out = Vec::with_capacity(1232);
    let src = "127.0.0.1:40000".parse().unwrap();
    answer_datagram(&msg, src, &shared, &mut out);
    let reply = Message::from_vec(&out).unwrap();
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].data.to_string(), "10.0.78.31");
}

#[test]
fn geoip_build_takes_a_small_multiple_of_its_output() {
    // 10,000 networks, each with its own coordinates (nothing shared, nothing merged).
    let mut csv = String::new();
    for i in 0..5_000u32 {
        let (a, b) = (1 + i / 250, i % 250);
        let (lat, lon) = (f64::from(i % 170) - 80.5, f64::from(i) / 29.0 - 170.25);
        csv.push_str(&format!("{a}.{b}.7.0/24,EU,DE,DE-BY,{lat:.3},{lon:.4}\n"));
        csv.push_str(&format!(
            "2a01:{i:x}::/32,AS,JP,,{:.3},{lon:.4}\n",
            lat + 0.25
        ));
    }
    let path = Path::new("networks.csv");
    let (db, _, peak) =
        bytes(|| gslbd::geoip_build::build_bytes(&csv, path, 0).expect("valid CSV"));
    // 4 times the file; with the `mmdb-writer` crate 177 times: every record a tree of
    // BTreeMaps three times over, and its search tree cloned to be written.
    let times = peak as f64 / db.len() as f64;
    assert!(
        times < 6.0,
        "{peak} bytes at the peak for {} written",
        db.len()
    );
}
