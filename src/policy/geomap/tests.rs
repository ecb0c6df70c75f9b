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
    let v6_near: [u128; 3] = [0x2a02_d3c0 << 96, 0x2001_0db8 << 96, 0x2001_0218 << 96];
    (0..n)
        .map(|i| {
            let r = rng.next();
            let near_v4 = |r: u64| {
                let [a, b] = v4_near[(r >> 40) as usize % v4_near.len()];
                u32::from_be_bytes([a, b, (r >> 8) as u8, r as u8])
            };
            match i % 8 {
                0 | 4 => IpAddr::V4(Ipv4Addr::from(r as u32)),
                1 | 5 => IpAddr::V4(Ipv4Addr::from(near_v4(r))),
                2 => {
                    let base = v6_near[(r >> 40) as usize % v6_near.len()];
                    let low = u128::from(rng.next() as u32) | u128::from(r as u16) << 48;
                    IpAddr::V6(Ipv6Addr::from(base | low))
                }
                // IPv4 seen through IPv6: mapped, compatible, 6to4 and Teredo, where the
                // database aliases its IPv4 tree.
                6 => {
                    let v4 = u128::from(if r & 1 == 0 { near_v4(r) } else { r as u32 });
                    let low = u128::from(rng.next());
                    let addr = match (r >> 60) % 4 {
                        0 => 0xffff << 32 | v4,
                        1 => v4,
                        2 => 0x2002 << 112 | v4 << 80 | low,
                        _ => 0x2001_0000 << 96 | v4 << 64 | low,
                    };
                    IpAddr::V6(Ipv6Addr::from(addr))
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
    // and the subdivision, country and continent rules, in both families, IPv6 ones
    // inside the aliases of the IPv4 tree (6to4, Teredo, ::/96) among them.
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
cidr."2002:5102:4500::/40" = ["eu-west"]
cidr."2001:0:5102::/48" = ["us-east"]
cidr."::81.2.0.0/112" = ["ap-south"]
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
    let o = |i| encode(Outcome::Continent(i));
    let cidr = |i| encode(Outcome::Cidr(i));
    let mut spans = vec![(0, o(0)), (100, o(1)), (200, o(2))];
    overlay(&mut spans, 150, 249, cidr(0), 32);
    assert_eq!(spans, [(0, o(0)), (100, o(1)), (150, cidr(0)), (250, o(2))]);
    // Up to the end of the space, and over a whole span.
    overlay(&mut spans, 100, u128::from(u32::MAX), cidr(1), 32);
    assert_eq!(spans, [(0, o(0)), (100, cidr(1))]);
    let t = Tree::build(&spans, 32).unwrap();
    assert_eq!(t.lookup(99, 32).0, o(0));
    assert_eq!(t.lookup(100, 32).0, cidr(1));
    assert_eq!(t.lookup(u128::from(u32::MAX), 32), (cidr(1), 1));
    // One outcome everywhere: scope 0.
    let fallback = encode(Outcome::Fallback);
    let t = Tree::build(&[(0, fallback)], 128).unwrap();
    assert_eq!(t.lookup(12345, 128), (fallback, 0));
}

#[test]
fn gaps_split_into_aligned_networks() {
    assert_eq!(prefixes(0, 1 << 32), [(0, 96)]);
    let mapped = 0xffff_u128 << 32;
    assert_eq!(prefixes(mapped, mapped + (1 << 32)), [(mapped, 96)]);
    let six_to_four = 0x2002_u128 << 112;
    assert_eq!(prefixes(six_to_four, 0x2003 << 112), [(six_to_four, 16)]);
    // From 2002:: up to the top of the space: ever larger blocks (2002::/15 first).
    let up = prefixes(six_to_four, 0);
    assert_eq!(up[0], (six_to_four, 15));
    assert_eq!(up.last(), Some(&(1 << 127, 1)));
    // Unaligned on both sides.
    assert_eq!(prefixes(3, 9), [(3, 128), (4, 126), (8, 128)]);
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
        assert!(
            spans
                .iter()
                .all(|&(_, p)| (p as usize) < distinct || p & ALIAS != 0)
        );
    }
    // In IPv6, the IPv4 tree (::/96) and its aliases (::ffff:0:0/96, 2001::/32,
    // 2002::/16) are spans that send lookups to the IPv4 tree.
    let v6 = places.v6.as_ref().unwrap();
    let alias_at = |net: u128, len: u32| v6.contains(&(net, ALIAS | len));
    assert!(alias_at(0, 96), "{v6:x?}");
    assert!(alias_at(0xffff << 32, 96));
    assert!(alias_at(0x2001_0000 << 96, 32));
    assert!(alias_at(0x2002 << 112, 16));
    assert!(
        v6.len() < v4 + 100,
        "no copies of the IPv4 networks: {v6:x?}"
    );
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

#[test]
fn in_an_alias_of_the_ipv4_tree_ipv6_cidr_rules_keep_their_scope() {
    // One network; its IPv4 tree is shallow around 100.0.0.0/8 (depth 2 at 101.0.0.0).
    let csv = "network,continent,country,subdivision,lat,lon\n1.0.0.0/24,EU,GB,,,\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.mmdb");
    let bytes = crate::geoip_build::build_bytes(csv, Path::new("one.csv"), 0).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let db = GeoDb::open(&path).unwrap();
    let model = crate::policy::tests::geo::parse(&format!(
        "{}\n[records.\"www.gslb.test\"]\npolicy = \"geo\"\n[records.\"www.gslb.test\".geo]\n\
         country.GB = [\"eu-west\"]\ncidr.\"2002:6400::/24\" = [\"ap-south\"]\n\
         cidr.\"1.0.0.128/25\" = [\"ap-south\"]\ndefault = [\"us-east\"]\n",
        crate::policy::tests::geo::REGIONS
    ));
    let Policy::Geo(rules) = &model.records[0].policy else {
        panic!()
    };
    let map = GeoMap::build(&Places::build(&db), rules).unwrap();
    let rank = |a: &str| {
        let r = map.rank(rules, a.parse().unwrap());
        (format!("{:?}", r.rule), r.scope)
    };
    // 6to4 of 101.0.0.0: the IPv4 tree says /2 (16 + 2 = 18), but 2002:6400::/24 sits
    // inside 2002:6000::/20: the scope must stay at /24.
    let (rule, scope) = rank("2002:6500::1");
    assert!(
        rule.contains("Fallback") || rule.contains("Default"),
        "{rule}"
    );
    assert_eq!(scope, 24);
    assert!(rank("2002:64ff::1").0.contains("Cidr"));
    // 6to4 of 1.0.0.1: GB through the alias, at 16 + the IPv4 depth; IPv4 cidr rules do
    // not apply to an IPv6 client (1.0.0.129 as 6to4 is GB, not the cidr).
    let (rule, scope) = rank("2002:0100:0001::");
    assert!(rule.contains("GB"), "{rule}");
    assert_eq!(scope, 16 + 24);
    assert!(rank("2002:0100:0081::").0.contains("GB"));
    assert!(rank("1.0.0.129").0.contains("Cidr"));
    assert!(map.nodes().1 < 200, "IPv6 keeps no copy of the IPv4 tree");
    check("one network", rules, &db);
}
