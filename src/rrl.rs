//! Response rate limiting (RRL): how many UDP answers one client network may get per second.
//!
//! DNS over UDP is easy to spoof, so an authoritative server can be used to reflect (and
//! amplify) traffic onto a victim. RRL, as in BIND (`rate-limit`), NSD (`rrl-ratelimit`)
//! and Knot (`mod-rrl`), caps the answers sent to one client network; over the cap most
//! answers are dropped and every `slip`-th one is sent truncated (TC=1, no records), so a
//! real client behind that network retries over TCP, which cannot be spoofed. The UDP path
//! asks [`Limiter::check`] once per response; TCP answers are never limited.
//!
//! # Design
//!
//! - **Key**: the client network (/24 for IPv4, /56 for IPv6; an IPv4-mapped IPv6 address
//!   counts as its IPv4 address) plus the response's [`Kind`], packed exactly into a
//!   `u64`. Classifying responses, as BIND and Knot do, means a flood of NXDOMAINs (a
//!   random-subdomain attack) does not use up the budget of real answers to the same
//!   network, and vice versa. Unlike BIND and Knot the name asked is not part of the key:
//!   the budget is per network and kind.
//! - **Hashing**: the key is hashed with SipHash keyed by a random per-process seed
//!   ([`RandomState`], created once in [`Limiter::new`]), so an attacker cannot choose
//!   sources that land in a victim's set of slots.
//! - **Table**: a fixed array of slots allocated once, never grown: memory is bounded by
//!   `table_size` whatever the number of sources (16 bytes a slot; the default
//!   [`DEFAULT_TABLE_SIZE`] of 65,536 slots is 1 MiB). Slots are grouped in sets of 4 (4-way
//!   set associative): the hash picks the set, a set is one 64-byte cache line.
//! - **Slot**: two `AtomicU64`s: the key itself (so two networks are never confused by a
//!   hash tag) and the bucket's state, a 60-bit time and a 4-bit slip counter, updated
//!   with `compare_exchange`: no lock, no allocation.
//! - **Token bucket** as GCRA (the generic cell rate algorithm, a token bucket in one
//!   number): instead of a token count and a time stamp, a slot keeps the *theoretical
//!   arrival time* (TAT), the time at which its bucket will be full again. Each response
//!   sent pushes the TAT one interval (1 / `responses_per_second`) further; a response is
//!   allowed while the TAT stays within one second of now. This is exactly a bucket that
//!   refills at `responses_per_second` tokens per second up to a burst of
//!   `responses_per_second` tokens, refilled from the elapsed time with no rounding (time
//!   is counted in units of 1/rate ms, so one interval is exactly 1000 units).
//! - **Burst = one second's worth**: the setting reads "responses per second", and that is
//!   what a client may get in any one second, whether the answers come evenly or at once.
//!   Resolvers are bursty (many clients behind one resolver or NAT asking together after a
//!   TTL expires); a smaller burst would limit them though their per-second rate is within
//!   the limit, a larger one would let an attack's first seconds through above the rate.
//! - **Slip**: when a slot is over the limit, its counter counts limited responses; every
//!   `slip`-th is [`Verdict::Slip`], the others [`Verdict::Drop`]. `slip = 0` always drops,
//!   `slip = 1` always slips (neither needs a write, so a flood that is being limited only
//!   reads its slot).
//!
//! # Collision policy
//!
//! A key looks for itself in its set. If it is not there, it takes over a slot that holds
//! nothing worth keeping: an empty slot, or one whose bucket is full again (TAT in the
//! past: a fresh bucket is exactly the same state, so nothing is forgotten). Only if all
//! four slots hold networks still in debt (they sent within the last second) does the
//! newcomer share the budget of the least indebted of them, without taking the slot: its
//! answers count against that network's bucket until a slot frees (at most one second
//! after those networks quiet down). So, unlike Knot, which lets the newer network take
//! the slot over, a network that is being limited is never evicted: a flood from millions
//! of spoofed sources cannot reset the bucket of the network it hides among. The worst
//! case is the other way round: two networks share a budget briefly, which needs four
//! other networks active within the same second in the same set (rare while the table is
//! much larger than the number of networks active within one second: with the default
//! table and 200,000 new sources a second, about 1,000 slots are in debt at any time).
//!
//! # Concurrency
//!
//! [`Limiter`] is `Send + Sync`; `check` is lock-free (compare-and-swap on the slot's
//! words). The slots of a set are read one by one, not as one snapshot, so races are
//! possible: two threads seeing a new key at the same moment can each take a slot for it
//! (the key has two buckets until one goes idle: at most one extra burst), and a network
//! whose slot is taken over just as it sends charges the newcomer's bucket once and then
//! starts a fresh one (again at most one extra burst). A thread that loses the
//! compare-and-swap 8 times in a row sends the response rather than spin (fail open):
//! under heavy contention on one slot a few more responses than the rate may go out. The
//! `limited`/`slipped` counters are relaxed atomics on their own cache line.
//!
//! # Clock
//!
//! The limiter has no clock: the caller passes a monotonic time in milliseconds, which
//! keeps the fast path free of system calls and lets tests run simulated seconds in
//! microseconds. Threads read the clock at slightly different moments, so a caller's
//! `now` may lag behind a TAT set by another thread: a bucket more than a full second
//! ahead is simply over the limit (it is not reset). Only a TAT more than an hour ahead,
//! which no monotonic clock can produce, counts as stale (full bucket). The TAT is kept
//! modulo 2^60 units of 1/rate ms, which wraps after 36 years at the largest rate.

#![warn(missing_docs, unreachable_pub)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use crate::model::RateLimit;

/// Default number of slots: 65,536 slots of 16 bytes, 1 MiB. Enough that collisions are
/// rare while fewer than some thousands of networks are active within one second.
pub const DEFAULT_TABLE_SIZE: usize = 65_536;

/// Largest `responses_per_second` the limiter honours (higher values are clamped); the
/// config accepts no more either.
pub const MAX_RESPONSES_PER_SECOND: u32 = 1_000_000;

/// Largest `slip` the limiter honours (the slot's counter has 4 bits; higher values are
/// clamped). The config accepts up to 10, BIND's maximum.
pub const MAX_SLIP: u32 = 15;

/// Slots per set: 4 × 16 bytes, one cache line.
const WAYS: usize = 4;

/// State word layout: slip counter (4 bits) | TAT (60 bits).
const TAT_BITS: u32 = 60;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;
const SLIPS_SHIFT: u32 = TAT_BITS;
const SLIPS_MASK: u64 = 0xF;

/// Set in every key word, so that 0 marks an empty slot.
const OCCUPIED: u64 = 1 << 63;
/// Set in the key word of IPv6 networks, so that no IPv4 key equals an IPv6 one.
const IPV6: u64 = 1 << 3;

/// Time units one response costs. Time is counted in units of 1/rate ms, so one interval
/// between responses (1/rate s) is 1000 units whatever the rate: integer arithmetic, exact.
const COST: i64 = 1000;

/// A TAT further ahead than this many seconds is stale, not the sign of a lagging clock.
const STALE_SECONDS: i64 = 3600;

/// Failed compare-and-swaps after which `check` gives up and sends (see the module doc).
const CAS_ATTEMPTS: usize = 8;

/// The class of a response, part of the limiter's key (as in BIND, NSD and Knot), so that
/// a flood of one class does not starve the others for the same network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// NOERROR with records in the answer section.
    Answer,
    /// NXDOMAIN: the name does not exist (the usual random-subdomain flood).
    NxDomain,
    /// NOERROR with an empty answer section (the name exists, not that type).
    NoData,
    /// A delegation: NS records in the authority section, glue in additional.
    Referral,
    /// Every other rcode: REFUSED, FORMERR, SERVFAIL, NOTIMP, BADVERS…
    Error,
}

/// What the UDP path does with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Within the limit: send the response as it is.
    Send,
    /// Over the limit: send nothing.
    Drop,
    /// Over the limit, but send a truncated reply (TC=1, no records) so that a real
    /// client retries over TCP.
    Slip,
}

/// One slot: whose bucket it is, and the bucket.
#[derive(Default)]
struct Slot {
    /// The packed key (see [`key`]); 0: empty.
    key: AtomicU64,
    /// Slip counter and TAT.
    state: AtomicU64,
}

/// One set of slots, aligned so that it is exactly one cache line.
#[derive(Default)]
#[repr(align(64))]
struct Set([Slot; WAYS]);

/// The metric counters, on a cache line of their own: they are written on every limited
/// response, the rest of the [`Limiter`] is read on every response.
#[derive(Default)]
#[repr(align(64))]
struct Counters {
    limited: AtomicU64,
    slipped: AtomicU64,
}

/// The response rate limiter: a fixed table of token buckets keyed by client network and
/// response [`Kind`]. Share one between the UDP threads (it is `Send + Sync`).
pub struct Limiter {
    /// The table, allocated once in `new` (a boxed slice cannot grow).
    sets: Box<[Set]>,
    /// SipHash keys, random per process.
    hasher: RandomState,
    /// Responses per second, clamped to `1..=MAX_RESPONSES_PER_SECOND`; also the number of
    /// time units in one millisecond.
    rate: u64,
    /// `slip`, clamped to `0..=MAX_SLIP`.
    slip: u64,
    /// The burst, in time units: `rate` responses of `COST` each, i.e. one second.
    limit: i64,
    /// `STALE_SECONDS` in time units.
    stale: i64,
    counters: Counters,
}

impl Limiter {
    /// A limiter for `rate` with `table_size` slots (rounded up to a multiple of 4, at
    /// least 4; [`DEFAULT_TABLE_SIZE`] is a good default), allocated here once.
    /// `responses_per_second` is clamped to `1..=`[`MAX_RESPONSES_PER_SECOND`] and `slip`
    /// to `0..=`[`MAX_SLIP`].
    pub fn new(rate: &RateLimit, table_size: usize) -> Limiter {
        let sets = table_size.div_ceil(WAYS).max(1);
        let per_second = rate.responses_per_second.clamp(1, MAX_RESPONSES_PER_SECOND);
        let limit = i64::from(per_second) * COST;
        Limiter {
            sets: (0..sets).map(|_| Set::default()).collect(),
            hasher: RandomState::new(),
            rate: u64::from(per_second),
            slip: u64::from(rate.slip.min(MAX_SLIP)),
            limit,
            stale: STALE_SECONDS * limit,
            counters: Counters::default(),
        }
    }

    /// Whether a response of `kind` to `client` may be sent at `now_ms` (a monotonic time
    /// in milliseconds, from any fixed origin, the same for all callers), and counts it
    /// against the client network's budget. Allocates nothing, takes no lock.
    pub fn check(&self, client: IpAddr, kind: Kind, now_ms: u64) -> Verdict {
        let key = key(client, kind);
        let h = self.hasher.hash_one(key);
        // Multiply-shift maps the hash onto any number of sets without a division.
        let set = &self.sets[((u128::from(h) * self.sets.len() as u128) >> 64) as usize].0;
        let now = now_ms.wrapping_mul(self.rate) & TAT_MASK;
        for _ in 0..CAS_ATTEMPTS {
            // One pass over the set: our slot; else the first free one (empty, or its
            // bucket full: taking it loses nothing); else the least indebted one.
            let mut free = None;
            let (mut least, mut least_debt, mut least_state) = (0, i64::MAX, 0);
            let mut mine = None;
            for (i, slot) in set.iter().enumerate() {
                let k = slot.key.load(Relaxed);
                if k == key {
                    mine = Some(i);
                    break;
                }
                if free.is_none() {
                    let state = slot.state.load(Relaxed);
                    let debt = if k == 0 { 0 } else { self.debt(state, now) };
                    if debt == 0 {
                        free = Some((i, k, state));
                    } else if debt < least_debt {
                        (least, least_debt, least_state) = (i, debt, state);
                    }
                }
            }
            if let Some(i) = mine {
                let state = set[i].state.load(Relaxed);
                if let Some(v) = self.charge(&set[i], state, self.debt(state, now), now) {
                    return v;
                }
            } else if let Some((i, old_key, old_state)) = free {
                let slot = &set[i];
                if slot
                    .key
                    .compare_exchange(old_key, key, Relaxed, Relaxed)
                    .is_ok()
                {
                    // A fresh bucket (slip counter 0). Should the state have changed since
                    // it was read (the previous owner sent meanwhile), retry as the owner.
                    let (verdict, fresh) = self.decide(0, 0, now);
                    if slot
                        .state
                        .compare_exchange(old_state, fresh, Relaxed, Relaxed)
                        .is_ok()
                    {
                        self.count(verdict);
                        return verdict;
                    }
                }
            } else {
                // Every slot holds a network still in debt: share the least indebted one's
                // budget rather than evict a network that may be over its limit.
                let slot = &set[least];
                if let Some(v) = self.charge(slot, least_state, least_debt, now) {
                    return v;
                }
            }
        }
        // Lost the race every time: fail open rather than spin (see the module doc).
        Verdict::Send
    }

    /// Total responses limited (dropped or slipped) since the limiter was made.
    pub fn limited(&self) -> u64 {
        self.counters.limited.load(Relaxed)
    }

    /// Total responses slipped (sent truncated) since the limiter was made; they are also
    /// counted in [`Limiter::limited`].
    pub fn slipped(&self) -> u64 {
        self.counters.slipped.load(Relaxed)
    }

    /// Bytes the limiter occupies, the struct and its table: fixed by `table_size` at
    /// [`Limiter::new`], whatever the number of sources seen since.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + size_of_val::<[Set]>(&self.sets)
    }

    /// Charges one response to `slot`, whose state was `state` (`debt` ahead of `now`):
    /// the verdict, or `None` if another thread changed the state meanwhile.
    fn charge(&self, slot: &Slot, state: u64, debt: i64, now: u64) -> Option<Verdict> {
        let (verdict, new) = self.decide(state, debt, now);
        if new != state
            && slot
                .state
                .compare_exchange_weak(state, new, Relaxed, Relaxed)
                .is_err()
        {
            return None;
        }
        self.count(verdict);
        Some(verdict)
    }

    /// How far the bucket of `state` is ahead of `now`, in time units: 0 when the bucket
    /// is full (TAT past, or stale: see the module doc).
    fn debt(&self, state: u64, now: u64) -> i64 {
        let ahead = (state & TAT_MASK).wrapping_sub(now) & TAT_MASK;
        // Sign-extend the 60-bit difference.
        let ahead = ((ahead << (64 - TAT_BITS)) as i64) >> (64 - TAT_BITS);
        if ahead <= 0 || ahead > self.stale {
            0
        } else {
            ahead
        }
    }

    /// The verdict for one response against the bucket `state` (`debt` ahead of `now`),
    /// and the state to store.
    fn decide(&self, state: u64, debt: i64, now: u64) -> (Verdict, u64) {
        let after = debt + COST;
        if after <= self.limit {
            let tat = now.wrapping_add(after as u64) & TAT_MASK;
            return (Verdict::Send, (state & !TAT_MASK) | tat);
        }
        // Over the limit (`debt` may exceed one second when this thread's clock lags
        // another's: still over, not reset). The TAT stays: limited responses cost nothing.
        match self.slip {
            0 => (Verdict::Drop, state),
            1 => (Verdict::Slip, state),
            slip => {
                let slips = ((state >> SLIPS_SHIFT) & SLIPS_MASK) + 1;
                let tat = state & TAT_MASK;
                if slips >= slip {
                    (Verdict::Slip, tat)
                } else {
                    (Verdict::Drop, slips << SLIPS_SHIFT | tat)
                }
            }
        }
    }

    fn count(&self, verdict: Verdict) {
        match verdict {
            Verdict::Send => {}
            Verdict::Drop => {
                self.counters.limited.fetch_add(1, Relaxed);
            }
            Verdict::Slip => {
                self.counters.limited.fetch_add(1, Relaxed);
                self.counters.slipped.fetch_add(1, Relaxed);
            }
        }
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("responses_per_second", &self.rate)
            .field("slip", &self.slip)
            .field("slots", &(self.sets.len() * WAYS))
            .field("limited", &self.limited())
            .field("slipped", &self.slipped())
            .finish()
    }
}

/// The key, exactly, as one `u64`: [`OCCUPIED`], the network prefix from bit 4 up (56 bits
/// at most), the [`IPV6`] flag and the kind in the low 3 bits.
fn key(client: IpAddr, kind: Kind) -> u64 {
    let kind = match kind {
        Kind::Answer => 0,
        Kind::NxDomain => 1,
        Kind::NoData => 2,
        Kind::Referral => 3,
        Kind::Error => 4,
    };
    let v4 = |a: std::net::Ipv4Addr| OCCUPIED | u64::from(u32::from(a) >> 8) << 4 | kind;
    match client {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => v4(a),
            None => OCCUPIED | ((u128::from(a) >> 72) as u64) << 4 | IPV6 | kind,
        },
    }
}

#[cfg(test)]
mod tests {
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
}
