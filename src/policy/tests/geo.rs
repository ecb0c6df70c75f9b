//! The geo policy as a table: (client, location) -> ranking, rule and ECS scope.

use std::net::IpAddr;
use std::path::Path;

use super::super::*;
use crate::geo::Code;
use crate::model::Model;

pub(in crate::policy) const REGIONS: &str = r#"
[regions.us-east]
addresses = ["192.0.2.10", "2001:db8:10::1"]
location = { lat = 39.04, lon = -77.49 }
[regions.us-west]
addresses = ["192.0.2.40"]
location = { lat = 37.35, lon = -121.96 }
[regions.eu-west]
addresses = ["192.0.2.20"]
location = { lat = 53.34, lon = -6.26 }
[regions.ap-south]
addresses = ["192.0.2.30"]
location = { lat = 19.08, lon = 72.88 }
"#;

const RECORD: &str = r#"
[records."www.gslb.test"]
policy = "geo"
regions = ["us-east", "eu-west", "ap-south"]
[records."www.gslb.test".geo]
continent.EU = ["eu-west", "us-east"]
country.JP = ["ap-south", "us-east"]
subdivision."US-CA" = ["us-west", "us-east"]
cidr."203.0.113.0/24" = ["eu-west"]
cidr."203.0.113.128/25" = ["ap-south"]
cidr."2001:db8:e0::/48" = ["eu-west"]
default = ["us-east", "eu-west", "ap-south"]
"#;

pub(in crate::policy) fn parse(text: &str) -> Model {
    crate::config::parse(text, Path::new("gslb.toml")).unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn names(m: &Model, order: &[RegionId]) -> Vec<String> {
    order.iter().map(|id| m.region(*id).name.clone()).collect()
}

/// A location as a City database would give it.
pub(super) fn loc(continent: &str, country: &str, sub: &str, net: &str) -> Location {
    let code = |s: &str| if s.is_empty() { None } else { Code::new(s) };
    let (addr, prefix) = net.split_once('/').unwrap();
    Location {
        continent: code(continent),
        country: code(country),
        subdivision: code(sub),
        coords: None,
        network: Some((addr.parse().unwrap(), prefix.parse().unwrap())),
    }
}

pub(super) fn client(addr: &str) -> Client {
    Client {
        addr: addr.parse::<IpAddr>().unwrap(),
        source_prefix: Some(24),
    }
}

#[test]
fn most_specific_rule_wins_and_the_rest_follow_in_record_order() {
    let m = parse(&format!("{REGIONS}{RECORD}"));
    let rec = &m.records[0];
    let Policy::Geo(rules) = &rec.policy else {
        panic!()
    };
    // (client, location) -> (order, rule, scope)
    let table: &[(&str, Location, &[&str], &str, u8)] = &[
        // cidr beats the database; longest prefix wins.
        (
            "203.0.113.5",
            loc("AS", "JP", "", "203.0.0.0/16"),
            &["eu-west", "us-east", "ap-south"],
            "cidr 203.0.113.0/24",
            25,
        ),
        (
            "203.0.113.200",
            loc("AS", "JP", "", "203.0.0.0/16"),
            &["ap-south", "us-east", "eu-west"],
            "cidr 203.0.113.128/25",
            25,
        ),
        // subdivision beats country and continent; names outside `regions` are allowed.
        (
            "8.8.8.8",
            loc("NA", "US", "US-CA", "8.8.8.0/24"),
            &["us-west", "us-east", "eu-west", "ap-south"],
            "subdivision US-CA",
            24,
        ),
        (
            "1.0.16.1",
            loc("AS", "JP", "JP-13", "1.0.16.0/24"),
            &["ap-south", "us-east", "eu-west"],
            "country JP",
            24,
        ),
        (
            "81.2.69.160",
            loc("EU", "GB", "GB-ENG", "81.2.69.160/27"),
            &["eu-west", "us-east", "ap-south"],
            "continent EU",
            27,
        ),
        (
            "41.0.0.1",
            loc("AF", "ZA", "", "41.0.0.0/24"),
            &["us-east", "eu-west", "ap-south"],
            "default",
            24,
        ),
        // Not in the database: the default, for the database's empty network.
        (
            "10.1.2.3",
            loc("", "", "", "10.0.0.0/8"),
            &["us-east", "eu-west", "ap-south"],
            "default",
            8,
        ),
        // IPv6 client: only IPv6 cidr rules apply.
        (
            "2001:db8:e0::1",
            loc("", "", "", "2001:db8::/32"),
            &["eu-west", "us-east", "ap-south"],
            "cidr 2001:db8:e0::/48",
            48,
        ),
    ];
    for (addr, l, want, rule, scope) in table {
        let r = geo::rank(rules, &client(addr), l);
        assert_eq!(names(&m, &r.order), *want, "{addr}");
        let got = match r.rule {
            Rule::Cidr(n) => format!("cidr {n}"),
            Rule::Subdivision(c) => format!("subdivision {c}"),
            Rule::Country(c) => format!("country {c}"),
            Rule::Continent(c) => format!("continent {c}"),
            Rule::Default => "default".into(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, *rule, "{addr}");
        assert_eq!(r.scope, *scope, "{addr}: scope");
    }
}

#[test]
fn scope_is_long_enough_to_exclude_nearby_cidr_rules() {
    let m = parse(&format!("{REGIONS}{RECORD}"));
    let rec = &m.records[0];
    let Policy::Geo(rules) = &rec.policy else {
        panic!()
    };
    // 203.0.112.7 is in a /16 database network but not in 203.0.113.0/24: an answer
    // cached for the /16 would wrongly cover the rule's /24, so the scope must be 24.
    let r = geo::rank(
        rules,
        &client("203.0.112.7"),
        &loc("AS", "JP", "", "203.0.0.0/16"),
    );
    assert_eq!(r.rule, Rule::Country(Code::new("JP").unwrap()));
    assert_eq!(r.scope, 24);
    // Inside the /24 but outside its /25 exception: scope 25, not 24.
    let r = geo::rank(
        rules,
        &client("203.0.113.1"),
        &loc("", "", "", "203.0.0.0/16"),
    );
    assert_eq!(r.scope, 25);
}

#[test]
fn without_rules_for_locations_the_scope_ignores_the_database() {
    let m = parse(&format!(
        "{REGIONS}[records.\"a.gslb.test\"]\npolicy = \"geo\"\n[records.\"a.gslb.test\".geo]\ndefault = [\"eu-west\"]\n"
    ));
    let rec = &m.records[0];
    let Policy::Geo(rules) = &rec.policy else {
        panic!()
    };
    let r = geo::rank(
        rules,
        &client("81.2.69.1"),
        &loc("EU", "GB", "", "81.2.69.0/24"),
    );
    assert_eq!(
        names(&m, &r.order),
        ["eu-west", "us-east", "us-west", "ap-south"]
    );
    assert_eq!(r.scope, 0, "the answer is the same for every client");
    // No geo table at all: the record's order.
    let m = parse(&format!(
        "{REGIONS}[records.\"b.gslb.test\"]\npolicy = \"geo\"\n"
    ));
    let rec = &m.records[0];
    let Policy::Geo(rules) = &rec.policy else {
        panic!()
    };
    let r = geo::rank(
        rules,
        &client("81.2.69.1"),
        &loc("EU", "GB", "", "81.2.69.0/24"),
    );
    assert_eq!(r.rule, Rule::RecordOrder);
    assert_eq!(
        names(&m, &r.order),
        ["us-east", "us-west", "eu-west", "ap-south"]
    );
}

#[test]
fn geo_then_health_then_fail_open() {
    let m = parse(&format!("{REGIONS}{RECORD}"));
    let rec = &m.records[0];
    let eu = loc("EU", "GB", "", "81.2.69.0/24");
    let c = client("81.2.69.1");
    let h = Health::all_up(&m);
    let pick = |h: &Health| select(&m, h, rec, &c, &eu, Family::V4, 0).pick;
    let id = |n: &str| m.region_id(n).unwrap();
    assert_eq!(pick(&h), Pick::Region(id("eu-west")));
    let h = super::with_down(h, &[id("eu-west").0]);
    assert_eq!(pick(&h), Pick::Region(id("us-east")));
    // Not in the EU list: ap-south still follows from the record's regions.
    let h = super::with_down(h, &[id("us-east").0]);
    assert_eq!(pick(&h), Pick::Region(id("ap-south")));
    // All down: fail open to the ranking's first.
    let h = super::with_down(h, &[id("ap-south").0, id("us-west").0]);
    let d = select(&m, &h, rec, &c, &eu, Family::V4, 0);
    assert!(d.all_down);
    assert_eq!(d.pick, Pick::Region(id("eu-west")));
    // AAAA: only us-east has IPv6.
    let d = select(&m, &Health::all_up(&m), rec, &c, &eu, Family::V6, 0);
    assert_eq!(d.pick, Pick::Region(id("us-east")));
}
