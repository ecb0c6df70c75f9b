//! The weighted policy: regions share answers in proportion to their weights.
//!
//! The ranking is a weighted random order (Efraimidis–Spirakis: each region draws
//! `u^(1/w)` and the largest wins), so the first *usable* region is region i with
//! probability w_i / Σ w over the usable ones, whichever regions are down. With
//! `sticky = true` the draws come from a hash of the client's /24 (IPv4) or /56 (IPv6)
//! instead of a random number: weighted rendezvous hashing. The same subnet then always
//! gets the same region while the usable set is unchanged, and when a region goes down
//! only its clients move, spread over the others by weight. Weight-0 regions come last
//! in `regions` order: standby, served only when nothing weighted is usable.

use std::net::IpAddr;

use smallvec::SmallVec;

use super::{Client, Order, Ranking, Rtts, Rule};
use crate::answer::mask;
use crate::model::{DynRecord, RegionId};

/// Prefix lengths of the sticky client subnet.
pub const STICKY_V4: u8 = 24;
/// See [`STICKY_V4`].
pub const STICKY_V6: u8 = 56;

/// Ranks `rec`'s regions; `weights` is parallel to `rec.regions`. `rnd` is used when
/// not sticky.
pub fn rank(rec: &DynRecord, weights: &[u32], sticky: bool, client: &Client, rnd: u64) -> Ranking {
    let (key, scope) = if sticky {
        let prefix = if client.addr.is_ipv4() {
            STICKY_V4
        } else {
            STICKY_V6
        };
        (subnet_key(client.addr, prefix), prefix)
    } else {
        (rnd, 0)
    };
    let mut drawn: SmallVec<[(RegionId, f64); 16]> = rec
        .regions
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0)
        .map(|(id, w)| (*id, draw(key, *id) / f64::from(*w)))
        .collect();
    // ln(u)/w is the log of u^(1/w): larger is better. Ties (equal draws) keep order.
    drawn.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut order: Order = drawn.iter().map(|(id, _)| *id).collect();
    order.extend(
        rec.regions
            .iter()
            .zip(weights)
            .filter(|(_, w)| **w == 0)
            .map(|(id, _)| *id),
    );
    Ranking {
        order,
        scope,
        rule: Rule::Weighted { sticky },
        rtt: Rtts::new(),
    }
}

/// ln(u) for a uniform u in (0, 1), from `key` and the region: a fixed function, so
/// every gslbd instance ranks a sticky subnet the same way.
fn draw(key: u64, region: RegionId) -> f64 {
    let h = splitmix64(key ^ splitmix64(u64::from(region.0) + 0x5151));
    // 53 random bits, shifted off zero so ln() is finite.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    u.ln()
}

/// A stable key for the client's subnet (no per-process seed).
fn subnet_key(addr: IpAddr, prefix: u8) -> u64 {
    match mask(addr, prefix) {
        IpAddr::V4(a) => splitmix64(u64::from(u32::from(a))),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            splitmix64((v >> 64) as u64 ^ splitmix64(v as u64 ^ 0x6666))
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a fast, well-mixed 64-bit permutation.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
