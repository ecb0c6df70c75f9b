//! Property test of the UDP answer path, in process: 20,000 deterministic pseudo-random
//! datagrams through `gslbd::server::answer_datagram` on the test deployment
//! ([`crate::CONFIG`], [`crate::zone_text`]), each reply checked against the invariants the
//! `request` fuzz target checks (`fuzz/src/invariants.rs`, included below): size within
//! the UDP limit, parses, QR=1, same ID, question echoed, OPT and ECS echoed, documented
//! RCODEs.
//!
//! `hostile.rs` sends random and mutated datagrams to the real binary and checks that it
//! keeps serving; this checks every reply, fast enough for every `cargo test` (no sockets,
//! no process). The fuzz targets (`fuzz/README.md`) search the same space far longer.
//!
//! The inputs: random bytes; random bytes behind a plausible query header; valid queries
//! (every kind of name in the zone, with and without EDNS, DO, ECS, other options); and
//! those queries mutated: bit flips, byte insertions and deletions, truncations, counts
//! rewritten, EDNS options with lying lengths, compression pointers at random offsets.
//! Seeds are fixed: a failure names its case and prints the datagram in hex, to save under
//! `fuzz/regressions/request/` and replay with `cargo run --example show` in `fuzz/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use gslbd::health::{Health, RegionHealth};
use gslbd::snapshot::Snapshot;

use crate::harness::Deployment;

#[path = "../../fuzz/src/compare.rs"]
mod compare;
#[path = "../../fuzz/src/invariants.rs"]
mod invariants;

const CASES: usize = 20_000;
const SEED: u64 = 0x5EED_F00D_CAFE_D00D;

use crate::rng::Rng;

/// Names of every kind the test zone and config have, with a type to ask.
const QUESTIONS: &[(&str, u16)] = &[
    ("static.gslb.test.", 1),
    ("static.gslb.test.", 16),
    ("STATIC.Gslb.Test.", 255),
    ("multi.gslb.test.", 1),
    ("alias.gslb.test.", 1),
    ("chain.gslb.test.", 28),
    ("towww.gslb.test.", 1),
    ("away.gslb.test.", 1),
    ("loop1.gslb.test.", 1),
    ("dangling.gslb.test.", 1),
    ("ent.gslb.test.", 1),
    ("host.ent.gslb.test.", 1),
    ("x.y.wild.gslb.test.", 16),
    ("a.wild.gslb.test.", 1),
    ("exists.wild.gslb.test.", 1),
    ("host.sub.gslb.test.", 1),
    ("sub.gslb.test.", 43),
    ("mx.gslb.test.", 15),
    ("big.gslb.test.", 16),
    ("huge.gslb.test.", 16),
    ("www.gslb.test.", 1),
    ("www.gslb.test.", 28),
    ("www.gslb.test.", 255),
    ("db.gslb.test.", 1),
    ("a.b.pool.gslb.test.", 28),
    ("nope.gslb.test.", 1),
    ("gslb.test.", 6),
    ("gslb.test.", 2),
    ("gslb.test.", 252),
    ("example.org.", 1),
    (".", 2),
];

/// Wire form of a name (no compression).
fn name(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in n.split('.').filter(|l| !l.is_empty()) {
        v.push(label.len() as u8);
        v.extend(label.as_bytes());
    }
    v.push(0);
    v
}

/// An EDNS option: code, the length to declare, and the data.
struct EdnsOpt {
    code: u16,
    declared: usize,
    data: Vec<u8>,
}

/// A valid (or, with lying options, almost valid) query.
fn query(rng: &mut Rng) -> Vec<u8> {
    let (qname, qtype) = *rng.pick(QUESTIONS);
    let mut m = Vec::new();
    m.extend((rng.next() as u16).to_be_bytes()); // ID: any
    m.push(if rng.chance(50) { 0x01 } else { 0x00 }); // RD
    m.push(if rng.chance(10) { 0x10 } else { 0x00 }); // CD
    let with_edns = rng.chance(65);
    m.extend([0, 1, 0, 0, 0, 0, 0, u8::from(with_edns)]);
    m.extend(name(qname));
    m.extend(qtype.to_be_bytes());
    m.extend(1u16.to_be_bytes()); // IN
    if with_edns {
        let payload = *rng.pick(&[0u16, 511, 512, 513, 1000, 1232, 1233, 1400, 4096, 65535]);
        let version = if rng.chance(5) { 1 } else { 0 };
        let flags: u16 = if rng.chance(30) { 0x8000 } else { 0 };
        let mut opts = Vec::new();
        if rng.chance(60) {
            opts.push(ecs_option(rng));
        }
        if rng.chance(20) {
            let n = rng.below(40);
            opts.push(EdnsOpt {
                code: *rng.pick(&[10u16, 12, 15, 0xFDE9, 3, 5]), // cookie, padding, ...
                declared: n,
                data: rng.bytes(n),
            });
        }
        if rng.chance(10) {
            // A lying length: shorter or longer than the data.
            if let Some(o) = opts.first_mut() {
                o.declared = rng.below(o.data.len() + 8);
            }
        }
        m.extend([0, 0, 41]);
        m.extend(payload.to_be_bytes());
        m.extend([0, version]);
        m.extend(flags.to_be_bytes());
        let mut rdata = Vec::new();
        for o in &opts {
            rdata.extend(o.code.to_be_bytes());
            rdata.extend((o.declared as u16).to_be_bytes());
            rdata.extend(&o.data);
        }
        let rdlen = if rng.chance(5) {
            rng.below(rdata.len() + 8)
        } else {
            rdata.len()
        };
        m.extend((rdlen as u16).to_be_bytes());
        m.extend(rdata);
    }
    m
}

/// An ECS option: mostly valid (IPv4 or IPv6, prefix fitting the family, address bytes
/// for the prefix), sometimes not (family 3, prefix too long, wrong number of bytes).
fn ecs_option(rng: &mut Rng) -> EdnsOpt {
    let v6 = rng.chance(40);
    let max = if v6 { 128 } else { 32 };
    let source = if rng.chance(5) {
        rng.below(256)
    } else if rng.chance(10) {
        0
    } else {
        rng.below(max + 1)
    };
    let addr: Vec<u8> = if v6 {
        rng.pick(&[
            [0x20, 0x01, 0x02, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [
                0x20, 0x01, 0x0d, 0xb8, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
            ],
            [
                0x2a, 0x02, 0xd3, 0xc0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            ],
        ])
        .to_vec()
    } else {
        rng.pick(&[
            [81, 2, 69, 7],
            [1, 0, 16, 9],
            [8, 8, 8, 8],
            [192, 0, 2, 200],
        ])
        .to_vec()
    };
    let mut n = source.div_ceil(8).min(addr.len());
    if rng.chance(5) {
        n = rng.below(addr.len() + 1);
    }
    let family: u16 = if rng.chance(3) {
        3
    } else if v6 {
        2
    } else {
        1
    };
    let mut data = family.to_be_bytes().to_vec();
    data.push(source as u8);
    data.push(if rng.chance(5) { rng.byte() } else { 0 }); // scope must be 0 in queries
    data.extend(&addr[..n]);
    EdnsOpt {
        code: 8,
        declared: data.len(),
        data,
    }
}

/// One to four mutations of `m`.
fn mutate(rng: &mut Rng, mut m: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let len = m.len();
        match rng.below(9) {
            // Flip a bit.
            0 if len > 0 => {
                let at = rng.below(len);
                m[at] ^= 1 << rng.below(8);
            }
            // Overwrite a byte.
            1 if len > 0 => {
                let at = rng.below(len);
                m[at] = rng.byte();
            }
            // Insert bytes.
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let ins = rng.bytes(n);
                m.splice(at..at, ins);
            }
            // Delete a range.
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(8));
                m.drain(at..at + n);
            }
            // Truncate.
            4 => m.truncate(rng.below(len + 1)),
            // Rewrite a count (QD, AN, NS, AR).
            5 if len >= 12 => {
                let at = 4 + 2 * rng.below(4);
                let v: u16 = *rng.pick(&[0, 1, 2, 3, 0xFF, 0xFFFF]);
                m[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
            // A compression pointer at a random offset, to a random target (often into
            // the header or the question).
            6 if len >= 14 => {
                let at = 12 + rng.below(len - 13);
                let target = if rng.chance(50) {
                    rng.below(len.min(0x3FFF))
                } else {
                    rng.below(0x4000)
                };
                m[at] = 0xC0 | (target >> 8) as u8;
                m[at + 1] = target as u8;
            }
            // Append an OPT record with a random option whose length lies.
            7 => {
                let n = rng.below(12);
                let declared = rng.below(24) as u16;
                m.extend([0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0]);
                m.extend((4 + n as u16).to_be_bytes());
                m.extend(rng.pick(&[8u16, 10, 12, 0xFFFF]).to_be_bytes());
                m.extend(declared.to_be_bytes());
                m.extend(rng.bytes(n));
                if len >= 12 {
                    let ar = u16::from_be_bytes([m[10], m[11]]).wrapping_add(1);
                    m[10..12].copy_from_slice(&ar.to_be_bytes());
                }
            }
            // Flags: opcode, QR, any bit of the second byte.
            _ if len >= 4 => {
                m[2] = rng.byte() & 0x7F;
                if rng.chance(50) {
                    m[3] = rng.byte();
                }
            }
            _ => {}
        }
    }
    m
}

/// The datagram of case `i`.
fn case(rng: &mut Rng, i: usize) -> Vec<u8> {
    match i % 10 {
        // Random bytes.
        0 => {
            let n = rng.below(600);
            rng.bytes(n)
        }
        // Random bytes behind a query header (QR=0, QDCOUNT 1).
        1 => {
            let n = rng.below(300);
            let mut m = rng.bytes(2);
            m.extend([rng.byte() & 0x79, rng.byte() & 0x1F, 0, 1, 0, 0, 0, 0, 0, 0]);
            m.extend(rng.bytes(n));
            m
        }
        // Valid queries.
        2 | 3 => query(rng),
        // Mutated queries.
        _ => {
            let q = query(rng);
            mutate(rng, q)
        }
    }
}

#[test]
fn answer_datagram_keeps_its_invariants() {
    let dep = Deployment::new(crate::CONFIG, &[("gslb.test.zone", &crate::zone_text())]);
    let base = Snapshot::load(&dep.config()).unwrap_or_else(|e| panic!("{e}"));
    // All up; and eu-west down with ap-south drained (www fails over, *.pool has no
    // usable region and fails open).
    let degraded = Health::from_regions(vec![
        RegionHealth::default(),
        RegionHealth {
            up: false,
            ..RegionHealth::default()
        },
        RegionHealth {
            drained: true,
            ..RegionHealth::default()
        },
    ]);
    let states: Vec<_> = [None, Some(degraded)]
        .into_iter()
        .map(|h| {
            let mut s = base.clone();
            if let Some(h) = h {
                s.health = Arc::new(h);
            }
            s.into_shared()
        })
        .collect();
    let sources: Vec<SocketAddr> = [
        "127.0.0.1:40000",
        "81.2.69.7:53000",
        "[2001:db8::5]:53000",
        "[::ffff:192.0.2.9]:53000",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();

    let started = Instant::now();
    let mut rng = Rng(SEED);
    let mut out = Vec::with_capacity(1232);
    let mut failures = Vec::new();
    let (mut silent, mut answered, mut truncated) = (0, 0, 0);
    let (mut known, mut known_failing) = (0, 0);
    let mut rcodes = [0usize; 16];
    let (mut fast, mut general, mut fast_taken) = (Vec::new(), Vec::new(), 0);
    for i in 0..CASES {
        let q = case(&mut rng, i);
        let state = &states[i % states.len()];
        let src = sources[(i / states.len()) % sources.len()];
        gslbd::server::answer_datagram(&q, src, state, &mut out);
        if invariants::known_issue(&q).is_some() {
            // Reported, not fixed yet: not a failure here, but counted, to notice the fix.
            known += 1;
            known_failing += usize::from(invariants::check_reply(&q, &out, false).is_err());
            continue;
        }
        if let Err(e) = invariants::check_reply(&q, &out, false) {
            failures.push(format!(
                "case {i} (seed {SEED:#x}) from {src}: {e}\n  query {}\n  reply {}",
                hex(&q),
                hex(&out)
            ));
            continue;
        }
        // Differential: what the fast path answers, the general path answers alike.
        let snap = state.load();
        let rnd = rng.0;
        if gslbd::fast::answer(&q, src, &snap, false, rnd, || 0, &mut fast) {
            fast_taken += 1;
            gslbd::server::answer_general(&q, src, &snap, false, rnd, &mut general);
            if let Err(e) = compare::same_reply(&fast, &general) {
                failures.push(format!(
                    "case {i} (seed {SEED:#x}) from {src}: fast and general paths differ: {e}\n  \
                     query {}",
                    hex(&q)
                ));
                continue;
            }
        }
        if out.len() < 12 {
            silent += 1;
            continue;
        }
        rcodes[usize::from(out[3] & 0x0F)] += 1;
        truncated += usize::from(out[2] & 0x02 != 0);
        answered += usize::from(out[3] & 0x0F == 0 && u16::from_be_bytes([out[6], out[7]]) > 0);
    }
    let took = started.elapsed();
    eprintln!(
        "{CASES} cases in {took:?}: {answered} answers, {truncated} truncated, {silent} silent, \
         {known} with a known issue ({known_failing} still failing), {fast_taken} compared \
         with the fast path; by RCODE {rcodes:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {CASES} replies break an invariant; the first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
    assert!(
        known == 0 || known_failing > 0,
        "the known issues of invariants::known_issue no longer reproduce: \
         delete their arms in fuzz/src/invariants.rs so these inputs are checked again"
    );
    assert!(
        fast_taken > CASES / 20,
        "only {fast_taken} cases took the fast path"
    );
    // The generator must reach the interesting paths, not only FORMERR.
    assert!(
        answered > CASES / 10,
        "only {answered} answers with records"
    );
    assert!(truncated > 100, "only {truncated} truncated replies");
    assert!(rcodes[1] > CASES / 10, "only {} FORMERR", rcodes[1]);
    assert!(rcodes[3] > 100, "only {} NXDOMAIN", rcodes[3]);
    assert!(rcodes[5] > 100, "only {} REFUSED", rcodes[5]);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
