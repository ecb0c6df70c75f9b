//! The weighted policy: shares, standby, sticky stability and minimal movement, scope.

use std::collections::HashMap;

use super::super::*;
use super::geo::{REGIONS, names, parse};
use crate::model::Model;

fn model(sticky: bool) -> Model {
    parse(&format!(
        "{REGIONS}[records.\"api.gslb.test\"]\npolicy = \"weighted\"\nsticky = {sticky}\n\
         weights = {{ us-east = 3, eu-west = 1, ap-south = 1, us-west = 0 }}\n"
    ))
}

// Deterministic stand-in for the server's per-query random numbers.
use super::rng::Rng as Xorshift;

/// Share of answers per region over `n` draws, with `down` regions down.
fn shares(m: &Model, down: &[&str], n: usize) -> HashMap<String, f64> {
    let rec = &m.records[0];
    let ids: Vec<u16> = down.iter().map(|d| m.region_id(d).unwrap().0).collect();
    let h = super::with_down(Health::all_up(m), &ids);
    let c = super::CLIENT;
    let mut rng = Xorshift(0x1234_5678_9ABC_DEF1);
    let mut count: HashMap<String, usize> = HashMap::new();
    for _ in 0..n {
        let d = select(m, &h, rec, &c, &Location::default(), Family::V4, rng.next());
        let Pick::Region(id) = d.pick else {
            panic!("{:?}", d.pick)
        };
        *count.entry(m.region(id).name.clone()).or_default() += 1;
    }
    count
        .into_iter()
        .map(|(k, v)| (k, v as f64 / n as f64))
        .collect()
}

fn assert_share(s: &HashMap<String, f64>, region: &str, want: f64) {
    let got = s.get(region).copied().unwrap_or(0.0);
    assert!(
        (got - want).abs() < 0.02,
        "{region}: {got:.4} vs {want:.4} ({s:?})"
    );
}

#[test]
fn shares_follow_the_weights_within_two_percent() {
    let m = model(false);
    let s = shares(&m, &[], 100_000);
    assert_share(&s, "us-east", 0.6);
    assert_share(&s, "eu-west", 0.2);
    assert_share(&s, "ap-south", 0.2);
    assert_share(&s, "us-west", 0.0);
    // us-east down: the others share by their weights (1:1).
    let s = shares(&m, &["us-east"], 100_000);
    assert_share(&s, "eu-west", 0.5);
    assert_share(&s, "ap-south", 0.5);
}

#[test]
fn weight_zero_is_standby() {
    let m = model(false);
    let s = shares(&m, &["us-east", "eu-west", "ap-south"], 1000);
    assert_share(&s, "us-west", 1.0);
    let r = rank(
        &m,
        &Health::all_up(&m),
        &m.records[0],
        &super::CLIENT,
        &Location::default(),
        7,
    );
    assert_eq!(names(&m, &r.order).last().unwrap(), "us-west");
    assert_eq!(r.scope, 0, "non-sticky answers do not depend on the client");
}

fn sticky_pick(m: &Model, h: &Health, subnet: u32, rnd: u64) -> RegionId {
    let addr = std::net::Ipv4Addr::from(subnet << 8 | (rnd as u32 & 0xFF));
    let c = Client {
        addr: addr.into(),
        source_prefix: Some(24),
    };
    match select(
        m,
        h,
        &m.records[0],
        &c,
        &Location::default(),
        Family::V4,
        rnd,
    )
    .pick
    {
        Pick::Region(id) => id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn sticky_keeps_a_subnet_on_one_region_and_splits_subnets_by_weight() {
    let m = model(true);
    let h = Health::all_up(&m);
    let mut per_region: HashMap<RegionId, usize> = HashMap::new();
    let n = 20_000u32;
    for subnet in 0..n {
        let subnet = 0x0A_0000 + subnet * 7919;
        let first = sticky_pick(&m, &h, subnet, 1);
        // Any host of the /24, any random number: same region.
        for rnd in [2u64, 99, 0xFFFF_FFFF_0000_0001] {
            assert_eq!(sticky_pick(&m, &h, subnet, rnd), first);
        }
        *per_region.entry(first).or_default() += 1;
    }
    let share = |name: &str| {
        per_region
            .get(&m.region_id(name).unwrap())
            .copied()
            .unwrap_or(0) as f64
            / n as f64
    };
    assert!((share("us-east") - 0.6).abs() < 0.02, "{per_region:?}");
    assert!((share("eu-west") - 0.2).abs() < 0.02, "{per_region:?}");
    let c = Client {
        addr: "10.1.2.3".parse().unwrap(),
        source_prefix: Some(32),
    };
    assert_eq!(
        rank(&m, &h, &m.records[0], &c, &Location::default(), 0).scope,
        24
    );
    let c = Client {
        addr: "2001:db8::1".parse().unwrap(),
        source_prefix: Some(64),
    };
    assert_eq!(
        rank(&m, &h, &m.records[0], &c, &Location::default(), 0).scope,
        56
    );
}

#[test]
fn sticky_moves_only_the_clients_of_a_failed_region() {
    let m = model(true);
    let up = Health::all_up(&m);
    let eu = m.region_id("eu-west").unwrap();
    let down = super::with_down(up.clone(), &[eu.0]);
    let (mut moved, mut from_eu, mut eu_to) = (0, 0, HashMap::<RegionId, usize>::new());
    for subnet in 0..10_000u32 {
        let subnet = 0x0B_0000 + subnet * 104_729;
        let before = sticky_pick(&m, &up, subnet, 5);
        let after = sticky_pick(&m, &down, subnet, 5);
        if before == eu {
            from_eu += 1;
            *eu_to.entry(after).or_default() += 1;
        } else if before != after {
            moved += 1;
        }
    }
    assert_eq!(moved, 0, "clients of healthy regions must stay");
    assert!(from_eu > 1000);
    // eu-west's clients spread over the others by weight (3:1).
    let us = eu_to[&m.region_id("us-east").unwrap()] as f64 / from_eu as f64;
    assert!((us - 0.75).abs() < 0.05, "{eu_to:?}");
}
