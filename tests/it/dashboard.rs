//! `examples/grafana/gslbd.json`, the Grafana dashboard: every metric it queries exists
//! under that name in `/metrics` of a running server (one with every optional family on:
//! rate limiting, a probe, `[cluster]`, `[dnssec]`), every label it groups by, matches
//! or names in a legend is a label of a metric of that query, and the panels the README
//! promises are there. A renamed metric or label breaks this test, not the dashboard
//! silently.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;

use gslbd::sim::FakeRegion;
use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd, gslbd_bin, run_ok};
use crate::http::get;
use crate::{CONFIG, zone_text};

/// Labels Prometheus adds to every series it scrapes.
const SCRAPE_LABELS: [&str; 2] = ["instance", "job"];

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/grafana/gslbd.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every metric family name and sample name of `/metrics`, each with the labels its
/// samples carry.
fn exposition(text: &str) -> HashMap<String, HashSet<String>> {
    let mut names: HashMap<String, HashSet<String>> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap();
            names.entry(name.to_string()).or_default();
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = names.entry(line[..end].to_string()).or_default();
            if let Some(inner) = line[end..].strip_prefix('{') {
                let inner = &inner[..inner.rfind('}').unwrap()];
                // Label values here contain no `,` followed by a name and `=`.
                for pair in inner.split("\",") {
                    labels.insert(pair.split('=').next().unwrap().trim().to_string());
                }
            }
        }
    }
    names
}

fn ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The `gslbd_*` metric names in a PromQL expression.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("gslbd_") {
        let preceded = rest[..i].chars().next_back().is_some_and(ident);
        let tail = &rest[i..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        if !preceded {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The label names an expression groups by (`by (...)`, `without (...)`) or matches on
/// (`{name="..."}`), and the ones its legend names (`{{name}}`).
fn labels_in(expr: &str, legend: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in ["by (", "without ("] {
        for part in expr.split(kw).skip(1) {
            let list = &part[..part.find(')').unwrap()];
            out.extend(list.split(',').map(|l| l.trim().to_string()));
        }
    }
    for part in expr.split('{').skip(1) {
        let Some(end) = part.find('}') else { continue };
        for matcher in part[..end].split(',') {
            let name: String = matcher.trim().chars().take_while(|c| ident(*c)).collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    for part in legend.split("{{").skip(1) {
        out.insert(part[..part.find("}}").unwrap()].trim().to_string());
    }
    out.retain(|l| !l.is_empty());
    out
}

/// (panel title, expr, legend) of every query of the dashboard, and of its variables.
fn queries(d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap().to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a Prometheus expr").to_string();
            let legend = t["legendFormat"].as_str().unwrap_or("").to_string();
            out.push((title.clone(), expr, legend));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            // label_values(METRIC{...}, LABEL): LABEL is a label of METRIC.
            let label = q.trim_end_matches(')').rsplit(',').next().unwrap().trim();
            let name = format!("variable ${}", v["name"].as_str().unwrap());
            out.push((name, q.to_string(), format!("{{{{{label}}}}}")));
        }
    }
    out
}

/// The fixture deployment with every optional metric family on, started with the
/// admin API, after one query (query counters show only once counted).
fn full_server(health: &FakeRegion) -> (Gslbd, Deployment) {
    let config = CONFIG
        .replacen(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"127.0.0.1:0\"]\nrate_limit = { responses_per_second = 1000, slip = 2 }",
            1,
        )
        .replacen(
            "addresses = [\"192.0.2.10\", \"2001:db8:10::1\"]",
            &format!(
                "addresses = [\"192.0.2.10\", \"2001:db8:10::1\"]\nprobe = {{ url = \"{}\" }}",
                health.url()
            ),
            1,
        )
        + "\n[cluster]\npeers = [\"http://127.0.0.1:1\"]\n\n[dnssec]\nkeys = \"keys\"\n";
    let dep = Deployment::new(&config, &[("gslb.test.zone", &zone_text())]);
    run_ok(
        Command::new(gslbd_bin())
            .args(["dnssec", "keygen", "--config"])
            .arg(dep.config()),
    );
    let s = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
    (s, dep)
}

#[test]
fn every_metric_and_label_of_the_grafana_dashboard_exists_in_metrics() {
    let d = dashboard();
    let health = FakeRegion::start().unwrap();
    let (s, _dep) = full_server(&health);
    let text = get(s.admin.unwrap(), "/metrics").body;
    let have = exposition(&text);

    let mut used = BTreeSet::new();
    for (title, expr, legend) in queries(&d) {
        let metrics = metrics_in(&expr);
        assert!(!metrics.is_empty(), "{title}: no gslbd metric in {expr}");
        let mut labels: HashSet<&str> = SCRAPE_LABELS.into();
        for m in &metrics {
            let Some(l) = have.get(m) else {
                panic!("{title}: {m} is not in /metrics:\n{text}");
            };
            labels.extend(l.iter().map(String::as_str));
        }
        for l in labels_in(&expr, &legend) {
            assert!(
                labels.contains(l.as_str()),
                "{title}: label {l} is not a label of {metrics:?} in /metrics"
            );
        }
        used.extend(metrics);
    }
    // What the README says the dashboard shows.
    for m in [
        "gslbd_queries_total",
        "gslbd_answers_total",
        "gslbd_region_up",
        "gslbd_region_drained",
        "gslbd_probe_up",
        "gslbd_probe_results_total",
        "gslbd_probe_duration_seconds_sum",
        "gslbd_reloads_total",
        "gslbd_rate_limited_total",
        "gslbd_udp_dropped_total",
        "gslbd_peer_up",
        "gslbd_dnssec_expiration_timestamp_seconds",
    ] {
        assert!(used.contains(m), "the dashboard does not show {m}");
    }
}

#[test]
fn the_grafana_dashboard_is_well_formed() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "Grafana 10+");
    assert_eq!(d["uid"], "gslbd");
    let vars: HashSet<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(vars.contains("datasource") && vars.contains("instance"));
    let mut ids = HashSet::new();
    for p in d["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "{title}: id used twice"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24 && g["h"].as_u64().unwrap() > 0, "{title}: {g}");
        if p["type"] == "row" {
            continue;
        }
        // Every query goes to the data source the importer picks.
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let refs: HashSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), targets.len(), "{title}: refIds repeat");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            let expr = t["expr"].as_str().unwrap();
            for part in expr.split('$').skip(1) {
                let name: String = part.chars().take_while(|c| ident(*c)).collect();
                assert!(
                    name.starts_with("__") || vars.contains(name.as_str()),
                    "{title}: ${name} is not a variable of the dashboard"
                );
            }
        }
    }
}

#[test]
fn promql_scanning_finds_names_and_labels() {
    let e = r#"sum by (target, result) (rate(gslbd_probe_results_total{instance=~"$instance",result!="ok"}[5m])) / xgslbd_no"#;
    assert_eq!(
        metrics_in(e).into_iter().collect::<Vec<_>>(),
        ["gslbd_probe_results_total"]
    );
    assert_eq!(
        labels_in(e, "{{target}} {{ result }}")
            .into_iter()
            .collect::<Vec<_>>(),
        ["instance", "result", "target"]
    );
    let m = exposition("# TYPE a counter\na{x=\"1,y\",z=\"2\"} 3\nb 1\n");
    assert_eq!(m["a"], HashSet::from(["x".to_string(), "z".to_string()]));
    assert!(m["b"].is_empty());
}
