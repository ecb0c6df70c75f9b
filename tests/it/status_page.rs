//! The status page at `GET /` of the admin API, rendered by a real headless browser
//! (Debian's `chromium`; skipped with a message where it is missing, except in CI, where
//! `.ci/run` installs it): with one region down (its probe answers 503), one drained and
//! one up, the DOM after the page's script has polled the API must name each region
//! with its state in words, show bars whose parts add up to the answers sent, list the
//! state changes with their reason, and never contain the admin token.
//!
//! With `GSLBD_STATUS_SCREENSHOT=docs/status-page.png` the test also saves a screenshot
//! of that state (the one in the README).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gslbd::sim::{FakeRegion, Mode};
use hickory_proto::rr::RecordType;

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd};
use crate::http::{get, request};

const ZONE: &str = "$ORIGIN gslb.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n";
const TOKEN: &str = "status-page-secret-token-8b1f";

/// True when `chromium` runs; in CI it must (`.ci/run` installs it).
fn have_chromium() -> bool {
    let ok = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI (apt-get install chromium)"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
    }
    ok
}

/// Runs headless chromium on `url` with `args` (`--dump-dom`, `--screenshot=...`) and
/// returns its stdout. Its profile lives in a fresh folder, it resolves no host name
/// (so none of its background services reach beyond loopback), and the virtual time
/// budget lets the page's first poll complete before the DOM is taken.
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            // Chromium refuses to run as root with its sandbox (CI containers run as root).
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 DOM");
    assert!(
        args != ["--dump-dom"] || stdout.contains("</html>"),
        "chromium dumped no page: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The start tags `<TAG ...>` of `html` that contain `marker`, each with its attributes
/// (Chromium writes every attribute value in double quotes, with `"` escaped).
fn tags(html: &str, tag: &str, marker: &str) -> Vec<HashMap<String, String>> {
    let open = format!("<{tag} ");
    html.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(attrs, _)| attrs))
        .filter(|attrs| attrs.contains(marker))
        .map(|attrs| {
            let mut map = HashMap::new();
            let mut rest = attrs;
            while let Some((name, after)) = rest.split_once("=\"") {
                let Some((value, tail)) = after.split_once('"') else {
                    break;
                };
                map.insert(name.trim().to_string(), value.replace("&amp;", "&"));
                rest = tail;
            }
            map
        })
        .collect()
}

/// The `<article>` of `html` whose start tag contains `marker`, up to its `</article>`
/// (the page's cards are articles and do not nest).
fn article<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page:\n{html}"));
    let start = html[..at].rfind("<article ").expect("inside an article");
    let len = html[start..].find("</article>").expect("card closed");
    &html[start..start + len]
}

/// `html` without its tags, and with runs of white space as one space.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ask(s: &Gslbd, name: &str, times: usize, want: &str) {
    for _ in 0..times {
        let got = dns::answer_data(&dns::udp(s.udp, &query(name, RecordType::A)), RecordType::A);
        assert!(got.iter().all(|a| a == want), "{name}: {got:?}, not {want}");
    }
}

/// Waits (2 s at most) until `/api/v1/status` counts `want` answers of `record`: a
/// counter is bumped just after its reply is sent.
fn wait_answers(admin: SocketAddr, record: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let v = get(admin, "/api/v1/status").json();
        let got = v["traffic"]["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == record)
            .map(|r| r["answers"].as_u64().unwrap());
        if got == Some(want) || Instant::now() > deadline {
            assert_eq!(got, Some(want), "{record} answers: {v}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_status_page_shows_regions_traffic_and_changes_in_a_real_browser() {
    let (eu, us) = (FakeRegion::start().unwrap(), FakeRegion::start().unwrap());
    eu.set(Mode::Status(503));
    let probe = |r: &FakeRegion| {
        format!(
            r#"{{ url = "{}", interval = "100ms", timeout = "80ms", rise = 2, fall = 2 }}"#,
            r.url()
        )
    };
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
admin_token = "{TOKEN}"

[regions.eu-west]
addresses = ["192.0.2.20", "192.0.2.21"]
probe = {eu}

[regions.us-east]
addresses = ["192.0.2.10"]
probe = {us}

[regions.ap-south]
addresses = ["192.0.2.30", "2001:db8:30::1"]

[records."www.gslb.test"]
policy = "failover"
regions = ["eu-west", "us-east", "ap-south"]

[records."db.gslb.test"]
policy = "failover"
regions = ["ap-south"]

[records."api.gslb.test"]
policy = "weighted"
weights = {{ us-east = 1, ap-south = 1 }}
"#,
        eu = probe(&eu),
        us = probe(&us),
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", ZONE)]);
    let s = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = s.admin.expect("admin address logged");

    // eu-west is down from the first probe round: www goes to us-east, then, once
    // us-east is drained, to ap-south.
    ask(&s, "www.gslb.test.", 6, "192.0.2.10");
    let bearer = format!("Bearer {TOKEN}");
    let r = request(
        admin,
        "POST",
        "/api/v1/regions/us-east/drain",
        &[("Authorization", &bearer)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    ask(&s, "www.gslb.test.", 4, "192.0.2.30");
    ask(&s, "db.gslb.test.", 3, "192.0.2.30");
    wait_answers(admin, "www.gslb.test", 10);
    wait_answers(admin, "db.gslb.test", 3);

    let page = get(admin, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"));
    for path in ["/", "/api/v1/status", "/api/v1/regions"] {
        assert!(
            !get(admin, path).body.contains(TOKEN),
            "{path} shows the token"
        );
    }

    // The same figures in the JSON the page reads.
    let status = get(admin, "/api/v1/status").json();
    let www = &status["traffic"]["records"][0];
    assert_eq!(www["name"], "www.gslb.test");
    assert_eq!(
        www["regions"],
        serde_json::json!([
            {"region": "eu-west", "answers": 0},
            {"region": "us-east", "answers": 6},
            {"region": "ap-south", "answers": 4}
        ])
    );
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        request(admin, "POST", "/", &[("Authorization", &bearer)]).status,
        405
    );

    // The browser: skipped (with a message) where chromium is missing, except in CI.
    if !have_chromium() {
        return;
    }
    let url = format!("http://{admin}/");
    let dom = chromium(&url, &["--dump-dom"]);
    assert!(!dom.contains(TOKEN), "the page shows the admin token");
    assert!(
        tags(&dom, "p", "id=\"error\"")[0].contains_key("hidden"),
        "the page could not reach the API:\n{dom}"
    );

    // Each region by name, with its state in words (not colour alone).
    for (name, state) in [
        ("eu-west", "down"),
        ("us-east", "drained"),
        ("ap-south", "up"),
    ] {
        let card = article(&dom, &format!("data-region=\"{name}\" data-state="));
        let words = text(card);
        assert!(
            card.contains(&format!("data-state=\"{state}\""))
                && words.starts_with(&format!("{name} {state} ")),
            "{name}: {words}"
        );
    }
    let eu_card = text(article(&dom, "data-region=\"eu-west\" data-state="));
    assert!(eu_card.contains("192.0.2.20 — not served"), "{eu_card}");
    // Each probe target with its state and last result.
    let probe_line = format!("probe GET {} — down last result status 503", eu.url());
    assert!(eu_card.contains(&probe_line), "{eu_card}");
    let us_card = text(article(&dom, "data-region=\"us-east\" data-state="));
    let probe_line = format!("probe GET {} — up last result ok", us.url());
    assert!(
        us_card.contains(&probe_line),
        "drained, probed up: {us_card}"
    );
    assert!(us_card.contains("192.0.2.10 — not served"), "{us_card}");
    let ap_card = text(article(&dom, "data-region=\"ap-south\" data-state="));
    assert!(ap_card.contains("2001:db8:30::1 — served"), "{ap_card}");

    // Bars: the parts of each add up to the answers sent, and their widths to 100 %.
    let bar = |record: &str| -> Vec<(String, u64, f64)> {
        let card = article(&dom, &format!("data-record=\"{record}\""));
        let total: u64 = tags(card, "article", "")[0]["data-answers"]
            .parse()
            .unwrap();
        let segs: Vec<(String, u64, f64)> = tags(card, "span", "class=\"seg\"")
            .iter()
            .map(|t| {
                let width = t["style"]
                    .split_once("width: ")
                    .and_then(|(_, w)| w.split_once('%'))
                    .map(|(w, _)| w.parse::<f64>().unwrap())
                    .unwrap_or_else(|| panic!("no width in {t:?}"));
                (
                    t["data-region"].clone(),
                    t["data-answers"].parse().unwrap(),
                    width,
                )
            })
            .collect();
        assert_eq!(segs.iter().map(|s| s.1).sum::<u64>(), total, "{record}");
        if total > 0 {
            let widths: f64 = segs.iter().map(|s| s.2).sum();
            assert!((widths - 100.0).abs() < 0.01, "{record}: widths {widths}");
        }
        segs
    };
    let www = bar("www.gslb.test");
    let parts: Vec<(&str, u64)> = www.iter().map(|s| (s.0.as_str(), s.1)).collect();
    assert_eq!(parts, [("us-east", 6), ("ap-south", 4)]);
    assert!((www[0].2 - 60.0).abs() < 0.01, "{www:?}");
    let legend = text(article(&dom, "data-record=\"www.gslb.test\""));
    assert!(
        legend.contains("eu-west 0% (0) us-east 60% (6) ap-south 40% (4)"),
        "{legend}"
    );
    assert_eq!(bar("db.gslb.test")[0].1, 3);
    assert!(bar("api.gslb.test").is_empty(), "no answers, no bar parts");

    // The state changes, with their reasons.
    let changes: Vec<String> = dom
        .split("<tr data-kind=")
        .skip(1)
        .map(|row| text(&row[..row.find("</tr>").unwrap()]))
        .collect();
    let has = |what: &str| changes.iter().any(|c| c.contains(what));
    assert!(
        has("drain us-east undrained → drained operator"),
        "{changes:?}"
    );
    assert!(
        has("region eu-west up → down status 503 (0 of 1 probe targets up)"),
        "{changes:?}"
    );
    assert!(has("status 503") && has(&eu.url()), "{changes:?}");
    assert!(text(&dom).contains(&format!("version {}", env!("CARGO_PKG_VERSION"))));

    if let Some(path) = std::env::var_os("GSLBD_STATUS_SCREENSHOT") {
        let path = Path::new(&path)
            .canonicalize()
            .unwrap_or_else(|_| std::env::current_dir().unwrap().join(Path::new(&path)));
        chromium(
            &url,
            &[
                "--hide-scrollbars",
                "--window-size=1100,900",
                &format!("--screenshot={}", path.display()),
            ],
        );
        eprintln!("screenshot saved to {}", path.display());
    }
}

#[test]
fn with_a_cluster_the_status_page_shows_each_peer_and_its_votes() {
    let eu = FakeRegion::start().unwrap();
    // A peer that refuses connections: its view is never fresh, so it votes `none`.
    let peer = "http://127.0.0.1:1";
    let config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]

[regions.eu-west]
addresses = ["192.0.2.20"]
probe = {{ url = "{}", interval = "100ms", timeout = "80ms" }}

[records."www.gslb.test"]
policy = "failover"

[cluster]
peers = ["{peer}"]
interval = "100ms"
"#,
        eu.url()
    );
    let dep = Deployment::new(&config, &[("gslb.test.zone", ZONE)]);
    let s = Gslbd::start(&dep.config(), &["--admin", "127.0.0.1:0"]);
    let admin = s.admin.expect("admin address logged");
    if !have_chromium() {
        return;
    }
    let dom = chromium(&format!("http://{admin}/"), &["--dump-dom"]);
    let cluster = tags(&dom, "section", "id=\"cluster\"");
    assert!(!cluster[0].contains_key("hidden"), "cluster section hidden");
    let page = text(&dom);
    assert!(
        page.contains(&format!("{peer} stale – ")),
        "the peer, stale: {page}"
    );
    assert!(
        page.contains("Deciding from this instance's own probes"),
        "{page}"
    );
    let card = text(article(&dom, "data-region=\"eu-west\" data-state="));
    assert!(card.contains(&format!("votes: {peer} none")), "{card}");
}
