//! `server.probe_source`: every health probe (HTTP, HTTPS, TCP connect, by address or by
//! name) leaves from the configured address, checked by the fake regions' view of their
//! peers; without it the kernel's choice (127.0.0.1 on loopback) is used; a reload
//! switches to a new source; a source of the wrong family or one this machine does not
//! have fails every probe with a reason naming `probe_source`, sends nothing, and does
//! not spin. Linux routes all of 127.0.0.0/8 to loopback, so 127.0.0.2 and 127.0.0.3
//! work as sources with no setup.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use gslbd::sim::FakeRegion;

use crate::harness::{Deployment, Gslbd};
use crate::http::get;

const ZONE: &str = "$ORIGIN gslb.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n";

/// Probe timing: a probe every 200 ms, failing after 150 ms, one result moves the state.
const TIMING: &str = r#"interval = "200ms", timeout = "150ms", rise = 1, fall = 1"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Fake regions for each kind of probe, on 127.0.0.1.
struct Endpoints {
    /// Region `web`, probed with `url = "http://127.0.0.1:PORT/healthz"`.
    http: FakeRegion,
    /// Region `secure`, probed with `url = "https://127.0.0.1:PORT/healthz"` and
    /// `insecure = true` (the fixture certificate is self-signed).
    https: FakeRegion,
    /// Region `plain`, probed with `tcp = "127.0.0.1:PORT"`.
    tcp: FakeRegion,
    /// Region `named`, probed with `url = "http://localhost:PORT/healthz"` (a host name,
    /// resolved at each probe); `None` where `localhost` may also resolve to ::1.
    named: Option<FakeRegion>,
}

impl Endpoints {
    fn start(named: bool) -> Endpoints {
        Endpoints {
            http: FakeRegion::start().unwrap(),
            https: FakeRegion::start_tls().unwrap(),
            tcp: FakeRegion::start().unwrap(),
            named: named.then(|| FakeRegion::start().unwrap()),
        }
    }

    /// (region name, endpoint) of each.
    fn all(&self) -> Vec<(&'static str, &FakeRegion)> {
        let mut all = vec![
            ("web", &self.http),
            ("secure", &self.https),
            ("plain", &self.tcp),
        ];
        all.extend(self.named.as_ref().map(|n| ("named", n)));
        all
    }

    fn total_connections(&self) -> u64 {
        self.all().iter().map(|(_, r)| r.connections()).sum()
    }

    /// The log line of the cold-start round when all of them are up.
    fn all_up(&self) -> String {
        let n = self.all().len();
        format!("first probe round: {n} of {n} targets up")
    }
}

/// A config with one region per endpoint and `server_extra` in `[server]`.
fn config(e: &Endpoints, server_extra: &str) -> String {
    let mut config = format!(
        r#"[server]
listen = ["127.0.0.1:0"]
{server_extra}

[regions.web]
addresses = ["192.0.2.10"]
probe = {{ url = "{}", expect_body = "ok", {TIMING} }}

[regions.secure]
addresses = ["192.0.2.20"]
probe = {{ url = "{}", expect_body = "ok", insecure = true, {TIMING} }}

[regions.plain]
addresses = ["192.0.2.30"]
probe = {{ tcp = "{}", {TIMING} }}
"#,
        e.http.url(),
        e.https.url(),
        e.tcp.addr(),
    );
    if let Some(named) = &e.named {
        config.push_str(&format!(
            r#"
[regions.named]
addresses = ["192.0.2.40"]
probe = {{ url = "http://localhost:{}/healthz", expect_body = "ok", {TIMING} }}
"#,
            named.addr().port()
        ));
    }
    config
}

fn start(e: &Endpoints, server_extra: &str, extra_args: &[&str]) -> (Gslbd, Deployment) {
    let dep = Deployment::new(&config(e, server_extra), &[("gslb.test.zone", ZONE)]);
    let s = Gslbd::start(&dep.config(), extra_args);
    (s, dep)
}

/// Waits (at most 3 s) until every endpoint has had at least `n` connections from
/// `source`, then asserts that none came from anywhere else.
fn assert_probed_only_from(e: &Endpoints, s: &Gslbd, source: IpAddr, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while e.all().iter().any(|(_, r)| r.connections_from(source) < n) {
        if Instant::now() >= deadline {
            let seen: Vec<_> = e
                .all()
                .iter()
                .map(|(name, r)| (*name, r.peers(), r.connections_from(source)))
                .collect();
            panic!(
                "not every endpoint got {n} probes from {source}: {seen:?}; log:\n{}",
                s.log()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for (name, r) in e.all() {
        assert_eq!(r.peers(), [source], "{name} endpoint; log:\n{}", s.log());
    }
}

#[test]
fn every_kind_of_probe_leaves_from_probe_source() {
    // `localhost` resolves to 127.0.0.1 and perhaps ::1: an IPv4 source uses only the
    // former, so the named target is deterministic here.
    let e = Endpoints::start(true);
    let (s, _dep) = start(&e, r#"probe_source = "127.0.0.2""#, &[]);
    // Every probe of the cold-start round succeeded: sending from 127.0.0.2 works.
    assert!(s.log().contains(&e.all_up()), "{}", s.log());
    // The cold-start round and at least two scheduled probes, all from 127.0.0.2.
    assert_probed_only_from(&e, &s, ip("127.0.0.2"), 3);
    // The HTTP(S) ones were whole requests, not just connections (a request is counted
    // a moment after its connection).
    let deadline = Instant::now() + Duration::from_secs(1);
    for (name, r) in e.all().into_iter().filter(|(n, _)| *n != "plain") {
        while r.hits() < 3 {
            assert!(Instant::now() < deadline, "{name}: {} requests", r.hits());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert!(!s.log().contains("cannot"), "{}", s.log());
}

#[test]
fn without_probe_source_the_kernel_picks_the_source() {
    let e = Endpoints::start(true);
    let (s, _dep) = start(&e, "", &[]);
    assert!(s.log().contains(&e.all_up()), "{}", s.log());
    assert_probed_only_from(&e, &s, ip("127.0.0.1"), 2);
}

#[test]
fn a_reload_switches_to_the_new_probe_source() {
    let e = Endpoints::start(true);
    let (s, dep) = start(&e, r#"probe_source = "127.0.0.2""#, &[]);
    assert_probed_only_from(&e, &s, ip("127.0.0.2"), 1);

    std::fs::write(dep.config(), config(&e, r#"probe_source = "127.0.0.3""#)).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(
        s.wait_log("reloaded", Duration::from_secs(5)),
        "{}",
        s.log()
    );
    // Probes now come from 127.0.0.3. A connection from 127.0.0.2 started before the
    // reload was queued before any of these, so once each endpoint has one from
    // 127.0.0.3 the count from 127.0.0.2 is final.
    let new = ip("127.0.0.3");
    let deadline = Instant::now() + Duration::from_secs(3);
    while e.all().iter().any(|(_, r)| r.connections_from(new) == 0) {
        assert!(
            Instant::now() < deadline,
            "no probe from {new}:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let old: Vec<u64> = e
        .all()
        .iter()
        .map(|(_, r)| r.connections_from(ip("127.0.0.2")))
        .collect();
    let since: Vec<u64> = e
        .all()
        .iter()
        .map(|(_, r)| r.connections_from(new))
        .collect();
    std::thread::sleep(Duration::from_millis(700)); // three more intervals
    for (i, (name, r)) in e.all().into_iter().enumerate() {
        assert_eq!(
            r.connections_from(ip("127.0.0.2")),
            old[i],
            "{name}: still probed from the old source"
        );
        assert!(
            r.connections_from(new) >= since[i] + 2,
            "{name}: {} probes from {new} in 700 ms",
            r.connections_from(new) - since[i]
        );
        assert_eq!(r.peers(), [ip("127.0.0.2"), new], "{name}");
    }
    assert!(
        s.log().contains(&e.all_up()) && !s.log().contains("is down"),
        "{}",
        s.log()
    );
}

/// The `gslbd_probe_results_total` counts of every target, summed.
fn probes_so_far(admin: std::net::SocketAddr) -> u64 {
    let r = get(admin, "/metrics");
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .filter(|l| l.starts_with("gslbd_probe_results_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Starts gslbd with an unusable `probe_source` and checks: every region down, each
/// target's last result and the log name `probe_source` with `why`, nothing reached
/// an endpoint, and probes keep to their interval.
fn unusable(source: &str, why: &str, named: bool) {
    let e = Endpoints::start(named);
    let (s, _dep) = start(
        &e,
        &format!(r#"probe_source = "{source}""#),
        &["--admin", "127.0.0.1:0"],
    );
    let admin = s.admin.expect("admin address");
    let reason = format!("cannot send from probe_source {source}");
    let n = e.all().len();
    assert!(
        s.log()
            .contains(&format!("first probe round: 0 of {n} targets up")),
        "{}",
        s.log()
    );
    let v = get(admin, "/api/v1/regions").json();
    let regions = v["regions"].as_array().unwrap();
    assert_eq!(regions.len(), n);
    for r in regions {
        assert_eq!(r["state"], "down", "{r}");
        let last = r["targets"][0]["last_result"].as_str().unwrap_or_default();
        assert!(
            last.contains(&reason) && last.contains(why),
            "{source}: {r}"
        );
    }
    for (region, _) in e.all() {
        let line = format!("region {region} is down");
        assert!(
            s.log()
                .lines()
                .any(|l| l.contains(&line) && l.contains(&reason)),
            "no {line:?} naming {reason:?}:\n{}",
            s.log()
        );
    }
    // Failing probes keep to their interval (200 ms): no retry loop, no spinning, and
    // no stop either.
    let (before, since) = (probes_so_far(admin), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let made = probes_so_far(admin) - before;
    let intervals = (since.elapsed().as_millis() / 200) as u64;
    let n = n as u64;
    assert!(
        (n * intervals.saturating_sub(2)..=n * (intervals + 2)).contains(&made),
        "{made} probes of {n} targets in {:?}",
        since.elapsed()
    );
    assert_eq!(e.total_connections(), 0, "something was sent");
    // It stays down: no probe ever succeeds.
    let v = get(admin, "/api/v1/regions").json();
    assert!(
        v["regions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "down"),
        "{v}"
    );
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

#[test]
fn a_source_this_machine_does_not_have_fails_every_probe() {
    // 192.0.2.1 (TEST-NET-1) is never a local address: binding to it fails with
    // EADDRNOTAVAIL, for HTTP, HTTPS and TCP probes alike.
    unusable("192.0.2.1", "not an address of this machine", true);
}

#[test]
fn a_source_of_the_other_family_fails_every_probe() {
    // IPv4 targets cannot be reached from ::1 (whether or not this machine has ::1).
    // Without the `localhost` target: it may also resolve to ::1, where nothing listens.
    unusable("::1", "(IPv6) to 127.0.0.1 (IPv4)", false);
}
