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
mod tests;
