//! Regions answered by name (`cname`), for cloud load balancers whose addresses change:
//! every type at the dynamic name gets the chosen region's CNAME with the record's TTL,
//! no address records; a drain or failover moves to an address region; a target inside
//! our zones is followed as a static CNAME is; ECS scope as for any answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query, rrs};
use crate::harness::{Deployment, Gslbd};
use crate::http::{get, post};
use crate::{CONFIG, zone_text};

fn config() -> String {
    format!(
        r#"{CONFIG}
[regions.cloud]
cname = "eu-west-1.lb.cloud.example."

[regions.local]
cname = "static.gslb.test."

[records."lb.gslb.test"]
policy = "failover"
regions = ["cloud", "us-east"]
ttl = 15

[records."inner.gslb.test"]
policy = "failover"
regions = ["local", "us-east"]
"#
    )
}

fn start() -> (Gslbd, Deployment, SocketAddr) {
    let dep = Deployment::new(&config(), &[("gslb.test.zone", &zone_text())]);
    let server = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = server.admin.expect("admin address logged");
    (server, dep, admin)
}

#[test]
fn every_type_gets_the_cname_of_the_chosen_region() {
    let (s, _dep, admin) = start();
    for t in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::CNAME,
    ] {
        let r = dns::udp(s.udp, &query("lb.gslb.test.", t));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{t}");
        assert!(r.metadata.authoritative);
        assert_eq!(
            rrs(&r.answers),
            ["lb.gslb.test. 15 CNAME eu-west-1.lb.cloud.example."],
            "{t}"
        );
        assert!(r.authorities.is_empty(), "{t}: no SOA with an answer");
    }
    // Over TCP alike.
    let r = dns::tcp(s.tcp, &query("lb.gslb.test.", RecordType::A));
    assert_eq!(
        rrs(&r.answers),
        ["lb.gslb.test. 15 CNAME eu-west-1.lb.cloud.example."]
    );

    // Drained: the next region's addresses, with the fallback TTL (10); TXT then has no
    // data, as at any address name.
    assert_eq!(post(admin, "/api/v1/regions/cloud/drain").status, 200);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let r = dns::udp(s.udp, &query("lb.gslb.test.", RecordType::A));
        if rrs(&r.answers) == ["lb.gslb.test. 10 A 192.0.2.10"] {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", rrs(&r.answers));
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = dns::udp(s.udp, &query("lb.gslb.test.", RecordType::TXT));
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities.len(), 1, "NODATA with the SOA");

    // The regions report shows the name instead of addresses.
    let regions = get(admin, "/api/v1/regions").json();
    let cloud = regions["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cloud")
        .unwrap()
        .clone();
    assert_eq!(cloud["cname"], "eu-west-1.lb.cloud.example.");
    assert_eq!(cloud["addresses"], serde_json::json!([]));
}

#[test]
fn an_in_zone_target_is_followed_and_ecs_gets_its_scope() {
    let (s, _dep, admin) = start();
    let r = dns::udp(s.udp, &query("inner.gslb.test.", RecordType::A));
    assert_eq!(
        rrs(&r.answers),
        [
            "inner.gslb.test. 30 CNAME static.gslb.test.",
            "static.gslb.test. 300 A 192.0.2.1"
        ]
    );
    let r = dns::udp(s.udp, &query("inner.gslb.test.", RecordType::MX));
    assert_eq!(
        rrs(&r.answers),
        ["inner.gslb.test. 30 CNAME static.gslb.test."]
    );
    assert_eq!(r.authorities.len(), 1, "the target's NODATA: its SOA");
    // With ECS: echoed, scope 0 (failover does not depend on the client).
    let r = dns::udp(
        s.udp,
        &dns::with_ecs(query("lb.gslb.test.", RecordType::A), "81.2.69.0/24"),
    );
    let (_, source, scope) = dns::ecs_of(&r).expect("ECS echoed");
    assert_eq!((source, scope), (24, 0));
    // explain names the CNAME.
    let e = get(admin, "/api/v1/explain?name=lb.gslb.test").json();
    assert_eq!(
        e["dynamic"]["pick"],
        "cloud (CNAME eu-west-1.lb.cloud.example.)"
    );
}

#[test]
fn a_cname_region_rules_out_static_data_at_its_name() {
    let config = config().replace(
        "[records.\"lb.gslb.test\"]",
        "[records.\"static.gslb.test\"]",
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    let out = dep.check();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("records.\"static.gslb.test\"") && err.contains("must have no static data"),
        "{err}"
    );
}
