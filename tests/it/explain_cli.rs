//! `gslbd explain` on the command line against the real server: it asks the running
//! server's admin API (live health and drains) and says so on its first line; without a
//! reachable server it explains from the config alone, every region up, and says that.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd, gslbd_bin};
use crate::http::post;
use crate::{CONFIG, zone_text};

const US: [&str; 1] = ["192.0.2.10"];

/// The fixture deployment, served with the admin API on.
fn start() -> (Gslbd, Deployment, SocketAddr) {
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let server = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = server.admin.expect("admin address logged");
    (server, dep, admin)
}

/// Runs `gslbd explain --config CONFIG ARGS...`.
fn explain(config: &Path, args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(gslbd_bin())
        .args(["explain", "--config"])
        .arg(config)
        .args(args)
        .output()
        .expect("run gslbd explain");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "explain took {:?}",
        started.elapsed()
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The values of the rows labelled `label` and of their unlabelled continuation rows.
fn rows(text: &str, label: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let (key, value) = (line.get(..10).unwrap_or(line).trim(), line.get(11..));
        if key == label {
            inside = true;
        } else if !key.is_empty() {
            inside = false;
        }
        if inside {
            found.push(value.unwrap_or("").to_string());
        }
    }
    found
}

/// Drains `region` over the admin API and waits (1 s at most) for www's DNS answer to be
/// `want`: a drain's reply may arrive a moment before the health owner publishes it.
fn drain(s: &Gslbd, admin: SocketAddr, region: &str, want: &[&str]) {
    let r = post(admin, &format!("/api/v1/regions/{region}/drain"));
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let got = dns::answer_data(
            &dns::udp(s.udp, &query("www.gslb.test.", RecordType::A)),
            RecordType::A,
        );
        if got == want || Instant::now() > deadline {
            assert_eq!(got, want, "www.gslb.test A after draining {region}");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn explain_asks_the_running_server_and_shows_its_drains() {
    let (s, dep, admin) = start();
    drain(&s, admin, "eu-west", &US);

    let out = explain(
        &dep.config(),
        &[
            "--admin",
            &admin.to_string(),
            "--client",
            "127.0.0.1",
            "www.gslb.test",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("source     the running server at {admin} (live health and drains)"),
        "{text}"
    );
    let ranking = rows(&text, "ranking");
    assert!(
        ranking
            .iter()
            .any(|r| r.contains("eu-west") && r.contains("drained")),
        "eu-west shown drained: {text}"
    );
    assert_eq!(rows(&text, "picked"), ["us-east"], "{text}");

    // What explain says is what a real query from that client gets.
    let reply = dns::udp(s.udp, &query("www.gslb.test.", RecordType::A));
    let mut got: Vec<String> = reply
        .answers
        .iter()
        .map(|r| format!("{} {} IN {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect();
    let mut explained = rows(&text, "answer");
    got.sort();
    explained.sort();
    assert_eq!(explained, got, "{text}");
    assert_eq!(
        explained,
        ["www.gslb.test. 10 IN A 192.0.2.10"],
        "the drained region's addresses are not in the answer (and the failover answer \
         has the fallback TTL)"
    );

    // Without --admin, the config's server.admin says where the server is.
    let with_admin = dep.dir.path().join("with-admin.toml");
    std::fs::write(
        &with_admin,
        CONFIG.replace("[server]\n", &format!("[server]\nadmin = \"{admin}\"\n")),
    )
    .unwrap();
    let out = explain(&with_admin, &["www.gslb.test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("source     the running server at {admin} ")),
        "{text}"
    );
    assert_eq!(rows(&text, "client"), ["127.0.0.1"], "the default client");
    assert_eq!(rows(&text, "picked"), ["us-east"], "{text}");
}

#[test]
fn explain_without_a_server_says_every_region_is_assumed_up() {
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone_text())]);
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let out = explain(
        &dep.config(),
        &["--admin", &closed.to_string(), "www.gslb.test"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with(&format!("source     server not reached at {closed} (")),
        "{text}"
    );
    assert!(
        first.ends_with("config only, every region assumed up"),
        "{text}"
    );
    let ranking = rows(&text, "ranking");
    assert_eq!(ranking.len(), 2, "{text}");
    assert!(ranking.iter().all(|r| r.ends_with(" up")), "{text}");
    assert_eq!(rows(&text, "picked"), ["eu-west"], "{text}");

    // No admin address at all (the fixture config has no server.admin).
    let out = explain(&dep.config(), &["www.gslb.test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next(),
        Some(
            "source     no admin API (server.admin or --admin): config only, every region assumed up"
        )
    );
}

#[test]
fn explain_json_from_the_server_keeps_stdout_pure_json() {
    let (s, dep, admin) = start();
    drain(&s, admin, "eu-west", &US);
    let admin_arg = admin.to_string();

    let out = explain(
        &dep.config(),
        &[
            "--admin",
            &admin_arg,
            "--client",
            "192.0.2.99",
            "--subnet",
            "81.2.69.0/24",
            "--json",
            "www.gslb.test",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(&out)));
    assert_eq!(v["name"], "www.gslb.test");
    assert_eq!(v["client"], "192.0.2.99");
    assert_eq!(v["subnet"], "81.2.69.0/24");
    assert_eq!(v["dynamic"]["pick"], "us-east");
    assert_eq!(v["dynamic"]["ranking"][0]["region"], "eu-west");
    assert_eq!(v["dynamic"]["ranking"][0]["health"], "drained");
    assert_eq!(
        stderr(&out).trim_end(),
        format!("source     the running server at {admin} (live health and drains)")
    );

    // A query the server refuses: its message, exit 2, nothing on stdout.
    let out = explain(
        &dep.config(),
        &["--admin", &admin_arg, "www.gslb.test", "BOGUS"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "explain: parameter \"type\": unknown type \"BOGUS\""
    );
}

/// Other types than A and AAAA at a dynamic name are no policy decision: the `data` row
/// says the name is dynamic (it said "static (zone file)"), and where the answer is from.
#[test]
fn other_types_at_a_dynamic_name_are_labelled_as_such() {
    let zone = format!("{}www IN TXT \"v=1\"\n", zone_text());
    let dep = Deployment::new(CONFIG, &[("gslb.test.zone", &zone)]);
    let data = |args: &[&str]| {
        let out = explain(&dep.config(), args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        rows(&stdout(&out), "data")
    };
    let dynamic =
        "dynamic name db.gslb.test. (policy failover), whose policy decides A and AAAA only";
    assert_eq!(
        data(&["db.gslb.test", "TXT"]),
        [format!("{dynamic}; no TXT at it in the zone file (NODATA)")]
    );
    let www = "dynamic name www.gslb.test. (policy failover), whose policy decides A and AAAA only";
    assert_eq!(
        data(&["www.gslb.test", "TXT"]),
        [format!("{www}; its TXT is static (zone file)")]
    );
    // At the end of a CNAME chain too.
    assert_eq!(
        data(&["towww.gslb.test", "MX"]),
        [format!("{www}; no MX at it in the zone file (NODATA)")]
    );
    assert_eq!(data(&["static.gslb.test", "TXT"]), ["static (zone file)"]);
    // A and AAAA are decided: no `data` row.
    assert!(data(&["www.gslb.test", "A"]).is_empty());

    let out = explain(&dep.config(), &["--json", "db.gslb.test", "TXT"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["undecided_dynamic"], "db.gslb.test. (policy failover)");
    let out = explain(&dep.config(), &["--json", "static.gslb.test", "TXT"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("undecided_dynamic").is_none(), "{v}");
}
