use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::*;
use crate::geo::GeoDb;
use crate::model::Policy;
use crate::policy::{Client, geo};
use crate::snapshot::Snapshot;

fn example() -> Snapshot {
    Snapshot::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("gslb.toml")).unwrap()
}

// A fixed seed: every run checks the same addresses.
use crate::policy::tests::rng::Rng;

/// Addresses in and around the sample database's networks and anywhere else, in both
/// families, IPv4 seen through IPv6 included.
fn addresses(n: usize) -> Vec<IpAddr> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let v4_near: [[u8; 2]; 8] = [
        [81, 2],
        [89, 160],
        [1, 0],
        [175, 16],
        [8, 8],
        [216, 160],
        [203, 0],
        [198, 51],
    ];
    let v6_near: [u128; 6] = [
        0x2a02_d3c0 << 96,
        0x2001_0db8 << 96,
        0x2001_0218 << 96,
        0xffff << 32,  // ::ffff:a.b.c.d
        0x2002 << 112, // 6to4
        0,             // ::a.b.c.d
    ];
    (0..n)
        .map(|i| {
            let r = rng.next();
            match i % 4 {
                0 => IpAddr::V4(Ipv4Addr::from(r as u32)),
                1 => {
                    let [a, b] = v4_near[(r >> 40) as usize % v4_near.len()];
                    IpAddr::V4(Ipv4Addr::new(a, b, (r >> 8) as u8, r as u8))
                }
                2 => {
                    let base = v6_near[(r >> 40) as usize % v6_near.len()];
                    let low = u128::from(rng.next() as u32) | u128::from(r as u16) << 48;
                    IpAddr::V6(Ipv6Addr::from(base | low))
                }
                _ => IpAddr::V6(Ipv6Addr::from(u128::from(r) << 64 | u128::from(rng.next()))),
            }
        })
        .collect()
}

/// An address inside `addr`/`prefix` with random host bits.
fn inside(addr: IpAddr, prefix: u8, rng: &mut Rng) -> IpAddr {
    let noise = u128::from(rng.next()) << 64 | u128::from(rng.next());
    match addr {
        IpAddr::V4(a) => {
            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & !host | noise as u32 & host))
        }
        IpAddr::V6(a) => {
            let host = u128::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & !host | noise & host))
        }
    }
}

/// Checks `rules` compiled against `db` against ranking through the lookup, over 20,000
/// addresses; returns how many scopes came out shorter.
fn check(name: &str, rules: &crate::model::GeoRules, db: &GeoDb) -> usize {
    let mut rng = Rng(7);
    let mut shorter = 0;
    let map = GeoMap::build(&Places::build(db), rules).unwrap();
    let old = |addr: IpAddr| {
        let client = Client {
            addr,
            source_prefix: None,
        };
        geo::rank(rules, &client, &db.locate(addr))
    };
    for addr in addresses(20_000) {
        let new = map.rank(rules, addr);
        let was = old(addr);
        assert_eq!(
            (&new.order, new.rule),
            (&was.order, was.rule),
            "{name} {addr}"
        );
        assert!(
            new.scope <= was.scope,
            "{name} {addr}: /{} > /{}",
            new.scope,
            was.scope
        );
        shorter += usize::from(new.scope < was.scope);
        // The scope is a promise: every address inside it gets the same ranking.
        let addr = addr.to_canonical();
        for _ in 0..3 {
            let other = inside(addr, new.scope, &mut rng);
            let o = old(other);
            assert_eq!(
                (&o.order, o.rule),
                (&new.order, new.rule),
                "{name}: {other} is inside {addr}/{}",
                new.scope
            );
        }
    }
    shorter
}

#[test]
fn compiled_maps_rank_as_the_lookup_does_with_scopes_that_hold() {
    let snap = example();
    let db = snap.geo.as_deref().unwrap();
    let mut records = 0;
    for rec in &snap.model.records {
        let Policy::Geo(rules) = &rec.policy else {
            continue;
        };
        if geo::by_location(rules) {
            records += 1;
            let shorter = check(&rec.name, rules, db);
            assert!(
                shorter > 1000,
                "merged networks give shorter scopes ({shorter})"
            );
        }
    }
    assert!(
        records > 0,
        "the example has geo records that look at locations"
    );
}

#[test]
fn cidr_rules_inside_and_around_database_networks() {
    // cidr rules narrower and wider than the sample's networks, overlapping each other
    // and the subdivision, country and continent rules, in both families.
    let model = crate::policy::tests::geo::parse(&format!(
        r#"{}
[records."www.gslb.test"]
policy = "geo"
regions = ["us-east", "eu-west", "ap-south"]
[records."www.gslb.test".geo]
subdivision.GB-ENG = ["ap-south"]
country.SE = ["us-east"]
continent.EU = ["eu-west"]
continent.AS = ["ap-south"]
cidr."81.2.69.0/25" = ["us-east"]
cidr."81.2.64.0/20" = ["ap-south", "us-east"]
cidr."1.0.16.128/26" = ["eu-west"]
cidr."89.160.20.0/23" = ["ap-south"]
cidr."2001:db8:2::/64" = ["ap-south"]
cidr."2a02:d3c0:1::/48" = ["us-east"]
cidr."::ffff:8.8.8.0/120" = ["eu-west"]
default = ["us-east"]
"#,
        crate::policy::tests::geo::REGIONS
    ));
    let Policy::Geo(rules) = &model.records[0].policy else {
        panic!()
    };
    let db = GeoDb::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample.mmdb")).unwrap();
    check("cidr", rules, &db);
}

#[test]
fn cidr_rules_cut_into_the_spans() {
    let o = |i| Outcome::Continent(i);
    let mut spans = vec![(0, o(0)), (100, o(1)), (200, o(2))];
    overlay(&mut spans, 150, 249, Outcome::Cidr(0), 32);
    assert_eq!(
        spans,
        [(0, o(0)), (100, o(1)), (150, Outcome::Cidr(0)), (250, o(2))]
    );
    // Up to the end of the space, and over a whole span.
    overlay(&mut spans, 100, u128::from(u32::MAX), Outcome::Cidr(1), 32);
    assert_eq!(spans, [(0, o(0)), (100, Outcome::Cidr(1))]);
    let t = Tree::build(&spans, 32).unwrap();
    assert_eq!(t.lookup(99, 32).0, o(0));
    assert_eq!(t.lookup(100, 32).0, Outcome::Cidr(1));
    assert_eq!(t.lookup(u128::from(u32::MAX), 32), (Outcome::Cidr(1), 1));
    // One outcome everywhere: scope 0.
    let t = Tree::build(&[(0, Outcome::Fallback)], 128).unwrap();
    assert_eq!(t.lookup(12345, 128), (Outcome::Fallback, 0));
}

#[test]
fn one_walk_of_the_database_serves_every_rule_set() {
    let db = GeoDb::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample.mmdb")).unwrap();
    let places = Places::build(&db);
    let (distinct, v4, v6) = places.sizes();
    assert!(distinct > 1 && v4 > 1 && v6 > 1, "{:?}", places.sizes());
    for family in [&places.v4, &places.v6] {
        let spans = family.as_ref().unwrap();
        assert_eq!(spans[0].0, 0, "from the first address");
        assert!(
            spans
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1),
            "sorted, neighbours with the same place merged"
        );
        assert!(spans.iter().all(|&(_, p)| (p as usize) < distinct));
    }
    // Each place once.
    for (i, a) in places.places.iter().enumerate() {
        for b in &places.places[i + 1..] {
            assert!(
                (a.continent, a.country, a.subdivision) != (b.continent, b.country, b.subdivision)
            );
        }
    }
    // Two different rule sets from the same places, each as the lookup ranks.
    let snap = example();
    let geo_records: Vec<_> = snap
        .model
        .records
        .iter()
        .filter_map(|r| match &r.policy {
            Policy::Geo(rules) if geo::by_location(rules) => Some(rules),
            _ => None,
        })
        .collect();
    let model = crate::policy::tests::geo::parse(&format!(
        "{}\n[records.\"www.gslb.test\"]\npolicy = \"geo\"\n[records.\"www.gslb.test\".geo]\n\
         country.SE = [\"us-east\"]\nsubdivision.GB-ENG = [\"ap-south\"]\ndefault = [\"eu-west\"]\n",
        crate::policy::tests::geo::REGIONS
    ));
    let Policy::Geo(other) = &model.records[0].policy else {
        panic!()
    };
    for rules in geo_records.into_iter().chain([other]) {
        let map = GeoMap::build(&places, rules).unwrap();
        for addr in addresses(2_000) {
            let client = Client {
                addr,
                source_prefix: None,
            };
            let was = geo::rank(rules, &client, &db.locate(addr));
            let new = map.rank(rules, addr);
            assert_eq!((&new.order, new.rule), (&was.order, was.rule), "{addr}");
        }
    }
}
