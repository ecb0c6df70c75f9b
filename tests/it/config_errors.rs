//! `gslbd check` and `gslbd serve` on broken deployments: exit code 2, and every error
//! names file:line:col and the key (or file:line for zone files). Good ones exit 0.

use crate::harness::{self, Deployment};
use crate::{CONFIG, zone_text};

/// Runs `check` on CONFIG with `from` replaced by `to`; returns stderr after asserting
/// exit code 2.
fn broken(from: &str, to: &str) -> String {
    assert!(CONFIG.contains(from), "fixture lacks {from:?}");
    broken_deployment(&CONFIG.replacen(from, to, 1), &zone_text())
}

fn broken_deployment(config: &str, zone: &str) -> String {
    let dep = Deployment::new(config, &[("gslb.test.zone", zone)]);
    let out = dep.check();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    stderr
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

#[test]
fn good_deployment_checks_ok() {
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let out = dep.check();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one-line summary: {stdout}");
    assert!(stdout.contains("gslb.test."), "{stdout}");
    assert!(stdout.contains("3 region(s)"), "{stdout}");
}

#[test]
fn unknown_region_names_line_col_and_key() {
    let err = broken(
        r#"regions = ["eu-west", "us-east"]"#,
        r#"regions = ["eu-wst", "us-east"]"#,
    );
    let line = line_of(CONFIG, r#"regions = ["eu-west", "us-east"]"#);
    assert!(err.contains(&format!("gslb.toml:{line}:")), "{err}");
    assert!(err.contains(r#"records."www.gslb.test".regions"#), "{err}");
    assert!(err.contains("eu-wst"), "{err}");
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    let err = broken("[defaults]\nttl = 30", "[defaults]\nttl = 30\ntll = 5");
    let line = line_of(CONFIG, "ttl = 30") + 1;
    assert!(err.contains(&format!("gslb.toml:{line}:1")), "{err}");
    assert!(err.contains("tll"), "{err}");
}

#[test]
fn wrong_type_and_bad_duration_and_bad_address() {
    let err = broken("ttl = 20", r#"ttl = "twenty""#);
    assert!(
        err.contains(&format!("gslb.toml:{}:", line_of(CONFIG, "ttl = 20"))),
        "{err}"
    );
    assert!(err.contains("ttl"), "{err}");

    let err = broken(
        "[defaults]\nttl = 30",
        "[defaults]\nttl = 30\nprobe = { interval = \"5 parsecs\" }",
    );
    assert!(err.contains("gslb.toml:"), "{err}");
    assert!(err.contains("defaults.probe.interval"), "{err}");
    assert!(err.contains("5 parsecs"), "{err}");

    let err = broken(
        r#""192.0.2.20", "192.0.2.21""#,
        r#""192.0.2.20", "192.0.2.321""#,
    );
    assert!(
        err.contains(&format!("gslb.toml:{}:", line_of(CONFIG, "192.0.2.21"))),
        "{err}"
    );
    assert!(err.contains("192.0.2.321"), "{err}");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let config = CONFIG
        .replacen(
            r#"regions = ["eu-west", "us-east"]"#,
            r#"regions = ["eu-wst", "us-east"]"#,
            1,
        )
        .replacen(r#"regions = ["ap-south"]"#, r#"regions = ["nowhere"]"#, 1);
    let err = broken_deployment(&config, &zone_text());
    assert!(err.contains("eu-wst") && err.contains("nowhere"), "{err}");
}

#[test]
fn dynamic_name_outside_every_zone() {
    let err = broken(
        r#"[records."db.gslb.test"]"#,
        r#"[records."db.example.org"]"#,
    );
    let line = line_of(CONFIG, r#"[records."db.gslb.test"]"#);
    assert!(err.contains(&format!("gslb.toml:{line}:")), "{err}");
    assert!(err.contains("db.example.org"), "{err}");
    assert!(err.contains("outside every zone"), "{err}");
}

#[test]
fn dynamic_name_clashing_with_static_data() {
    let err = broken(
        r#"[records."db.gslb.test"]"#,
        r#"[records."static.gslb.test"]"#,
    );
    let line = line_of(CONFIG, r#"[records."db.gslb.test"]"#);
    assert!(err.contains(&format!("gslb.toml:{line}:")), "{err}");
    assert!(err.contains("static A record"), "{err}");
    // Below a delegation it would never be answered.
    let err = broken(
        r#"[records."db.gslb.test"]"#,
        r#"[records."x.sub.gslb.test"]"#,
    );
    assert!(err.contains("delegation"), "{err}");
}

#[test]
fn zone_syntax_error_names_file_and_line() {
    let zone = zone_text().replacen(
        "static   IN A   192.0.2.1",
        "static   IN A   192.0.2.999",
        1,
    );
    let err = broken_deployment(CONFIG, &zone);
    let line = line_of(&zone, "192.0.2.999");
    assert!(err.contains(&format!("gslb.test.zone:{line}")), "{err}");
}

#[test]
fn zone_without_soa_or_ns_is_rejected() {
    let zone: String = zone_text()
        .lines()
        .filter(|l| !l.contains(" SOA "))
        .collect::<Vec<_>>()
        .join("\n");
    let err = broken_deployment(CONFIG, &zone);
    assert!(
        err.contains("gslb.test.zone") && err.contains("SOA"),
        "{err}"
    );
    let zone: String = zone_text()
        .lines()
        .filter(|l| !l.starts_with("@        IN NS"))
        .collect::<Vec<_>>()
        .join("\n");
    let err = broken_deployment(CONFIG, &zone);
    assert!(
        err.contains("gslb.test.zone") && err.contains("NS"),
        "{err}"
    );
}

#[test]
fn missing_config_or_zones_folder() {
    let out = harness::check(std::path::Path::new("/nonexistent/gslb.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gslb.toml"));

    let dep = Deployment::new(CONFIG, &[]);
    std::fs::remove_dir(dep.dir.path().join("zones")).unwrap();
    let out = dep.check();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zones"));
}

#[test]
fn serve_refuses_a_broken_config_with_exit_2() {
    let dep = Deployment::new(
        &CONFIG.replacen("ttl = 20", "ttl = -1", 1),
        &[("gslb.test.zone", &zone_text())],
    );
    let out = std::process::Command::new(harness::gslbd_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dep.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gslb.toml:"));
}
