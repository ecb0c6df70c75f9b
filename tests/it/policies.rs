//! The policies end to end: a GeoIP DB built by `gslbd geoip build` from a CSV, a config
//! with geo, latency and weighted names, and real DNS queries with EDNS Client Subnet from
//! several continents over IPv4 and IPv6: the region answered and the scope echoed.
//! Also `gslbd explain`, which must tell the same story.

use std::collections::HashMap;
use std::process::Command;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd, gslbd_bin, run_ok};

const CSV: &str = "\
network,continent,country,subdivision,lat,lon
81.2.69.0/24,EU,GB,GB-ENG,51.51,-0.09
81.2.0.0/16,EU,GB,,,
1.0.16.0/24,AS,JP,JP-13,35.69,139.69
8.8.8.0/24,NA,US,US-CA,37.39,-122.08
103.1.1.0/24,OC,AU,AU-NSW,-33.87,151.21
175.16.199.0/24,AS,CN,,,
2001:218::/32,AS,JP,,35.69,139.69
2a02:d3c0::/29,EU,GB,,,
";

const ZONE: &str = "$ORIGIN gslb.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n";

const CONFIG: &str = r#"[server]
listen = ["127.0.0.1:0"]
geoip = "geo.mmdb"

[regions.us-east]
addresses = ["192.0.2.10", "2001:db8:10::1"]
location = { lat = 39.04, lon = -77.49 }
[regions.us-west]
addresses = ["192.0.2.40"]
location = { lat = 37.35, lon = -121.96 }
[regions.eu-west]
addresses = ["192.0.2.20", "2001:db8:20::1"]
location = { lat = 53.34, lon = -6.26 }
[regions.ap-south]
addresses = ["192.0.2.30", "2001:db8:30::1"]
location = { lat = 19.08, lon = 72.88 }

[records."www.gslb.test"]
policy = "geo"
ttl = 20
regions = ["us-east", "eu-west", "ap-south"]
[records."www.gslb.test".geo]
continent.EU = ["eu-west", "us-east"]
continent.AS = ["ap-south", "eu-west"]
country.CN = ["us-east"]
subdivision."US-CA" = ["us-west", "us-east"]
cidr."198.51.100.0/24" = ["ap-south"]
default = ["us-east", "eu-west"]

[records."edge.gslb.test"]
policy = "latency"
regions = ["us-east", "eu-west", "ap-south"]

[records."api.gslb.test"]
policy = "weighted"
weights = { us-east = 3, eu-west = 1 }

[records."sticky.gslb.test"]
policy = "weighted"
weights = { us-east = 1, eu-west = 1, ap-south = 1 }
sticky = true

[latency]
country.GB = { us-east = 1 }
"#;

fn start() -> (Gslbd, Deployment) {
    start_with(CONFIG)
}

/// Builds geo.mmdb from [`CSV`] next to `config` and starts the server.
fn start_with(config: &str) -> (Gslbd, Deployment) {
    let dep = Deployment::new(config, &[("gslb.test.zone", ZONE)]);
    let csv = dep.dir.path().join("geo.csv");
    std::fs::write(&csv, CSV).unwrap();
    run_ok(
        Command::new(gslbd_bin())
            .args(["geoip", "build", "--csv"])
            .arg(&csv)
            .arg("--out")
            .arg(dep.dir.path().join("geo.mmdb")),
    );
    (dep.start(), dep)
}

/// (sorted addresses, ECS scope) for `name`/`t` asked with ECS `subnet`.
fn ask(s: &Gslbd, name: &str, t: RecordType, subnet: &str) -> (Vec<String>, u8) {
    let r = dns::udp(s.udp, &dns::with_ecs(query(name, t), subnet));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    let (addr, source, scope) = dns::ecs_of(&r).expect("ECS echoed");
    assert_eq!(
        format!("{addr}/{source}"),
        subnet,
        "echo keeps address and source"
    );
    (dns::answer_data(&r, t), scope)
}

#[test]
fn geo_answers_by_client_subnet_with_the_matched_scope() {
    let (s, _dep) = start();
    let www = "www.gslb.test.";
    // (subnet, type, answer, scope)
    let table: &[(&str, RecordType, &[&str], u8)] = &[
        // EU (continent): all of 81.2.0.0/16 is EU in the DB (the /24 inside it only adds
        // a subdivision no rule asks for), and the space around it is not in the DB.
        ("81.2.69.0/24", RecordType::A, &["192.0.2.20"], 16),
        ("81.2.5.0/24", RecordType::A, &["192.0.2.20"], 16), // EU, the /16 row
        ("1.0.16.0/24", RecordType::A, &["192.0.2.30"], 24), // AS
        ("175.16.199.0/24", RecordType::A, &["192.0.2.10"], 24), // CN beats AS
        ("8.8.8.0/24", RecordType::A, &["192.0.2.40"], 24),  // US-CA beats country and continent
        ("198.51.100.0/24", RecordType::A, &["192.0.2.30"], 24), // cidr rule, not in the DB
        // OC: no rule, default, like every address of 96.0.0.0/3 (nothing else of the
        // DB is in it): one answer for the whole /3.
        ("103.1.1.0/24", RecordType::A, &["192.0.2.10"], 3),
        ("2001:218::/32", RecordType::AAAA, &["2001:db8:30::1"], 32), // IPv6, AS
        ("2a02:d3c0::/32", RecordType::AAAA, &["2001:db8:20::1"], 29), // IPv6, EU
        ("2001:218::/32", RecordType::A, &["192.0.2.30"], 32),        // an IPv6 client asking for A
        // An IPv4-mapped subnet is its IPv4 subnet, for the location and the cidr rules;
        // the scope is in the mapped space (96 + the IPv4 scope).
        ("::ffff:81.2.69.0/120", RecordType::A, &["192.0.2.20"], 112),
        (
            "::ffff:198.51.100.0/120",
            RecordType::A,
            &["192.0.2.30"],
            120,
        ),
        // 6to4 of 81.2.69.0: located through the database's alias, EU; 16 + 16.
        ("2002:5102:4500::/40", RecordType::A, &["192.0.2.20"], 32),
    ];
    for (subnet, t, want, scope) in table {
        let (got, got_scope) = ask(&s, www, *t, subnet);
        assert_eq!(got, *want, "{subnet} {t}");
        assert_eq!(got_scope, *scope, "{subnet} {t}: scope");
    }
}

#[test]
fn a_memory_mapped_database_answers_the_same() {
    let config = CONFIG.replace(
        "geoip = \"geo.mmdb\"\n",
        "geoip = \"geo.mmdb\"\ngeoip_mmap = true\n",
    );
    assert_ne!(config, CONFIG);
    let (s, _dep) = start_with(&config);
    assert!(maps_geo_mmdb(&s), "geo.mmdb is mapped");
    // Compiling the geo trees read the whole file; its pages were released after.
    if let Some(kib) = crate::smaps::resident_kib(s.pid(), "/geo.mmdb") {
        assert_eq!(kib, 0, "geo.mmdb pages resident after ready");
    }
    // EU by continent, for all of the DB's 81.2.0.0/16; then IPv6 (AS) and a client not
    // in the DB.
    let got = ask(&s, "www.gslb.test.", RecordType::A, "81.2.69.0/24");
    assert_eq!(got, (vec!["192.0.2.20".to_string()], 16));
    let got = ask(&s, "www.gslb.test.", RecordType::AAAA, "2001:218::/32");
    assert_eq!(got, (vec!["2001:db8:30::1".to_string()], 32));
    let (got, scope) = ask(&s, "www.gslb.test.", RecordType::A, "10.9.0.0/16");
    assert_eq!(got, ["192.0.2.10"]);
    assert!((1..=16).contains(&scope), "scope {scope}");
}

/// True when geo.mmdb is mapped into the server (always true off Linux, where there is no
/// /proc to look in).
fn maps_geo_mmdb(s: &Gslbd) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/maps", s.pid())) {
        Ok(maps) => maps.lines().any(|l| l.ends_with("/geo.mmdb")),
        Err(_) => true,
    }
}

#[test]
fn clients_missing_from_the_database_get_the_default() {
    let (s, _dep) = start();
    // The default reads the file into memory: nothing of it is mapped.
    if std::path::Path::new("/proc/self/maps").exists() {
        assert!(!maps_geo_mmdb(&s), "geo.mmdb is read, not mapped");
    }
    // Not in the DB: default list; the scope is the DB's empty network around it, long
    // enough to exclude the cidr rule's network.
    let (got, scope) = ask(&s, "www.gslb.test.", RecordType::A, "10.9.0.0/16");
    assert_eq!(got, ["192.0.2.10"]);
    assert!((1..=16).contains(&scope), "scope {scope}");
    // No ECS at all: the source 127.0.0.1 is not in the DB either.
    let r = dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.10"]);
    // SOURCE 0: the resolver asks us not to use the subnet; scope 0.
    let (got, scope) = ask(&s, "www.gslb.test.", RecordType::A, "0.0.0.0/0");
    assert_eq!((got, scope), (vec!["192.0.2.10".to_string()], 0));
}

#[test]
fn latency_uses_the_table_then_distance() {
    let (s, _dep) = start();
    // (client subnet, type, answer, why)
    let table: &[(&str, RecordType, &str, &str)] = &[
        (
            "81.2.69.0/24",
            RecordType::A,
            "192.0.2.10",
            "GB's [latency] row: us-east 1 ms (Dublin ~4.6 ms by distance)",
        ),
        (
            "103.1.1.0/24",
            RecordType::A,
            "192.0.2.30",
            "Sydney: Mumbai is nearest",
        ),
        (
            "8.8.8.0/24",
            RecordType::A,
            "192.0.2.10",
            "California: Virginia beats Dublin and Mumbai (us-west is no candidate)",
        ),
        (
            "2001:218::/32",
            RecordType::AAAA,
            "2001:db8:30::1",
            "Tokyo over IPv6",
        ),
    ];
    for (subnet, t, want, why) in table {
        assert_eq!(ask(&s, "edge.gslb.test.", *t, subnet).0, [*want], "{why}");
    }
}

#[test]
fn weighted_splits_answers_and_sticky_keeps_subnets() {
    let (s, _dep) = start();
    let mut count: HashMap<String, usize> = HashMap::new();
    let n = 2000;
    for _ in 0..n {
        let r = dns::udp(s.udp, &query("api.gslb.test.", RecordType::A));
        *count
            .entry(dns::answer_data(&r, RecordType::A)[0].clone())
            .or_default() += 1;
    }
    let us = count["192.0.2.10"] as f64 / n as f64;
    assert!((us - 0.75).abs() < 0.05, "3:1 split, got {count:?}");
    let (_, scope) = ask(&s, "api.gslb.test.", RecordType::A, "81.2.69.0/24");
    assert_eq!(scope, 0, "non-sticky answers do not depend on the client");

    let mut regions = std::collections::BTreeSet::new();
    for net in 0..60u32 {
        let subnet = format!("10.{}.{}.0/24", net / 7, net * 3 % 256);
        let (first, scope) = ask(&s, "sticky.gslb.test.", RecordType::A, &subnet);
        assert_eq!(scope, 24);
        for _ in 0..5 {
            assert_eq!(
                ask(&s, "sticky.gslb.test.", RecordType::A, &subnet).0,
                first,
                "{subnet}"
            );
        }
        regions.insert(first);
    }
    assert_eq!(
        regions.len(),
        3,
        "60 subnets spread over the three regions: {regions:?}"
    );
}

#[test]
fn explain_tells_why() {
    let (_s, dep) = start();
    let run = |args: &[&str]| {
        let out = run_ok(
            Command::new(gslbd_bin())
                .arg("explain")
                .arg("--config")
                .arg(dep.config())
                .args(args),
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&[
        "--client",
        "127.0.0.1",
        "--subnet",
        "1.0.16.0/24",
        "www.gslb.test",
    ]);
    for want in [
        "AS JP JP-13",
        "1.0.16.0/24",
        "continent.AS = [ap-south, eu-west]",
        "1. ap-south",
        "picked     ap-south",
        "192.0.2.30",
        "ecs scope  /24 (the answer holds for all of 1.0.16.0/24)",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let text = run(&["--client", "81.2.69.7", "edge.gslb.test", "A"]);
    assert!(text.contains("1 ms ([latency])"), "{text}");
    let json = run(&[
        "--client",
        "127.0.0.1",
        "--subnet",
        "2001:218::/32",
        "--json",
        "www.gslb.test",
        "AAAA",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["dynamic"]["pick"], "ap-south");
    assert_eq!(v["ecs_scope"], 32);
    assert_eq!(v["answer"][0], "www.gslb.test. 20 IN AAAA 2001:db8:30::1");
}

#[test]
fn a_missing_geoip_database_is_a_config_error() {
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", ZONE)]);
    let out = dep.check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server.geoip") && err.contains("geo.mmdb"),
        "{err}"
    );
    // At the value of `geoip` in gslb.toml, as every config error is.
    let line = CONFIG
        .lines()
        .position(|l| l.starts_with("geoip ="))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("gslb.toml:{line}:9: server.geoip: cannot open")),
        "{err}"
    );
}
