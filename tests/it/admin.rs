//! The admin HTTP API over real HTTP against the real binary (`--admin 127.0.0.1:0`):
//! status codes and JSON shapes of every endpoint, drains moving real DNS answers,
//! reloads (good and broken), the bearer token, and the metrics they show up in.
//! The tests connect from 127.0.0.1, so without a token their POSTs are allowed; the
//! non-loopback refusal is unit-tested in `src/admin.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::json;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd};
use crate::http::{get, post, request};
use crate::{CONFIG, zone_text};

const EU: [&str; 2] = ["192.0.2.20", "192.0.2.21"];
const US: [&str; 1] = ["192.0.2.10"];
const WWW_REGIONS: &str = r#"regions = ["eu-west", "us-east"]"#;

/// The fixture deployment with `config`, served with the admin API on.
fn start(config: &str) -> (Gslbd, Deployment, SocketAddr) {
    let dep = Deployment::new(config, &[("gslb.test.zone", &zone_text())]);
    let server = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = server.admin.expect("admin address logged");
    (server, dep, admin)
}

fn www(s: &Gslbd) -> Vec<String> {
    dns::answer_data(
        &dns::udp(s.udp, &query("www.gslb.test.", RecordType::A)),
        RecordType::A,
    )
}

/// Waits (1 s at most) for the DNS answer of www to be `want`: a drain's reply may
/// arrive a moment before the health owner publishes it.
fn www_becomes(s: &Gslbd, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let got = www(s);
        if got == want || Instant::now() > deadline {
            assert_eq!(got, want, "www.gslb.test A");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn metrics(admin: SocketAddr) -> String {
    let r = get(admin, "/metrics");
    assert_eq!(r.status, 200);
    r.body
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn region<'a>(regions: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let all = regions["regions"].as_array().expect("regions array");
    all.iter()
        .find(|r| r["name"] == name)
        .expect("region listed")
}

#[test]
fn endpoints_answer_with_their_status_codes_and_shapes() {
    let (_s, _dep, admin) = start(CONFIG);

    let r = get(admin, "/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));

    let r = get(admin, "/metrics");
    assert_eq!(r.status, 200);
    let ctype = r.header("content-type").unwrap();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(r.body.contains("# TYPE gslbd_queries_total counter"));

    let r = get(admin, "/api/v1/regions");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    let names: Vec<&str> = v["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-south"]);
    let eu = region(&v, "eu-west");
    assert_eq!(
        (&eu["state"], &eu["up"], &eu["drained"]),
        (&json!("up"), &json!(true), &json!(false))
    );
    assert_eq!(
        eu["addresses"],
        json!([{"address": "192.0.2.20", "up": true}, {"address": "192.0.2.21", "up": true}])
    );
    assert_eq!(eu["targets"], json!([]), "no probe, no targets");

    // Unknown paths, wrong methods, unknown regions.
    let r = get(admin, "/nope");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("/nope"));
    let r = get(admin, "/api/v1/reload");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert!(r.json()["error"].is_string());
    let r = post(admin, "/api/v1/regions");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = request(admin, "DELETE", "/api/v1/regions/eu-west/drain", &[]);
    assert_eq!(r.status, 405);
    let r = post(admin, "/api/v1/regions/nowhere/drain");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": "no region \"nowhere\" (known: us-east, eu-west, ap-south)"})
    );

    // A body we would have to buffer is refused before it is read.
    let r = request(
        admin,
        "POST",
        "/api/v1/reload",
        &[("Content-Length", "100000")],
    );
    assert_eq!(r.status, 413);
    // A HEAD gets the GET's headers.
    assert_eq!(request(admin, "HEAD", "/healthz", &[]).status, 200);
}

#[test]
fn explain_returns_the_trace_as_json() {
    let (_s, _dep, admin) = start(CONFIG);
    let r = get(
        admin,
        "/api/v1/explain?name=www.gslb.test&subnet=81.2.69.0%2F24",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["name"], "www.gslb.test");
    assert_eq!(v["qtype"], "A");
    assert_eq!(v["client"], "127.0.0.1", "defaults to the HTTP peer");
    assert_eq!(v["subnet"], "81.2.69.0/24");
    assert_eq!(
        (&v["rcode"], &v["authoritative"]),
        (&json!("NOERROR"), &json!(true))
    );
    assert_eq!(
        v["ecs_scope"], 0,
        "failover does not depend on the location"
    );
    let d = &v["dynamic"];
    assert_eq!(
        (&d["policy"], &d["ttl"], &d["pick"]),
        (&json!("failover"), &json!(20), &json!("eu-west"))
    );
    let ranking: Vec<&str> = d["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(ranking, ["eu-west", "us-east"]);
    let answer = v["answer"].as_array().unwrap();
    assert_eq!(answer.len(), 2);
    assert!(
        answer
            .iter()
            .any(|a| a.as_str().unwrap().ends_with("A 192.0.2.20"))
    );

    let r = get(
        admin,
        "/api/v1/explain?name=static.gslb.test&type=txt&client=192.0.2.99",
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(
        (&v["qtype"], &v["client"]),
        (&json!("TXT"), &json!("192.0.2.99"))
    );
    assert_eq!(v["dynamic"], json!(null));

    for (query, param) in [
        ("", "name"),
        ("?type=A", "name"),
        ("?name=www.gslb.test&type=BOGUS", "type"),
        ("?name=www.gslb.test&client=not-an-ip", "client"),
        ("?name=www.gslb.test&subnet=81.2.69.0/33", "subnet"),
    ] {
        let r = get(admin, &format!("/api/v1/explain{query}"));
        assert_eq!(r.status, 400, "{query}");
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains(&format!("\"{param}\"")), "{query}: {e}");
    }
}

#[test]
fn drain_moves_dns_answers_and_survives_a_reload() {
    let (s, _dep, admin) = start(CONFIG);
    assert_eq!(www(&s), EU);

    let r = post(admin, "/api/v1/regions/eu-west/drain");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"region": "eu-west", "drained": true, "changed": true})
    );
    www_becomes(&s, &US);
    let r = post(admin, "/api/v1/regions/eu-west/drain");
    assert_eq!(r.json()["changed"], false, "already drained");
    let v = get(admin, "/api/v1/regions").json();
    let eu = region(&v, "eu-west");
    assert_eq!(
        (&eu["state"], &eu["drained"]),
        (&json!("drained"), &json!(true))
    );
    let m = metrics(admin);
    assert_eq!(
        sample(&m, r#"gslbd_region_drained{region="eu-west"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, r#"gslbd_region_drained{region="us-east"}"#),
        Some(0.0)
    );

    let r = post(admin, "/api/v1/reload");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["summary"], "1 zone(s), 3 region(s), 3 dynamic name(s)");
    assert_eq!(www(&s), US, "still drained after the reload");
    let m = metrics(admin);
    assert_eq!(
        sample(&m, r#"gslbd_region_drained{region="eu-west"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&m, r#"gslbd_reloads_total{result="ok"}"#), Some(1.0));

    let r = post(admin, "/api/v1/regions/eu-west/undrain");
    assert_eq!(
        r.json(),
        json!({"region": "eu-west", "drained": false, "changed": true})
    );
    www_becomes(&s, &EU);
    let m = metrics(admin);
    assert_eq!(
        sample(&m, r#"gslbd_region_drained{region="eu-west"}"#),
        Some(0.0)
    );
    assert!(
        s.wait_log(
            "POST /api/v1/regions/eu-west/drain: ok",
            std::time::Duration::from_secs(2)
        ),
        "logged"
    );
}

#[test]
fn a_broken_reload_keeps_the_old_config_and_a_fixed_one_applies() {
    let (s, dep, admin) = start(CONFIG);
    let line = CONFIG.lines().position(|l| l == WWW_REGIONS).unwrap() + 1;
    std::fs::write(
        dep.config(),
        CONFIG.replace(WWW_REGIONS, r#"regions = ["eu-west", "nowhere"]"#),
    )
    .unwrap();
    let r = post(admin, "/api/v1/reload");
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["ok"], false);
    let e = v["error"].as_str().unwrap();
    assert!(e.contains(&format!("gslb.toml:{line}:")), "{e}");
    assert!(e.contains("region \"nowhere\" is not defined"), "{e}");
    assert_eq!(www(&s), EU, "still the old config");
    let m = metrics(admin);
    assert_eq!(
        sample(&m, r#"gslbd_reloads_total{result="failed"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&m, r#"gslbd_reloads_total{result="ok"}"#), Some(0.0));

    std::fs::write(
        dep.config(),
        CONFIG.replace(WWW_REGIONS, r#"regions = ["ap-south", "us-east"]"#),
    )
    .unwrap();
    let r = post(admin, "/api/v1/reload");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ok"], true);
    assert_eq!(www(&s), ["192.0.2.30"], "the new config answers");
    let m = metrics(admin);
    assert_eq!(sample(&m, r#"gslbd_reloads_total{result="ok"}"#), Some(1.0));
}

#[test]
fn a_token_guards_mutating_calls_only() {
    let config = CONFIG.replace("[server]\n", "[server]\nadmin_token = \"s3cret\"\n");
    let (s, _dep, admin) = start(&config);
    let path = "/api/v1/regions/eu-west/drain";
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic czNjcmV0"),
        Some("s3cret"),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = request(admin, "POST", path, &headers);
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(www(&s), EU, "nothing drained");
    let r = request(admin, "POST", path, &[("Authorization", "Bearer s3cret")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["changed"], true);
    www_becomes(&s, &US);
    let r = request(
        admin,
        "POST",
        "/api/v1/reload",
        &[("Authorization", "Bearer s3cret")],
    );
    assert_eq!(r.status, 200);
    // GETs stay open.
    for path in [
        "/healthz",
        "/metrics",
        "/api/v1/regions",
        "/api/v1/explain?name=www.gslb.test",
    ] {
        assert_eq!(get(admin, path).status, 200, "{path}");
    }
    assert!(
        s.wait_log(
            "refused (401 Unauthorized)",
            std::time::Duration::from_secs(2)
        ),
        "refusals are logged"
    );
}

#[test]
fn metrics_count_queries_and_answers() {
    let (s, _dep, admin) = start(CONFIG);
    for _ in 0..3 {
        assert_eq!(www(&s), EU);
    }
    dns::udp(s.udp, &query("static.gslb.test.", RecordType::TXT));
    let m = metrics(admin);
    let a = sample(
        &m,
        r#"gslbd_queries_total{transport="udp",rcode="NOERROR",qtype="A"}"#,
    );
    assert_eq!(a, Some(3.0), "{m}");
    let txt = sample(
        &m,
        r#"gslbd_queries_total{transport="udp",rcode="NOERROR",qtype="TXT"}"#,
    );
    assert_eq!(txt, Some(1.0));
    let eu = r#"gslbd_answers_total{record="www.gslb.test",region="eu-west"}"#;
    assert_eq!(sample(&m, eu), Some(3.0));
    let us = r#"gslbd_answers_total{record="www.gslb.test",region="us-east"}"#;
    assert_eq!(sample(&m, us), Some(0.0));
    assert_eq!(
        sample(&m, r#"gslbd_region_up{region="eu-west"}"#),
        Some(1.0)
    );

    // The metrics request itself is no DNS query: the counters only move with DNS.
    assert_eq!(sample(&metrics(admin), eu), Some(3.0));
}
