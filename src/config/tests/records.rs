//! Mistakes in `[records."NAME"]`, its geo rules and weights, and `[latency]`. The
//! record starts on line 7, after the three regions of [`REGIONS`].

use super::{REGIONS, err, errs, ok, rec_err};
use crate::model::{Policy, RegionId};

#[test]
fn undefined_region_names_the_known_ones() {
    let e = rec_err(concat!(
        "[records.\"www.gslb.example.com\"]\n",
        "policy = \"failover\"\n",
        "ttl = 20\n",
        "when_all_down = \"all\"\n",
        "# typo below\n",
        "regions = [\"us-east\", \"eu-wst\"]\n",
    ));
    assert_eq!(
        e,
        "gslb.toml:12:23: records.\"www.gslb.example.com\".regions: region \"eu-wst\" is not defined (known: ap-south, eu-west, us-east)"
    );
}

#[test]
fn regions_list() {
    let e = rec_err("[records.x]\npolicy = \"failover\"\nregions = []\n");
    assert_eq!(
        e,
        "gslb.toml:9:11: records.x.regions: must list at least one region"
    );
    let e = rec_err("[records.x]\npolicy = \"failover\"\nregions = [\"us-east\", \"us-east\"]\n");
    assert_eq!(
        e,
        "gslb.toml:9:23: records.x.regions: region \"us-east\" is listed twice"
    );
    let e = err("[records.x]\npolicy = \"latency\"\n");
    assert_eq!(
        e,
        "gslb.toml:1:10: records.x: has no candidate regions: no [regions.NAME] is defined"
    );
}

#[test]
fn names() {
    let e = rec_err("[records.\"www..example.com\"]\npolicy = \"geo\"\n");
    assert_eq!(
        e,
        "gslb.toml:7:10: records.\"www..example.com\": \"www..example.com\" is not a valid DNS name: it has an empty label"
    );
    let e = rec_err("[records.\"a.*.example\"]\npolicy = \"geo\"\n");
    assert!(e.ends_with("`*` is only allowed as the first label"), "{e}");
    let e =
        rec_err("[records.\"WWW.x\"]\npolicy = \"geo\"\n[records.\"www.x.\"]\npolicy = \"geo\"\n");
    assert_eq!(
        e,
        "gslb.toml:9:10: records.\"www.x.\": record www.x. is already defined at line 7 (names are compared ignoring case and the trailing dot)"
    );
}

#[test]
fn policy_and_enums() {
    let e = rec_err("[records.x]\npolicy = \"geograph\"\n");
    assert_eq!(
        e,
        "gslb.toml:8:10: records.x.policy: unknown policy \"geograph\" (expected one of geo, latency, weighted, failover)"
    );
    let e = rec_err("[records.x]\nttl = 5\n");
    assert_eq!(
        e,
        "gslb.toml:7:10: records.x: missing key \"policy\" (one of geo, latency, weighted, failover)"
    );
    let e = rec_err("[records.x]\npolicy = \"geo\"\nwhen_all_down = \"fail\"\n");
    assert_eq!(
        e,
        "gslb.toml:9:17: records.x.when_all_down: unknown value \"fail\" (expected one of first, all, nodata)"
    );
    let e = rec_err("[records.x]\npolicy = \"geo\"\nttl = -1\n");
    assert_eq!(
        e,
        "gslb.toml:9:7: records.x.ttl: must be between 0 and 2147483647 (RFC 2181), got -1"
    );
}

#[test]
fn keys_of_another_policy() {
    let all = errs(&format!(
        "{REGIONS}[records.x]\npolicy = \"failover\"\nweights = {{ us-east = 1 }}\nsticky = true\n[records.x.geo]\ndefault = [\"us-east\"]\n"
    ));
    assert_eq!(
        all,
        [
            "gslb.toml:9:11: records.x.weights: weights only applies to policy \"weighted\"",
            "gslb.toml:10:10: records.x.sticky: sticky only applies to policy \"weighted\"",
            "gslb.toml:11:1: records.x.geo: geo only applies to policy \"geo\"",
        ]
    );
}

#[test]
fn weights() {
    let e = rec_err("[records.x]\npolicy = \"weighted\"\n");
    assert_eq!(
        e,
        "gslb.toml:7:10: records.x: policy \"weighted\" needs weights, e.g. weights = { us-east = 3, eu-west = 1 }"
    );
    let cases = [
        (
            "weights = { us-east = 1, mars = 1 }",
            "9:26: records.x.weights: region \"mars\" is not defined (known: ap-south, eu-west, us-east)",
        ),
        (
            "weights = { us-east = 0, eu-west = 0 }",
            "9:11: records.x.weights: at least one weight must be greater than 0",
        ),
        (
            "weights = { us-east = 1000001 }",
            "9:23: records.x.weights.us-east: must be between 0 and 1000000 (0 = standby), got 1000001",
        ),
        (
            "weights = {}",
            "9:11: records.x.weights: must give the weight of at least one region",
        ),
        (
            "regions = [\"us-east\", \"eu-west\"]\nweights = { us-east = 1, ap-south = 1 }",
            "10:26: records.x.weights: region \"ap-south\" is not one of this record's regions (us-east, eu-west)",
        ),
        (
            "regions = [\"us-east\", \"eu-west\"]\nweights = { us-east = 1 }",
            "10:11: records.x.weights: region \"eu-west\" of this record's regions has no weight",
        ),
    ];
    for (body, want) in cases {
        let e = rec_err(&format!("[records.x]\npolicy = \"weighted\"\n{body}\n"));
        assert_eq!(e, format!("gslb.toml:{want}"), "{body}");
    }
}

#[test]
fn geo_keys() {
    let cases = [
        (
            "continent.EURO = [\"us-east\"]",
            "11:11: records.x.geo.continent.EURO: \"EURO\" is not a continent code (expected one of AF, AN, AS, EU, NA, OC, SA)",
        ),
        (
            "country.jp = [\"us-east\"]",
            "11:9: records.x.geo.country.jp: \"jp\" is not a country code (expected two upper-case letters, e.g. \"JP\")",
        ),
        (
            "subdivision.\"US-CALI\" = [\"us-east\"]",
            "11:13: records.x.geo.subdivision.US-CALI: \"US-CALI\" is not a subdivision code (expected country-subdivision in upper case, e.g. \"US-CA\")",
        ),
        (
            "cidr.\"203.0.113.1/24\" = [\"us-east\"]",
            "11:6: records.x.geo.cidr.\"203.0.113.1/24\": 203.0.113.1/24 has host bits set; did you mean 203.0.113.0/24?",
        ),
        (
            "cidr.\"2001:db8::/129\" = [\"us-east\"]",
            "11:6: records.x.geo.cidr.\"2001:db8::/129\": \"2001:db8::/129\" is not a network (expected e.g. \"203.0.113.0/24\" or \"2001:db8::/32\")",
        ),
        (
            "continent.EU = []",
            "11:16: records.x.geo.continent.EU: must list at least one region",
        ),
        (
            "country.JP = [\"eu-west\", \"eu-west\"]",
            "11:26: records.x.geo.country.JP: region \"eu-west\" is listed twice",
        ),
        (
            "default = [\"ap-sout\"]",
            "11:12: records.x.geo.default: region \"ap-sout\" is not defined (known: ap-south, eu-west, us-east)",
        ),
    ];
    for (rule, want) in cases {
        let e = rec_err(&format!(
            "[records.x]\npolicy = \"geo\"\nregions = [\"us-east\", \"eu-west\"]\n[records.x.geo]\n{rule}\n"
        ));
        assert_eq!(e, format!("gslb.toml:{want}"), "{rule}");
    }
}

#[test]
fn geo_without_rules_is_fine() {
    let m = ok(&format!(
        "{REGIONS}[records.x]\npolicy = \"geo\"\n[records.x.geo]\n"
    ));
    assert_eq!(m.records[0].policy, Policy::Geo(Default::default()));
}

#[test]
fn latency_table() {
    let all = errs(&format!(
        "{REGIONS}[latency]\ncontinent.XX = {{ us-east = 1 }}\ncountry.JP = {{ us-east = -1, mars = 2 }}\ncidr.\"10.0.0.1/8\" = {{ eu-west = 3.5 }}\ncidr.\"10.0.0.0/8\" = {{}}\ncidr.\"10.0.0.0/08\" = {{ eu-west = nan }}\n"
    ));
    assert_eq!(
        all,
        [
            "gslb.toml:8:11: latency.continent.XX: \"XX\" is not a continent code (expected one of AF, AN, AS, EU, NA, OC, SA)",
            "gslb.toml:9:26: latency.country.JP.us-east: must be a round-trip time in milliseconds, 0 or more, got -1",
            "gslb.toml:9:30: latency.country.JP: region \"mars\" is not defined (known: ap-south, eu-west, us-east)",
            "gslb.toml:10:6: latency.cidr.\"10.0.0.1/8\": 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
            "gslb.toml:11:6: latency.cidr.\"10.0.0.0/8\": must give the RTT of at least one region, e.g. { us-east = 20 }",
            "gslb.toml:12:6: latency.cidr.\"10.0.0.0/08\": network 10.0.0.0/8 is listed twice",
            "gslb.toml:12:34: latency.cidr.\"10.0.0.0/08\".eu-west: must be a round-trip time in milliseconds, 0 or more, got NaN",
        ]
    );
}

#[test]
fn geo_lists_may_name_regions_outside_the_candidates() {
    let m = ok(&format!(
        "{REGIONS}[records.x]\npolicy = \"geo\"\nregions = [\"us-east\", \"eu-west\"]\n[records.x.geo]\ncountry.JP = [\"ap-south\"]\n"
    ));
    let Policy::Geo(g) = &m.records[0].policy else {
        panic!("geo")
    };
    assert_eq!(g.country["JP"], [RegionId(2)]);
    assert_eq!(m.records[0].regions, [RegionId(0), RegionId(1)]);
}
