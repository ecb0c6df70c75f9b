//! What a reload carries over and what it applies, against the real binary: a rotated
//! admin token takes effect (SIGHUP and API), a rate-limited client stays limited, the
//! answer counters count only replies really sent, and a setting that needs a restart is
//! named in the reload's warnings instead of being ignored.

use std::net::SocketAddr;
use std::time::Duration;

use crate::dns::{burst, client};
use crate::harness::{Deployment, Gslbd};
use crate::http::{get, request};
use crate::{CONFIG, zone_text};

fn start(config: &str) -> (Gslbd, Deployment, SocketAddr) {
    let dep = Deployment::new(config, &[("gslb.test.zone", &zone_text())]);
    let server = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = server.admin.expect("admin address logged");
    (server, dep, admin)
}

fn with_server_keys(keys: &str) -> String {
    CONFIG.replacen("[server]\n", &format!("[server]\n{keys}\n"), 1)
}

/// The status of `POST /api/v1/regions/ap-south/drain` with `token` (none: no header).
fn drain_status(admin: SocketAddr, token: Option<&str>) -> u16 {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    request(admin, "POST", "/api/v1/regions/ap-south/drain", &headers).status
}

fn reloads_logged(s: &Gslbd, n: usize) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if s.log().matches("reloaded ").count() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_rotated_admin_token_applies_on_sighup_and_on_api_reload() {
    let (mut s, dep, admin) = start(&with_server_keys("admin_token = \"first\""));
    assert_eq!(drain_status(admin, Some("first")), 200);

    // Rotated in the file, applied by SIGHUP.
    std::fs::write(dep.config(), with_server_keys("admin_token = \"second\"")).unwrap();
    assert!(
        s.signal_and_wait("HUP", Duration::from_millis(50))
            .is_none()
    );
    assert!(reloads_logged(&s, 1), "{}", s.log());
    assert_eq!(drain_status(admin, Some("first")), 401, "the old token");
    assert_eq!(drain_status(admin, None), 401, "no token");
    assert_eq!(drain_status(admin, Some("second")), 200, "the new token");

    // Rotated again, applied by the API (authorized by the token in force).
    std::fs::write(dep.config(), with_server_keys("admin_token = \"third\"")).unwrap();
    let r = request(
        admin,
        "POST",
        "/api/v1/reload",
        &[("Authorization", "Bearer second")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["warnings"], serde_json::json!([]));
    assert_eq!(drain_status(admin, Some("second")), 401, "the old token");
    assert_eq!(drain_status(admin, None), 401, "no token");
    assert_eq!(drain_status(admin, Some("third")), 200, "the new token");
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(admin: SocketAddr, series: &str) -> f64 {
    let text = get(admin, "/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in\n{text}"))
}

#[test]
fn a_limited_client_stays_limited_across_a_reload() {
    let limit = "rate_limit = { responses_per_second = 50, slip = 0 }";
    let (s, dep, admin) = start(&with_server_keys(limit));
    let sock = client(100);
    // One second's budget (50), then the bucket is a second in debt.
    let (full, _) = burst(&sock, s.udp, "static.gslb.test.", 300, |_| {});
    assert!(
        (45..=70).contains(&full),
        "{full} answered of the first burst"
    );

    // A reload of a changed config (not the rate limit) keeps the limiter's table.
    let changed = with_server_keys(limit).replace("ttl = 30", "ttl = 31");
    std::fs::write(dep.config(), changed).unwrap();
    let r = request(admin, "POST", "/api/v1/reload", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    // Only the refill of the few hundred ms since (50 a second) gets through; a fresh
    // table would answer a whole second's budget again.
    let (again, _) = burst(&sock, s.udp, "static.gslb.test.", 100, |_| {});
    assert!(
        again < 35,
        "{again} answered right after the reload: the limit was reset"
    );
    let dropped = sample(admin, r#"gslbd_rate_limited_total{action="drop"}"#);
    assert!(
        dropped >= (300 - full + 100 - again) as f64,
        "the limiter's counters go on: {dropped}"
    );

    // Changing the limit itself starts a new table, and says so.
    let higher = with_server_keys("rate_limit = { responses_per_second = 500, slip = 0 }");
    std::fs::write(dep.config(), higher).unwrap();
    assert_eq!(request(admin, "POST", "/api/v1/reload", &[]).status, 200);
    assert!(s.wait_log(
        "the rate limiter starts a new table",
        Duration::from_secs(2)
    ));
    let (fresh, _) = burst(&sock, s.udp, "static.gslb.test.", 100, |_| {});
    assert_eq!(fresh, 100, "the new limit applies");
}

#[test]
fn answers_are_counted_only_when_the_reply_is_sent() {
    let (s, _dep, admin) = start(&with_server_keys(
        "rate_limit = { responses_per_second = 10, slip = 2 }",
    ));
    let sock = client(100);
    let (full, tc) = burst(&sock, s.udp, "www.gslb.test.", 200, |_| {});
    assert!(full >= 10 && tc > 50, "{full} answered, {tc} slipped");
    let answered = sample(
        admin,
        r#"gslbd_answers_total{record="www.gslb.test",region="eu-west"}"#,
    );
    assert_eq!(answered, full as f64, "answers counted = answers received");
    let queries = sample(
        admin,
        r#"gslbd_queries_total{transport="udp",rcode="NOERROR",qtype="A"}"#,
    );
    assert_eq!(
        queries, full as f64,
        "queries counted = replies received whole"
    );
    let slipped = sample(admin, r#"gslbd_rate_limited_total{action="slip"}"#);
    assert_eq!(slipped, tc as f64);
}

#[test]
fn a_setting_that_needs_a_restart_is_named_in_the_reload_warnings() {
    let (s, dep, admin) = start(&with_server_keys("workers = 1"));
    std::fs::write(dep.config(), with_server_keys("workers = 2")).unwrap();
    let r = request(admin, "POST", "/api/v1/reload", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["ok"], true);
    let warnings = body["warnings"].as_array().expect("a warnings list");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.contains("server.workers") && w.contains("restart"), "{w}");
    assert!(s.wait_log("reload: server.workers changed", Duration::from_secs(2)));

    // `--admin` replaces the config's value, so a changed `server.admin` in the file is
    // no change at all; `--listen` likewise.
    let moved = with_server_keys("workers = 1\nadmin = \"127.0.0.1:1\"")
        .replace("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.1:2\"]");
    std::fs::write(dep.config(), moved).unwrap();
    let r = request(admin, "POST", "/api/v1/reload", &[]);
    assert_eq!(r.json()["warnings"], serde_json::json!([]), "{}", r.body);
}
