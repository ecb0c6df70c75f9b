//! The latency policy: table rows by specificity, distance estimates, penalties, ties.

use super::super::*;
use super::geo::{REGIONS, client, loc, names, parse};
use crate::health::RegionHealth;
use crate::model::{Coords, Model};

const LATENCY: &str = r#"
[records."edge.gslb.test"]
policy = "latency"
regions = ["us-east", "eu-west", "ap-south"]

[latency]
continent.EU = { eu-west = 20, us-east = 90, ap-south = 140 }
country.JP = { ap-south = 70, us-east = 160 }
cidr."198.51.100.0/24" = { us-east = 5 }
"#;

fn model() -> Model {
    parse(&format!("{REGIONS}{LATENCY}"))
}

fn at(l: Location, lat: f64, lon: f64) -> Location {
    Location {
        coords: Some(Coords { lat, lon }),
        ..l
    }
}

fn order(m: &Model, h: &Health, addr: &str, l: &Location) -> (Vec<String>, Ranking) {
    let r = rank(m, h, &m.records[0], &client(addr), l, 0);
    (names(m, &r.order), r)
}

#[test]
fn table_rows_by_specificity() {
    let m = model();
    let h = Health::all_up(&m);
    // Continent row.
    let (o, r) = order(&m, &h, "81.2.69.1", &loc("EU", "GB", "", "81.2.69.0/24"));
    assert_eq!(o, ["eu-west", "us-east", "ap-south"]);
    assert!(matches!(r.rule, Rule::Latency(latency::Row::Continent(_))));
    assert_eq!(r.scope, 24);
    // Country row beats continent; the unlisted eu-west has no estimate (no coordinates).
    let (o, _) = order(&m, &h, "1.0.16.1", &loc("AS", "JP", "", "1.0.16.0/24"));
    assert_eq!(o, ["ap-south", "us-east", "eu-west"]);
    // Country row plus a distance for the unlisted region.
    let (o, r) = order(
        &m,
        &h,
        "1.0.16.1",
        &at(loc("AS", "JP", "", "1.0.16.0/24"), 35.69, 139.69),
    );
    assert_eq!(o, ["ap-south", "eu-west", "us-east"], "{:?}", r.rtt);
    // A cidr row beats everything, even a European location.
    let (o, r) = order(
        &m,
        &h,
        "198.51.100.9",
        &loc("EU", "DE", "", "198.51.100.0/24"),
    );
    assert_eq!(o[0], "us-east");
    assert!(matches!(r.rule, Rule::Latency(latency::Row::Cidr(_))));
}

#[test]
fn distance_estimates_without_a_row() {
    let m = model();
    let h = Health::all_up(&m);
    // Sydney: Mumbai ~10,200 km, Virginia ~15,700 km, Dublin ~17,200 km.
    let (o, r) = order(
        &m,
        &h,
        "103.1.1.1",
        &at(loc("OC", "AU", "", "103.1.1.0/24"), -33.87, 151.21),
    );
    assert_eq!(o, ["ap-south", "us-east", "eu-west"]);
    assert_eq!(r.rtt.len(), 3);
    assert!(r.rtt.iter().all(|x| x.source == RttSource::Distance));
    let mumbai = r.rtt[0].ms;
    assert!(
        (95.0..110.0).contains(&mumbai),
        "{mumbai} ms for ~10,200 km"
    );
    assert_eq!(r.scope, 24);
    // No coordinates and no row: the record's order, independent of the client.
    let (o, r) = order(&m, &h, "10.0.0.1", &loc("", "", "", "10.0.0.0/8"));
    assert_eq!(o, ["us-east", "eu-west", "ap-south"]);
    assert!(r.rtt.is_empty());
}

#[test]
fn a_slow_region_loses_to_the_next_and_ties_keep_order() {
    let m = model();
    let mut h = Health::all_up(&m);
    let eu = m.region_id("eu-west").unwrap();
    h.set(
        eu,
        RegionHealth {
            rtt_penalty_ms: 100.0,
            ..RegionHealth::default()
        },
    );
    let (o, r) = order(&m, &h, "81.2.69.1", &loc("EU", "GB", "", "81.2.69.0/24"));
    assert_eq!(o, ["us-east", "eu-west", "ap-south"], "20 + 100 ms > 90 ms");
    assert_eq!(r.rtt[1].penalty, 100.0);
    // Equal estimates: configured order.
    let m = parse(&format!(
        "{REGIONS}[records.\"t.gslb.test\"]\npolicy = \"latency\"\nregions = [\"ap-south\", \"eu-west\"]\n\
         [latency]\ncontinent.EU = {{ eu-west = 50, ap-south = 50 }}\n"
    ));
    let (o, _) = order(
        &m,
        &Health::all_up(&m),
        "81.2.69.1",
        &loc("EU", "GB", "", "81.2.69.0/24"),
    );
    assert_eq!(o, ["ap-south", "eu-west"]);
}

#[test]
fn great_circle_distance() {
    let london = Coords {
        lat: 51.5074,
        lon: -0.1278,
    };
    let new_york = Coords {
        lat: 40.7128,
        lon: -74.0060,
    };
    let d = latency::distance_km(london, new_york);
    assert!((d - 5570.0).abs() < 20.0, "{d}");
    assert_eq!(latency::distance_km(london, london), 0.0);
}
