//! Table tests of ranking, health filtering and `when_all_down`, without network.

pub(super) mod geo;
// The fixed-seed generator the integration tests and benchmarks use.
mod latency;
#[path = "../../../tests/support/rng.rs"]
#[allow(unreachable_pub)]
pub(in crate::policy) mod rng;
mod weighted;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::health::RegionHealth;
use crate::model::{Defaults, DynRecord, LatencyTable, Pos, Server, TcpLimits};

const NOWHERE: Location = Location {
    continent: None,
    country: None,
    subdivision: None,
    coords: None,
    network: None,
};

/// Sets regions down in a copy of `h`.
pub(super) fn with_down(mut h: Health, down: &[u16]) -> Health {
    for &d in down {
        h.set(
            RegionId(d),
            RegionHealth {
                up: false,
                ..RegionHealth::default()
            },
        );
    }
    h
}

pub(super) fn region(name: &str, v4: &[&str], v6: &[&str]) -> Region {
    Region {
        name: name.into(),
        v4: v4.iter().map(|a| a.parse::<Ipv4Addr>().unwrap()).collect(),
        v6: v6.iter().map(|a| a.parse::<Ipv6Addr>().unwrap()).collect(),
        cname: None,
        location: None,
        probe: None,
    }
}

pub(super) fn model(when: WhenAllDown) -> Model {
    Model {
        file: "gslb.toml".into(),
        server: Server {
            listen: vec![],
            admin: None,
            admin_token: None,
            zones: "zones".into(),
            geoip: None,
            rate_limit: None,
            tcp: TcpLimits::default(),
            query_log: None,
            workers: None,
            probe_source: None,
            dnstap: None,
            state_file: None,
            reload_timeout: Default::default(),
        },
        defaults: Defaults::default(),
        regions: vec![
            region("us-east", &["192.0.2.10"], &["2001:db8:10::1"]),
            region("eu-west", &["192.0.2.20", "192.0.2.21"], &[]),
            region("ap-south", &["192.0.2.30"], &["2001:db8:30::1"]),
        ],
        records: vec![DynRecord {
            name: "db.gslb.example.com.".into(),
            pos: Pos::default(),
            policy: Policy::Failover,
            ttl: 20,
            fallback_ttl: 10,
            regions: vec![RegionId(1), RegionId(0), RegionId(2)],
            when_all_down: when,
        }],
        latency: LatencyTable::default(),
        cluster: None,
        dnssec: None,
    }
}

pub(super) const CLIENT: Client = Client {
    addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
    source_prefix: None,
};

fn health(m: &Model, down: &[u16]) -> Health {
    with_down(Health::all_up(m), down)
}

#[test]
fn failover_ranks_in_configured_order_with_scope_zero() {
    let m = model(WhenAllDown::First);
    let r = rank(&m, &Health::all_up(&m), &m.records[0], &CLIENT, &NOWHERE, 0);
    assert_eq!(&*r.order, &[RegionId(1), RegionId(0), RegionId(2)]);
    assert_eq!(r.scope, 0);
}

#[test]
fn first_usable_region_with_the_family_wins() {
    let m = model(WhenAllDown::First);
    let rec = &m.records[0];
    // (down regions, family) -> pick
    let table: &[(&[u16], Family, Pick)] = &[
        (&[], Family::V4, Pick::Region(RegionId(1))),
        (&[1], Family::V4, Pick::Region(RegionId(0))),
        (&[1, 0], Family::V4, Pick::Region(RegionId(2))),
        // eu-west has no IPv6: skipped for AAAA even when up.
        (&[], Family::V6, Pick::Region(RegionId(0))),
        (&[0], Family::V6, Pick::Region(RegionId(2))),
        // Only eu-west is up and it has no IPv6: empty answer, not a down region.
        (&[0, 2], Family::V6, Pick::Nothing),
    ];
    for (down, family, want) in table {
        let d = select(&m, &health(&m, down), rec, &CLIENT, &NOWHERE, *family, 0);
        assert_eq!(d.pick, *want, "down={down:?} family={family:?}");
        assert!(!d.all_down);
    }
}

#[test]
fn drained_region_is_skipped() {
    let m = model(WhenAllDown::First);
    let mut h = Health::all_up(&m);
    h.set(
        RegionId(1),
        RegionHealth {
            drained: true,
            ..RegionHealth::default()
        },
    );
    let d = select(&m, &h, &m.records[0], &CLIENT, &NOWHERE, Family::V4, 0);
    assert_eq!(d.pick, Pick::Region(RegionId(0)));
}

#[test]
fn all_down_follows_when_all_down() {
    for (when, v4, v6) in [
        (
            WhenAllDown::First,
            Pick::Region(RegionId(1)),
            Pick::Region(RegionId(0)),
        ),
        (WhenAllDown::All, Pick::All, Pick::All),
        (WhenAllDown::Nodata, Pick::Nothing, Pick::Nothing),
    ] {
        let m = model(when);
        let h = health(&m, &[0, 1, 2]);
        let d4 = select(&m, &h, &m.records[0], &CLIENT, &NOWHERE, Family::V4, 0);
        let d6 = select(&m, &h, &m.records[0], &CLIENT, &NOWHERE, Family::V6, 0);
        assert_eq!((d4.pick, d6.pick), (v4, v6), "{when:?}");
        assert!(d4.all_down && d6.all_down);
    }
}

#[test]
fn addresses_of_one_family_in_order_with_health_indexes() {
    let m = model(WhenAllDown::First);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let eu: Vec<(usize, IpAddr)> = addresses(&m.regions[1], Family::V4).collect();
    assert_eq!(eu, [(0, ip("192.0.2.20")), (1, ip("192.0.2.21"))]);
    assert_eq!(addresses(&m.regions[1], Family::V6).count(), 0);
    // IPv6 indexes follow the IPv4 addresses, as in the health table.
    let us: Vec<(usize, IpAddr)> = addresses(&m.regions[0], Family::V6).collect();
    assert_eq!(us, [(1, ip("2001:db8:10::1"))]);
}

#[test]
fn down_addresses_are_skipped_and_a_region_with_none_of_the_family_up_is_passed_over() {
    let m = model(WhenAllDown::First);
    let mut h = Health::all_up(&m);
    // us-east (index 0): its IPv6 address (index 1) is down, IPv4 up.
    h.set(
        RegionId(0),
        RegionHealth {
            addr_up: vec![true, false],
            ..RegionHealth::default()
        },
    );
    assert!(h.serves(&m.regions[0], RegionId(0), Family::V4));
    assert!(!h.serves(&m.regions[0], RegionId(0), Family::V6));
    let d = select(&m, &h, &m.records[0], &CLIENT, &NOWHERE, Family::V6, 0);
    assert_eq!(d.pick, Pick::Region(RegionId(2)), "ap-south's IPv6 is next");
}

#[test]
fn an_ipv4_mapped_client_subnet_is_its_ipv4_subnet() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let c = Client::from_ecs(ip("::ffff:81.2.69.0"), 120);
    assert_eq!((c.addr, c.source_prefix), (ip("81.2.69.0"), Some(24)));
    // Shorter than /96 it is not one IPv4 subnet; other IPv6 stays as it is.
    for (a, p) in [
        ("::ffff:0:0", 95),
        ("2002:5102:4500::", 40),
        ("::81.2.69.0", 120),
    ] {
        assert_eq!(Client::from_ecs(ip(a), p).addr, ip(a));
    }
    // The scope echoed moves into the mapped space; 0 stays 0, and source 0 means 0.
    assert_eq!(ecs_scope(ip("::ffff:81.2.69.0"), 120, 16), 112);
    assert_eq!(ecs_scope(ip("::ffff:81.2.69.0"), 120, 32), 128);
    assert_eq!(ecs_scope(ip("::ffff:81.2.69.0"), 120, 0), 0);
    assert_eq!(ecs_scope(ip("81.2.69.0"), 24, 16), 16);
    assert_eq!(ecs_scope(ip("2002:5102:4500::"), 40, 32), 32);
    assert_eq!(ecs_scope(ip("81.2.69.0"), 0, 16), 0);
}
