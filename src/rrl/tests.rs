//! Unit tests of `rrl`.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicU64;

const RATE: u32 = 200;

fn limiter(slip: u32) -> Limiter {
    let rate = RateLimit {
        responses_per_second: RATE,
        slip,
    };
    Limiter::new(&rate, DEFAULT_TABLE_SIZE)
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    send: u64,
    drop: u64,
    slip: u64,
}

impl Tally {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Send => self.send += 1,
            Verdict::Drop => self.drop += 1,
            Verdict::Slip => self.slip += 1,
        }
    }
}

/// `per_ms` responses every millisecond of `[from, to)` ms to `client`.
fn flood(l: &Limiter, client: IpAddr, kind: Kind, per_ms: u64, from: u64, to: u64) -> Tally {
    let mut t = Tally::default();
    for ms in from..to {
        for _ in 0..per_ms {
            t.add(l.check(client, kind, ms));
        }
    }
    t
}

// 10× the rate (2 a millisecond) for 5 s: the burst of 200 at t = 0, then one every
// interval of 5 ms (t = 5, 10, …, 4995: 999), 1199 in all; the 8801 others are limited
// and split by `slip` (the counter starts at 0, so slips = floor(limited / slip)).
#[test]
fn ten_times_the_rate_for_five_seconds_exact_counts_per_slip() {
    for (slip, drops, slips) in [(0, 8801, 0), (1, 0, 8801), (2, 4401, 4400), (3, 5868, 2933)] {
        let l = limiter(slip);
        let t = flood(&l, v4(198, 51, 100, 7), Kind::Answer, 2, 0, 5000);
        let want = Tally {
            send: 1199,
            drop: drops,
            slip: slips,
        };
        assert_eq!(t, want, "slip = {slip}");
        assert_eq!(l.limited(), drops + slips, "slip = {slip}");
        assert_eq!(l.slipped(), slips, "slip = {slip}");
    }
}

#[test]
fn slip_two_alternates_drop_and_slip() {
    let l = limiter(2);
    let c = v4(192, 0, 2, 1);
    for _ in 0..RATE {
        assert_eq!(l.check(c, Kind::Answer, 0), Verdict::Send);
    }
    let next: Vec<Verdict> = (0..4).map(|_| l.check(c, Kind::Answer, 0)).collect();
    assert_eq!(
        next,
        [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
    );
}

#[test]
fn a_quiet_network_is_never_limited_beside_a_flood() {
    let l = limiter(2);
    let hot = v4(198, 51, 100, 7);
    let quiet = v4(203, 0, 113, 9);
    let mut q = Tally::default();
    for ms in 0..5000 {
        l.check(hot, Kind::Answer, ms);
        l.check(hot, Kind::Answer, ms);
        if ms % 20 == 0 {
            // 50 a second, a quarter of the rate
            q.add(l.check(quiet, Kind::Answer, ms));
        }
    }
    assert_eq!(
        q,
        Tally {
            send: 250,
            drop: 0,
            slip: 0
        }
    );
    assert!(l.limited() > 8000);
}

#[test]
fn kinds_are_limited_separately() {
    let l = limiter(0);
    let c = v4(198, 51, 100, 7);
    // An NXDOMAIN flood uses up its own budget…
    let nx = flood(&l, c, Kind::NxDomain, 10, 0, 100);
    assert_eq!(nx.send, 200 + 19); // burst, then t = 5, 10, …, 95
    // …the same network still gets its real answers, and each other kind its own burst.
    for kind in [Kind::Answer, Kind::NoData, Kind::Referral, Kind::Error] {
        let t = flood(&l, c, kind, 1, 100, 100 + u64::from(RATE));
        assert_eq!(t.send, u64::from(RATE), "{kind:?}");
    }
    // And the other way round: an answer flood leaves NXDOMAINs alone.
    let l = limiter(0);
    flood(&l, c, Kind::Answer, 10, 0, 1001);
    assert_eq!(l.check(c, Kind::NxDomain, 1000), Verdict::Send);
    assert_eq!(l.check(c, Kind::Answer, 1000), Verdict::Drop);
}

#[test]
fn hosts_of_one_slash_24_share_a_budget_other_slash_24s_do_not() {
    let l = limiter(0);
    for i in 0..RATE {
        // 200 different hosts of 198.51.100.0/24: the /24's whole burst
        assert_eq!(
            l.check(v4(198, 51, 100, i as u8), Kind::Answer, 0),
            Verdict::Send
        );
    }
    assert_eq!(
        l.check(v4(198, 51, 100, 250), Kind::Answer, 0),
        Verdict::Drop
    );
    assert_eq!(l.check(v4(198, 51, 100, 0), Kind::Answer, 1), Verdict::Drop);
    // the neighbouring /24s are untouched
    assert_eq!(l.check(v4(198, 51, 101, 0), Kind::Answer, 1), Verdict::Send);
    assert_eq!(
        l.check(v4(198, 51, 99, 255), Kind::Answer, 1),
        Verdict::Send
    );
}

#[test]
fn ipv6_is_grouped_by_slash_56() {
    let l = limiter(0);
    let a = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    let same = [a("2001:db8:0:ab00::1"), a("2001:db8:0:abff:ffff::2")];
    for i in 0..RATE {
        assert_eq!(
            l.check(same[i as usize % 2], Kind::Answer, 0),
            Verdict::Send
        );
    }
    assert_eq!(
        l.check(a("2001:db8:0:ab12::53"), Kind::Answer, 0),
        Verdict::Drop
    );
    assert_eq!(
        l.check(a("2001:db8:0:ac00::1"), Kind::Answer, 0),
        Verdict::Send
    );
    assert_eq!(
        l.check(a("2001:db8:1:ab00::1"), Kind::Answer, 0),
        Verdict::Send
    );
}

#[test]
fn ipv4_mapped_ipv6_counts_as_ipv4() {
    let l = limiter(0);
    let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped());
    for _ in 0..RATE {
        assert_eq!(l.check(mapped, Kind::Answer, 0), Verdict::Send);
    }
    assert_eq!(l.check(v4(198, 51, 100, 8), Kind::Answer, 0), Verdict::Drop);
    // an IPv6 network whose low bits spell the same address is another network
    let lookalike = IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0xc633, 0x6407));
    assert_eq!(l.check(lookalike, Kind::Answer, 0), Verdict::Send);
}

#[test]
fn the_bucket_refills_with_time() {
    let l = limiter(0);
    let c = v4(192, 0, 2, 1);
    let burst = |l: &Limiter, ms| flood(l, c, Kind::Answer, 1000, ms, ms + 1).send;
    assert_eq!(burst(&l, 0), 200);
    assert_eq!(burst(&l, 0), 0);
    assert_eq!(burst(&l, 100), 20); // 100 ms: 20 intervals of 5 ms
    assert_eq!(burst(&l, 102), 0); // less than one interval
    assert_eq!(burst(&l, 105), 1);
    assert_eq!(burst(&l, 1105), 200); // a full second: full again, not more
    assert_eq!(burst(&l, 3_600_000), 200); // an hour's pause: likewise
}

#[test]
fn a_million_sources_keep_memory_fixed_and_the_hot_network_limited() {
    let l = limiter(2);
    let before = l.memory_bytes();
    assert_eq!(before, size_of::<Limiter>() + DEFAULT_TABLE_SIZE * 16); // 1 MiB
    let hot = v4(198, 51, 100, 7);
    let (mut hot_t, mut spoofed) = (Tally::default(), Tally::default());
    // 1,000,000 distinct /24s, one response each, over 5 s (200,000 a second), with the
    // hot network at 10× its rate in the middle of them.
    for i in 0..1_000_000u32 {
        let ms = u64::from(i) / 200;
        let [_, b, c, d] = i.to_be_bytes();
        spoofed.add(l.check(v4(10 + b, c, d, 1), Kind::Answer, ms));
        if i % 100 == 0 {
            hot_t.add(l.check(hot, Kind::Answer, ms));
            hot_t.add(l.check(hot, Kind::Answer, ms));
        }
    }
    assert_eq!(l.memory_bytes(), before);
    assert_eq!(l.sets.len() * WAYS, DEFAULT_TABLE_SIZE);
    // The hot network is never evicted, so it gets exactly what it would alone (see the
    // first test); sharing could only make it less.
    assert!(hot_t.send <= 1199 && hot_t.send >= 1150, "{hot_t:?}");
    assert!(hot_t.drop + hot_t.slip >= 8800, "{hot_t:?}");
    // One response each: the spoofed sources all fit within their own budgets.
    assert!(spoofed.send >= 999_990, "{spoofed:?}");
}

#[test]
fn a_network_in_debt_is_not_evicted_and_a_full_set_shares_a_budget() {
    // One set of 4 slots: every key collides.
    let rate = RateLimit {
        responses_per_second: 10,
        slip: 0,
    };
    let l = Limiter::new(&rate, 1);
    assert_eq!(l.sets.len(), 1);
    let hot = v4(198, 51, 100, 7);
    assert_eq!(flood(&l, hot, Kind::Answer, 11, 0, 1).send, 10);
    // 5000 other networks pass through the set in 500 ms while the hot one keeps
    // asking 10 times a millisecond: it is never evicted (that would give it a fresh
    // burst of 10), so it gets at most what it would alone: one per 100 ms interval,
    // at 100, 200, 300, 400 and 500 ms (less if a newcomer shares its budget).
    let mut hot_sent = 0;
    for i in 0..5000u32 {
        let ms = 10 + u64::from(i) / 10;
        let [_, _, b, c] = i.to_be_bytes();
        l.check(v4(10, b, c, 1), Kind::Answer, ms);
        hot_sent += u32::from(l.check(hot, Kind::Answer, ms) == Verdict::Send);
    }
    assert!(hot_sent <= 5, "{hot_sent}");

    // Four networks in debt fill the set; a fifth shares their budgets (always the
    // least indebted one's) and displaces no one: it gets exactly the tokens they had
    // left, 5 + 7 + 9, and the fully indebted `hot` loses none.
    let l = Limiter::new(&rate, 4);
    let [a, b, c, e] = [1, 2, 3, 4].map(|x| v4(10, 0, x, 1));
    assert_eq!(flood(&l, hot, Kind::Answer, 10, 0, 1).send, 10);
    assert_eq!(flood(&l, a, Kind::Answer, 5, 0, 1).send, 5);
    assert_eq!(flood(&l, b, Kind::Answer, 3, 0, 1).send, 3);
    assert_eq!(flood(&l, c, Kind::Answer, 1, 0, 1).send, 1);
    assert_eq!(flood(&l, e, Kind::Answer, 30, 0, 1).send, 5 + 7 + 9);
    for net in [hot, a, b, c, e] {
        assert_eq!(l.check(net, Kind::Answer, 0), Verdict::Drop);
    }
    // A second on, every bucket is full again: the first four to send take (or keep) a
    // slot with a full burst; the fifth finds them all in debt and shares.
    for net in [e, hot, a, b] {
        assert_eq!(flood(&l, net, Kind::Answer, 11, 1000, 1001).send, 10);
    }
    assert_eq!(flood(&l, c, Kind::Answer, 11, 1000, 1001).send, 0);
}

#[test]
fn two_threads_stay_near_the_rate() {
    let l = limiter(2);
    let c = v4(198, 51, 100, 7);
    // A shared synthetic clock: 20 responses a millisecond in all, 10× the rate.
    let issued = AtomicU64::new(0);
    let total = 100_000;
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (l, issued) = (&l, &issued);
                s.spawn(move || {
                    let mut tally = Tally::default();
                    loop {
                        let n = issued.fetch_add(1, Relaxed);
                        if n >= total {
                            return tally;
                        }
                        tally.add(l.check(c, Kind::Answer, n / 20));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let send: u64 = tallies.iter().map(|t| t.send).sum();
    let drop: u64 = tallies.iter().map(|t| t.drop).sum();
    let slip: u64 = tallies.iter().map(|t| t.slip).sum();
    assert_eq!(send + drop + slip, total);
    // 5 s: burst 200 + 999, as alone, give or take the races of the module doc.
    assert!((1190..=1260).contains(&send), "sent {send}");
    assert_eq!(l.limited(), drop + slip);
    assert_eq!(l.slipped(), slip);
    assert!(slip.abs_diff(drop) <= 2, "drop {drop}, slip {slip}");
}

#[test]
fn settings_are_clamped_and_odd_clocks_do_not_panic() {
    let l = Limiter::new(
        &RateLimit {
            responses_per_second: 0,
            slip: 1000,
        },
        0,
    );
    assert_eq!((l.rate, l.slip, l.sets.len()), (1, u64::from(MAX_SLIP), 1));
    let c = v4(192, 0, 2, 1);
    assert_eq!(l.check(c, Kind::Answer, 0), Verdict::Send);
    let limited: Vec<Verdict> = (0..15).map(|_| l.check(c, Kind::Answer, 0)).collect();
    assert_eq!(limited.iter().filter(|&&v| v == Verdict::Slip).count(), 1);
    assert_eq!(limited[14], Verdict::Slip);

    let l = Limiter::new(
        &RateLimit {
            responses_per_second: u32::MAX,
            slip: 2,
        },
        DEFAULT_TABLE_SIZE,
    );
    assert_eq!(l.rate, u64::from(MAX_RESPONSES_PER_SECOND));
    // Time near the end of u64, wrapping, and going backwards: verdicts, no panic.
    for now in [u64::MAX - 1, u64::MAX, 0, 5, 3, u64::MAX / 2] {
        assert_eq!(l.check(c, Kind::Error, now), Verdict::Send);
    }
    // A thread whose clock lags behind another's is limited, not reset, even by seconds.
    let l = limiter(0);
    flood(&l, c, Kind::Answer, 300, 10_000, 10_001);
    for lagging in [9_990, 9_000, 5_000, 0] {
        assert_eq!(
            l.check(c, Kind::Answer, lagging),
            Verdict::Drop,
            "{lagging}"
        );
    }
    assert_eq!(l.check(c, Kind::Answer, 10_005), Verdict::Send);
}

#[test]
fn the_tat_wraps_without_harm() {
    // The TAT is kept modulo 2^60 units of 1/rate ms (about 183,000 years at 200/s).
    // Refills across a wrap, and slots idle for long, behave as without wrapping.
    let l = limiter(0);
    let c = v4(192, 0, 2, 1);
    let period = (1u64 << TAT_BITS) / l.rate;
    for start in [0, period - 500, period * 3 + 17] {
        let at = |ms: u64| flood(&l, c, Kind::Answer, 250, ms, ms + 1).send;
        assert_eq!(at(start), 200, "{start}");
        assert_eq!(at(start + 500), 100, "{start}"); // half a second: half the burst
        assert_eq!(at(start + 1500), 200, "{start}");
        assert_eq!(at(start + period / 2), 200, "{start}");
    }
}

#[test]
fn limiter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Limiter>();
}
