//! `server.state_file`: drains written to disk before the admin API answers, read back at
//! start so that a drained region stays drained across a restart (SIGTERM) and a crash
//! (SIGKILL), from the first query on; a corrupt file stops `serve` and `check` (exit 2,
//! the file named); a file that cannot be written makes the drain call fail loudly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd, check, gslbd_bin};
use crate::http::{get, post};
use crate::{CONFIG, zone_text};

const EU: [&str; 2] = ["192.0.2.20", "192.0.2.21"];
const US: [&str; 1] = ["192.0.2.10"];
const AP: [&str; 1] = ["192.0.2.30"];

/// The fixture config with `server.state_file` set to `file`.
fn config_with(file: &str) -> String {
    let with = CONFIG.replace(
        "[server]\n",
        &format!("[server]\nstate_file = \"{file}\"\n"),
    );
    assert_ne!(with, CONFIG, "the fixture has a [server] table");
    with
}

fn deployment(file: &str) -> Deployment {
    Deployment::new(&config_with(file), &[("gslb.test.zone", &zone_text())])
}

fn start(dep: &Deployment) -> (Gslbd, SocketAddr) {
    let s = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = s.admin.expect("admin address logged");
    (s, admin)
}

fn answer(s: &Gslbd, name: &str) -> Vec<String> {
    dns::answer_data(&dns::udp(s.udp, &query(name, RecordType::A)), RecordType::A)
}

fn www(s: &Gslbd) -> Vec<String> {
    answer(s, "www.gslb.test.")
}

/// `drained` of each region in `GET /api/v1/regions`, by name.
fn drained(admin: SocketAddr) -> Vec<(String, bool)> {
    let r = get(admin, "/api/v1/regions");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    v["regions"]
        .as_array()
        .expect("regions array")
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap().to_string();
            let d = r["drained"].as_bool().unwrap();
            assert_eq!(r["state"] == "drained", d, "{r}");
            (name, d)
        })
        .collect()
}

fn pairs(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(n, d)| (n.to_string(), *d)).collect()
}

fn post_ok(admin: SocketAddr, path: &str, changed: bool) {
    let r = post(admin, path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert_eq!(r.json()["changed"], changed, "{path}: {}", r.body);
}

/// The state file as JSON.
fn saved(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn stop(s: &mut Gslbd, signal: &str) {
    let status = s
        .signal_and_wait(signal, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("gslbd did not exit on SIG{signal}"));
    if signal == "TERM" {
        assert!(status.success(), "SIGTERM: {status:?}\n{}", s.log());
    }
}

#[test]
fn drains_survive_a_restart_and_a_crash() {
    let dep = deployment("state/gslbd.json");
    let file = dep.dir.path().join("state/gslbd.json");
    let (mut s, admin) = start(&dep);
    assert_eq!(www(&s), EU);
    assert!(!file.exists(), "nothing written before the first drain");

    // Written (folder created) before the API answers.
    post_ok(admin, "/api/v1/regions/eu-west/drain", true);
    assert_eq!(saved(&file), json!({"version": 1, "drained": ["eu-west"]}));
    post_ok(admin, "/api/v1/regions/ap-south/drain", true);
    assert_eq!(
        saved(&file),
        json!({"version": 1, "drained": ["eu-west", "ap-south"]})
    );
    assert_eq!(www(&s), US);

    // A clean restart: drained from the very first query.
    stop(&mut s, "TERM");
    let (mut s, admin) = start(&dep);
    assert_eq!(www(&s), US, "first query after a restart");
    assert_eq!(
        drained(admin),
        pairs(&[("us-east", false), ("eu-west", true), ("ap-south", true)])
    );
    assert!(
        s.log().contains("kept drained: eu-west, ap-south"),
        "{}",
        s.log()
    );

    // A crash: the same.
    stop(&mut s, "KILL");
    let (mut s, admin) = start(&dep);
    assert_eq!(www(&s), US, "first query after a crash");
    assert_eq!(
        drained(admin),
        pairs(&[("us-east", false), ("eu-west", true), ("ap-south", true)])
    );

    // Undrain, crash, restart: undrained.
    post_ok(admin, "/api/v1/regions/eu-west/undrain", true);
    assert_eq!(saved(&file), json!({"version": 1, "drained": ["ap-south"]}));
    stop(&mut s, "KILL");
    let (mut s, admin) = start(&dep);
    assert_eq!(www(&s), EU, "undrained after a restart");
    assert_eq!(
        drained(admin),
        pairs(&[("us-east", false), ("eu-west", false), ("ap-south", true)])
    );

    // And the last undrain too, with a clean restart.
    post_ok(admin, "/api/v1/regions/ap-south/undrain", true);
    assert_eq!(saved(&file), json!({"version": 1, "drained": []}));
    stop(&mut s, "TERM");
    let (s, admin) = start(&dep);
    assert_eq!(answer(&s, "x.pool.gslb.test."), AP);
    assert!(drained(admin).iter().all(|(_, d)| !d));
}

#[test]
fn drains_are_kept_by_name_and_removed_regions_are_dropped() {
    let dep = deployment("state/gslbd.json");
    let file = dep.dir.path().join("state/gslbd.json");
    let (mut s, admin) = start(&dep);
    post_ok(admin, "/api/v1/regions/eu-west/drain", true);
    post_ok(admin, "/api/v1/regions/ap-south/drain", true);
    stop(&mut s, "TERM");

    // The config changes while the server is down: eu-west moves to the front (its
    // RegionId changes) and ap-south is gone.
    let text = config_with("state/gslbd.json");
    let eu = "[regions.eu-west]\naddresses = [\"192.0.2.20\", \"192.0.2.21\"]\n\n";
    let ap = "[regions.ap-south]\naddresses = [\"192.0.2.30\", \"2001:db8:30::1\"]\n\n";
    let pool = "[records.\"*.pool.gslb.test\"]";
    let text = text
        .replace(eu, "")
        .replace(ap, "")
        .replace("[regions.us-east]", &format!("{eu}[regions.us-east]"));
    let text = text[..text.find(pool).expect("pool record")].to_string();
    assert!(!text.contains("ap-south") && text.find("eu-west") < text.find("us-east"));
    std::fs::write(dep.config(), &text).unwrap();

    let (s, admin) = start(&dep);
    assert_eq!(www(&s), US, "eu-west still drained, by name");
    assert_eq!(
        drained(admin),
        pairs(&[("eu-west", true), ("us-east", false)])
    );
    let warning = "drained region(s) ap-south no longer in the config";
    assert!(s.log().contains(warning), "{}", s.log());
    assert!(s.log().contains(&file.display().to_string()), "{}", s.log());
    assert_eq!(
        saved(&file)["drained"],
        json!(["eu-west", "ap-south"]),
        "kept until the next write"
    );
    // Any drain call writes the file, even one that changes nothing.
    post_ok(admin, "/api/v1/regions/us-east/undrain", false);
    assert_eq!(saved(&file), json!({"version": 1, "drained": ["eu-west"]}));
}

/// Runs `gslbd serve` on `config`, expecting it to exit by itself within 20 s.
fn serve_exit(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(gslbd_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gslbd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "gslbd serve kept running:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

#[test]
fn a_corrupt_state_file_stops_serve_and_check() {
    let dep = deployment("state/gslbd.json");
    let file: PathBuf = dep.dir.path().join("state/gslbd.json");
    // No file yet: an empty state, and check says ok.
    let out = check(&dep.config());
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    std::fs::create_dir(dep.dir.path().join("state")).unwrap();
    let cases = [
        (
            "{\"version\": 1, \"drained\": [\"eu-west\"",
            "EOF while parsing",
        ),
        ("{\"version\": 1, \"drained\": \"eu-west\"}", "invalid type"),
        ("{\"drained\": []}", "no \"version\""),
    ];
    for (text, why) in cases {
        std::fs::write(&file, text).unwrap();
        let name = file.display().to_string();

        let (code, stderr) = serve_exit(&dep.config());
        assert_eq!(code, Some(2), "serve with {text:?}:\n{stderr}");
        assert!(
            stderr.contains(&name) && stderr.contains(why),
            "serve with {text:?}:\n{stderr}"
        );
        assert!(!stderr.contains("ready"), "{stderr}");

        let out = check(&dep.config());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "check with {text:?}:\n{stderr}");
        assert!(
            stderr.contains(&name) && stderr.contains(why),
            "check with {text:?}:\n{stderr}"
        );
    }
}

#[test]
fn a_state_file_that_cannot_be_written_fails_the_drain_call() {
    let dep = deployment("state/gslbd.json");
    let file = dep.dir.path().join("state/gslbd.json");
    let (s, admin) = start(&dep);
    // A file where the state folder should be: nothing can be created under it.
    let blocker = dep.dir.path().join("state");
    std::fs::write(&blocker, "not a folder").unwrap();

    let r = post(admin, "/api/v1/regions/eu-west/drain");
    assert_eq!(r.status, 500, "{}", r.body);
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains(&file.display().to_string())
            && error.contains("cannot create the folder")
            && error.contains("File exists")
            && error.contains("will not survive a restart"),
        "{error}"
    );
    // It applies in memory all the same, and the log says it did not persist.
    assert_eq!(www(&s), US);
    assert_eq!(
        drained(admin),
        pairs(&[("us-east", false), ("eu-west", true), ("ap-south", false)])
    );
    assert!(
        s.wait_log("cannot write the state file", Duration::from_secs(2)),
        "{}",
        s.log()
    );

    // Once the path is writable again, the next call writes it (changed or not).
    std::fs::remove_file(&blocker).unwrap();
    post_ok(admin, "/api/v1/regions/eu-west/drain", false);
    assert_eq!(saved(&file), json!({"version": 1, "drained": ["eu-west"]}));
}

#[test]
fn a_reload_that_moves_the_state_file_writes_the_new_one() {
    let dep = deployment("state/gslbd.json");
    let old = dep.dir.path().join("state/gslbd.json");
    let new = dep.dir.path().join("elsewhere/drains.json");
    let (mut s, admin) = start(&dep);
    post_ok(admin, "/api/v1/regions/eu-west/drain", true);

    std::fs::write(dep.config(), config_with("elsewhere/drains.json")).unwrap();
    let r = post(admin, "/api/v1/reload");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["warnings"], json!([]));
    // The running drains go to the new file at once; the old one is left alone.
    assert_eq!(saved(&new), json!({"version": 1, "drained": ["eu-west"]}));
    post_ok(admin, "/api/v1/regions/ap-south/drain", true);
    assert_eq!(
        saved(&new),
        json!({"version": 1, "drained": ["eu-west", "ap-south"]})
    );
    assert_eq!(saved(&old), json!({"version": 1, "drained": ["eu-west"]}));

    stop(&mut s, "TERM");
    let (s, admin) = start(&dep);
    assert_eq!(www(&s), US);
    assert_eq!(
        drained(admin),
        pairs(&[("us-east", false), ("eu-west", true), ("ap-south", true)])
    );
}
