//! The per-thread caches a lookup goes through: whole lookups by client subnet, then
//! decoded records by their data offset. Both are keyed by the database's id, so a reload
//! never answers from the old database.

use std::net::IpAddr;

use super::Location;

/// Per-thread cache of whole lookups, placed by client subnet (/24 for IPv4, /48 for
/// IPv6) in a two-way set: an entry answers for an address when the database network
/// it holds contains the address, since every address of a database network has the
/// same location. ECS clients send such subnets, and a resolver's subnets repeat.
pub(super) fn subnet_cached(
    db: usize,
    addr: IpAddr,
    lookup: impl FnOnce() -> Location,
) -> Location {
    // 8192 entries of 96 bytes: 768 KiB per thread that answers queries.
    const SLOTS: usize = 8192;
    let key = match addr {
        IpAddr::V4(a) => u64::from(u32::from(a) >> 8),
        IpAddr::V6(a) => (u128::from(a) >> 80) as u64 | 1 << 63,
    };
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<(usize, Location)>> =
            std::cell::RefCell::new(vec![(0, Location::default()); SLOTS]);
    }
    // Fibonacci hashing of the subnet onto the sets (pairs of slots).
    let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let set = (h >> (64 - SLOTS.trailing_zeros())) as usize & !1;
    let holds = |e: &(usize, Location)| e.0 == db && e.1.network.is_some_and(|n| within(addr, n));
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let Some(pair) = c.get_mut(set..set + 2) else {
            return lookup();
        };
        if holds(&pair[0]) {
            return pair[0].1;
        }
        if holds(&pair[1]) {
            pair.swap(0, 1);
            return pair[0].1;
        }
        let loc = lookup();
        if loc.network.is_some() {
            // The older entry goes; the newer one moves second.
            pair[1] = pair[0];
            pair[0] = (db, loc);
        }
        loc
    })
}

/// True when `addr` is in the network `(net, prefix)`.
fn within(addr: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            (u32::from(a) ^ u32::from(n)).checked_shr(32 - u32::from(prefix.min(32))) == Some(0)
                || prefix == 0
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            (u128::from(a) ^ u128::from(n)).checked_shr(128 - u32::from(prefix.min(128))) == Some(0)
                || prefix == 0
        }
        _ => false,
    }
}

/// Direct-mapped per-thread cache of decoded records: (database, data offset) → location.
pub(super) fn cached(db: usize, offset: usize, decode: impl FnOnce() -> Location) -> Location {
    const SLOTS: usize = 1024;
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<(usize, usize, Location)>> =
            std::cell::RefCell::new(vec![(0, usize::MAX, Location::default()); SLOTS]);
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let slot = &mut c[offset % SLOTS];
        if slot.0 == db && slot.1 == offset {
            return slot.2;
        }
        let loc = decode();
        *slot = (db, offset, loc);
        loc
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::locate::locate;
    use crate::geo::{GeoDb, Source, sample};

    #[test]
    fn the_subnet_cache_never_changes_an_answer() {
        let db = GeoDb::open(&sample()).unwrap();
        let Source::Read(reader) = &db.reader else {
            unreachable!()
        };
        // Networks narrower than the cached subnets (89.160.20.128/25, 216.160.83.56/29)
        // next to addresses outside them, wide networks, IPv6 and nothing at all; in an
        // order that fills the cache from one address and asks for its neighbours.
        let addrs = [
            "89.160.20.200",
            "89.160.20.1",
            "89.160.20.129",
            "89.160.20.127",
            "216.160.83.57",
            "216.160.83.1",
            "216.160.83.60",
            "216.160.83.200",
            "81.2.69.160",
            "81.2.69.1",
            "81.2.69.255",
            "8.8.8.8",
            "8.8.8.9",
            "2a02:d3c0::1",
            "2a02:d3c0:0:ffff::1",
            "2001:db8:1::1",
            "10.1.2.3",
            "10.1.2.4",
        ];
        for _ in 0..3 {
            for a in addrs {
                let addr: IpAddr = a.parse().unwrap();
                assert_eq!(db.locate(addr), locate(reader, db.id, addr), "{a}");
            }
        }
        let inside = db.locate("89.160.20.200".parse().unwrap());
        let outside = db.locate("89.160.20.1".parse().unwrap());
        assert_eq!(inside.country.map(|c| c.to_string()).as_deref(), Some("SE"));
        assert_ne!(inside, outside);
    }

    #[test]
    fn the_subnet_cache_survives_evictions() {
        // More subnets than slots, in and around the sample's networks (so that sets
        // overflow, entries move within their pair and narrow networks share subnets
        // with their neighbours), compared with the uncached lookup.
        let db = GeoDb::open(&sample()).unwrap();
        let Source::Read(reader) = &db.reader else {
            unreachable!()
        };
        let bases: [[u8; 2]; 6] = [[81, 2], [89, 160], [216, 160], [8, 8], [1, 0], [10, 1]];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..40_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let [a, b] = bases[i as usize % bases.len()];
            let [c, d, ..] = x.to_le_bytes();
            let addr = IpAddr::from([a, b, c, d]);
            assert_eq!(db.locate(addr), locate(reader, db.id, addr), "{addr}");
        }
    }

    #[test]
    fn within_checks_the_prefix() {
        let net = |s: &str| {
            let n: ipnet::IpNet = s.parse().unwrap();
            (n.network(), n.prefix_len())
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(within(ip("89.160.20.200"), net("89.160.20.128/25")));
        assert!(!within(ip("89.160.20.1"), net("89.160.20.128/25")));
        assert!(within(ip("1.2.3.4"), net("0.0.0.0/0")));
        assert!(within(ip("1.2.3.4"), net("1.2.3.4/32")));
        assert!(!within(ip("1.2.3.5"), net("1.2.3.4/32")));
        assert!(within(ip("2001:db8::1"), net("2001:db8::/32")));
        assert!(!within(ip("2001:db9::1"), net("2001:db8::/32")));
        assert!(within(ip("::1"), net("::/0")));
        assert!(!within(ip("1.2.3.4"), net("::/0")), "families never mix");
    }
}
