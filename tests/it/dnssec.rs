//! DNSSEC end to end. A signed deployment (the repository's example, with `[dnssec]` and
//! keys from `gslbd dnssec keygen`) is queried through Unbound, a real validating
//! resolver whose only trust anchor is the DS that `gslbd dnssec ds` prints, and every
//! answer must come back validated (AD): static data, a CNAME onto a dynamic name, a
//! wildcard, NODATA, a name that does not exist (compact denial), every policy for
//! clients of several continents (Unbound's subnetcache module forwards their subnet),
//! the answer after a failover, and a signed and an insecure delegation to other servers.
//! Directly against gslbd: what DO=1 replies carry (signature times and TTLs, the
//! compact-denial NSEC), that DO=0 replies are those of an unsigned server, and UDP
//! truncation of a signed answer. And the CLI: `keygen` writes once, `ds` prints each
//! zone's DS, and `check`/`serve` refuse a missing or malformed key.
//!
//! Unbound (package unbound) must be installed in CI (`.ci/run` does it); elsewhere the
//! tests that need it print that they skip.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gslbd::sim::{FakeRegion, Mode};
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_proto::dnssec::{DigestType, PublicKey};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::domain::Label;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::dns::{self, query};
use crate::harness::{Deployment, Gslbd, gslbd_bin, run_ok};

const APEX: &str = "gslb.example.com.";

/// Appended to a config to sign its zones.
const DNSSEC: &str = "\n[dnssec]\nkeys = \"keys\"\n";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's example deployment in a temporary folder: its gslb.toml through
/// `edit`, its zone with `zone_extra` appended, and geoip/sample.mmdb.
fn example(edit: impl FnOnce(String) -> String, zone_extra: &str) -> Deployment {
    let config = std::fs::read_to_string(repo().join("gslb.toml")).unwrap();
    let zone = std::fs::read_to_string(repo().join("zones/gslb.example.com.zone")).unwrap();
    let dep = Deployment::new(
        &edit(config),
        &[("gslb.example.com.zone", &format!("{zone}{zone_extra}"))],
    );
    std::fs::create_dir(dep.dir.path().join("geoip")).unwrap();
    std::fs::copy(
        repo().join("geoip/sample.mmdb"),
        dep.dir.path().join("geoip/sample.mmdb"),
    )
    .unwrap();
    dep
}

/// The example deployment, signed: `[dnssec]` added, keys generated. Its DS lines.
fn signed_example(zone_extra: &str, keygen_args: &[&str]) -> (Deployment, Vec<String>) {
    let dep = example(|c| c + DNSSEC, zone_extra);
    let ds = keygen(&dep.config(), keygen_args);
    (dep, ds)
}

/// `gslbd dnssec SUB --config CONFIG EXTRA...`.
fn dnssec_cmd(sub: &str, config: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(gslbd_bin());
    cmd.args(["dnssec", sub, "--config"])
        .arg(config)
        .args(extra);
    cmd
}

/// Runs `gslbd dnssec keygen` (which must succeed): the DS lines it prints.
fn keygen(config: &Path, extra: &[&str]) -> Vec<String> {
    lines(&run_ok(&mut dnssec_cmd("keygen", config, extra)).stdout)
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect()
}

/// stdout and stderr together, for messages that may go to either.
fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------
// Unbound

/// The Unbound binary, if installed (it lives in /usr/sbin, which a user's PATH may lack);
/// in CI it must be.
fn unbound_bin() -> Option<&'static str> {
    let found = ["unbound", "/usr/sbin/unbound"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "unbound is required in CI (apt-get install unbound)"
        );
        eprintln!("skipped: unbound is not installed (apt-get install unbound)");
    }
    found
}

/// A validating Unbound in the foreground on a loopback port, killed on drop. It caches
/// nothing (cache-max-ttl 0), so every query reaches gslbd and is validated afresh.
struct Unbound {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Unbound {
    /// Starts Unbound in `dir` with the DS lines `anchors` as trust anchors, a stub zone
    /// for each (zone, server), and, with `ecs`, the subnetcache module, which forwards the
    /// client's EDNS Client Subnet to 127.0.0.1.
    fn start(
        bin: &str,
        dir: &Path,
        anchors: &[String],
        stubs: &[(&str, SocketAddr)],
        ecs: bool,
    ) -> Unbound {
        // A port below the kernel's ephemeral range, which only an explicit bind takes
        // (see `Gslbd::start_off_ephemeral`); another is tried when it is in use.
        let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32768);
        let floor = 10_000.min(low / 2);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
        let mut rng = crate::rng::Rng(seed | 1);
        let log = dir.join("unbound.log");
        let mut failures = Vec::new();
        for _ in 0..10 {
            let port = floor + rng.below(usize::from(low - floor)) as u16;
            let conf = dir.join("unbound.conf");
            std::fs::write(&conf, unbound_conf(dir, port, anchors, stubs, ecs)).unwrap();
            let child = Command::new(bin)
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("run unbound");
            let mut u = Unbound {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log: log.clone(),
            };
            if u.wait_ready() {
                return u;
            }
            failures.push(u.log());
        }
        panic!("unbound did not start:\n{}", failures.join("\n---\n"));
    }

    /// Waits (at most 10 s) until Unbound answers a query of its own; false if it exited.
    fn wait_ready(&mut self) -> bool {
        let probe = dns::with_class(query("version.server.", RecordType::TXT), DNSClass::CH)
            .to_vec()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            // Unbound's own answer (its version), not some other server's on that port.
            let reply = dns::udp_raw_wait(self.addr, &probe, Duration::from_millis(100))
                .and_then(|b| Message::from_vec(&b).ok());
            if reply.is_some_and(|r| !r.answers.is_empty()) {
                return true;
            }
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks `name`/`rtype` (RD=1, DO=1), optionally with ECS `subnet`.
    fn ask_ecs(&self, name: &str, rtype: RecordType, subnet: Option<&str>) -> Message {
        let mut m = signed_query(name, rtype);
        m.metadata.recursion_desired = true;
        if let Some(subnet) = subnet {
            m = dns::with_ecs(m, subnet);
        }
        let bytes = dns::udp_raw_wait(self.addr, &m.to_vec().unwrap(), Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "unbound gave no answer to {name} {rtype}; its log:\n{}",
                    self.log()
                )
            });
        let reply = Message::from_vec(&bytes).expect("unparsable reply from unbound");
        assert_eq!(reply.metadata.id, m.metadata.id);
        reply
    }

    fn ask(&self, name: &str, rtype: RecordType) -> Message {
        self.ask_ecs(name, rtype, None)
    }

    /// Asks, and asserts the answer validated: NOERROR with AD. The answer.
    fn secure(&self, name: &str, rtype: RecordType) -> Message {
        let r = self.ask(name, rtype);
        self.assert_secure(&r, &format!("{name} {rtype}"));
        r
    }

    fn assert_secure(&self, r: &Message, what: &str) {
        assert!(
            r.metadata.response_code == ResponseCode::NoError && r.metadata.authentic_data,
            "{what}: not validated (rcode {}, AD {}):\n{}\nunbound log:\n{}",
            r.metadata.response_code,
            r.metadata.authentic_data,
            dns::rrs(&r.answers).join("\n"),
            self.log()
        );
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unbound_conf(
    dir: &Path,
    port: u16,
    anchors: &[String],
    stubs: &[(&str, SocketAddr)],
    ecs: bool,
) -> String {
    let dir = dir.display();
    let modules = if ecs {
        "subnetcache validator iterator"
    } else {
        "validator iterator"
    };
    let mut conf = format!(
        r#"server:
    interface: 127.0.0.1
    port: {port}
    so-reuseport: no
    do-ip6: no
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    val-log-level: 2
    qname-minimisation: no
    harden-referral-path: no
    trust-anchor-signaling: no
    cache-max-ttl: 0
    cache-max-negative-ttl: 0
    module-config: "{modules}"
"#
    );
    if ecs {
        conf.push_str("    send-client-subnet: 127.0.0.1\n");
    }
    for ds in anchors {
        conf.push_str(&format!("    trust-anchor: \"{ds}\"\n"));
    }
    for (zone, addr) in stubs {
        conf.push_str(&format!(
            "stub-zone:\n    name: \"{zone}\"\n    stub-addr: {}@{}\n",
            addr.ip(),
            addr.port()
        ));
    }
    conf
}

// ---------------------------------------------------------------------------------------
// Messages

/// A query with EDNS (1232) and DO=1.
fn signed_query(name: &str, rtype: RecordType) -> Message {
    let mut m = dns::with_edns(query(name, rtype), 1232);
    m.edns.as_mut().unwrap().set_dnssec_ok(true);
    m
}

fn rrsigs(records: &[Record]) -> Vec<(&Record, &RRSIG)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some((r, sig)),
            _ => None,
        })
        .collect()
}

/// The types the RRSIGs of `records` cover.
fn covered(records: &[Record]) -> BTreeSet<RecordType> {
    rrsigs(records)
        .iter()
        .map(|(_, s)| s.input().type_covered)
        .collect()
}

fn is_dnssec(r: &Record) -> bool {
    matches!(
        r.record_type(),
        RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
    )
}

fn all_records(m: &Message) -> impl Iterator<Item = &Record> {
    m.answers
        .iter()
        .chain(m.authorities.iter())
        .chain(m.additionals.iter())
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// `\000.s`: the next name of a compact-denial NSEC at `s`.
fn successor(s: &str) -> Name {
    name(s)
        .prepend_label(Label::from_raw_bytes(&[0]).unwrap())
        .unwrap()
}

/// Every RRset of every section of `m` (but OPT) has an RRSIG by `tag` of the zone at
/// `apex`, whose original TTL is the RRset's TTL, with inception at least an hour in the
/// past and expiration days ahead.
fn assert_fully_signed(m: &Message, apex: &str, tag: u16, what: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    for section in [&m.answers, &m.authorities, &m.additionals] {
        let sigs = rrsigs(section);
        for r in section.iter() {
            let t = r.record_type();
            if t == RecordType::RRSIG || t == RecordType::OPT {
                continue;
            }
            let sig = sigs
                .iter()
                .find(|(o, s)| o.name == r.name && s.input().type_covered == t)
                .map(|(_, s)| s.input())
                .unwrap_or_else(|| {
                    panic!(
                        "{what}: no RRSIG over {} {t}:\n{}",
                        r.name,
                        dns::rrs(section).join("\n")
                    )
                });
            assert_eq!(sig.signer_name, name(apex), "{what}: signer of {t}");
            assert_eq!(sig.key_tag, tag, "{what}: key tag of {t}");
            assert_eq!(
                sig.original_ttl, r.ttl,
                "{what}: RRSIG original TTL of {} {t}",
                r.name
            );
            let (inception, expiration) = (sig.sig_inception.get(), sig.sig_expiration.get());
            assert!(
                inception <= now - 3600,
                "{what}: inception {inception} is not backdated an hour from {now}"
            );
            assert!(
                expiration >= now + 2 * 86400,
                "{what}: expiration {expiration} is not days ahead of {now}"
            );
        }
    }
}

/// The NSEC records of `records`, as (owner, next name, types).
fn nsecs(records: &[Record]) -> Vec<(Name, Name, BTreeSet<RecordType>)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((
                r.name.clone(),
                n.next_domain_name().clone(),
                n.type_bit_maps().collect(),
            )),
            _ => None,
        })
        .collect()
}

fn types(ts: &[RecordType]) -> BTreeSet<RecordType> {
    ts.iter().copied().collect()
}

/// The key tag in a DS line (`ZONE IN DS TAG ALG 2 HEX`).
fn ds_tag(line: &str) -> u16 {
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// Through a validator

#[test]
fn a_validator_accepts_static_dynamic_wildcard_and_negative_answers() {
    let Some(bin) = unbound_bin() else { return };
    let (dep, ds) = signed_example("", &[]);
    let s = dep.start();
    let u = Unbound::start(bin, dep.dir.path(), &ds, &[(APEX, s.udp)], false);

    let r = u.secure("static.gslb.example.com.", RecordType::A);
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    let r = u.secure("static.gslb.example.com.", RecordType::AAAA);
    assert_eq!(dns::answer_data(&r, RecordType::AAAA), ["2001:db8::1"]);
    let r = u.secure(APEX, RecordType::MX);
    assert_eq!(dns::answer_data(&r, RecordType::MX).len(), 1);
    // The keys at the apex.
    for t in [RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY] {
        let r = u.secure(APEX, t);
        assert_eq!(dns::answer_data(&r, t).len(), 1, "{t}");
    }

    // A static CNAME onto a dynamic name (geo: a loopback client gets the default,
    // us-east); and the dynamic names themselves.
    let r = u.secure("shop.gslb.example.com.", RecordType::A);
    assert_eq!(
        dns::answer_data(&r, RecordType::CNAME),
        ["www.gslb.example.com."]
    );
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.10"]);
    let r = u.secure("www.gslb.example.com.", RecordType::AAAA);
    assert_eq!(dns::answer_data(&r, RecordType::AAAA), ["2001:db8:10::1"]);
    let r = u.secure("db.gslb.example.com.", RecordType::A);
    assert_eq!(
        dns::answer_data(&r, RecordType::A),
        ["192.0.2.20", "192.0.2.21"]
    );

    // A wildcard, signed as if the name existed.
    let r = u.secure("anything.apps.gslb.example.com.", RecordType::A);
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.80"]);

    // NODATA: at a static name, at a dynamic name, at a wildcard-made name, at the empty
    // non-terminal above the wildcard, and a type the apex lacks.
    for (n, t) in [
        ("static.gslb.example.com.", RecordType::TXT),
        ("www.gslb.example.com.", RecordType::TXT),
        ("db.gslb.example.com.", RecordType::MX),
        ("anything.apps.gslb.example.com.", RecordType::AAAA),
        ("apps.gslb.example.com.", RecordType::A),
        (APEX, RecordType::SRV),
    ] {
        let r = u.secure(n, t);
        assert!(r.answers.is_empty(), "{n} {t}: {:?}", dns::rrs(&r.answers));
    }

    // A name that does not exist: gslbd answers NOERROR with a compact-denial NSEC whose
    // bitmap holds NXNAME (RFC 9824). Unbound 1.17 (Debian 12) does not know NXNAME and
    // validates the NSEC as a NODATA proof, so its client gets NOERROR, no answer, AD; a
    // resolver that knows RFC 9824 may say NXDOMAIN. Either is a validated denial.
    for (n, t) in [
        ("nope.gslb.example.com.", RecordType::A),
        ("deep.below.nope.gslb.example.com.", RecordType::AAAA),
        ("nope.www.gslb.example.com.", RecordType::A),
        ("nope.static.gslb.example.com.", RecordType::TXT),
    ] {
        let r = u.ask(n, t);
        assert!(
            matches!(
                r.metadata.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            ) && r.metadata.authentic_data
                && r.answers.is_empty(),
            "{n} {t}: rcode {} AD {} answers {:?}; unbound log:\n{}",
            r.metadata.response_code,
            r.metadata.authentic_data,
            dns::rrs(&r.answers),
            u.log()
        );
    }
}

#[test]
fn every_policy_validates_for_clients_on_each_continent() {
    let Some(bin) = unbound_bin() else { return };
    let (dep, ds) = signed_example("", &[]);
    let s = dep.start();
    // subnetcache: Unbound forwards each client's ECS to gslbd, whose answer depends on it.
    let u = Unbound::start(bin, dep.dir.path(), &ds, &[(APEX, s.udp)], true);
    let eu_west = ["192.0.2.20", "192.0.2.21"];
    for (n, t, subnet, want) in [
        // geo: continent.EU, continent.AS, country.CN, default.
        ("www", RecordType::A, "81.2.69.0/24", &eu_west[..]),
        ("www", RecordType::A, "1.0.16.0/24", &["192.0.2.30"]),
        ("www", RecordType::A, "175.16.199.0/24", &["192.0.2.10"]),
        ("www", RecordType::A, "8.8.8.0/24", &["192.0.2.10"]),
        (
            "www",
            RecordType::AAAA,
            "2a02:d3c0::/48",
            &["2001:db8:20::1"],
        ),
        (
            "www",
            RecordType::AAAA,
            "2001:218::/48",
            &["2001:db8:30::1"],
        ),
        // latency: the [latency] table sends Europe to eu-west; distance sends Japan to
        // ap-south.
        ("edge", RecordType::A, "81.2.69.0/24", &eu_west),
        ("edge", RecordType::A, "1.0.16.0/24", &["192.0.2.30"]),
        // failover: the first region, up.
        ("db", RecordType::A, "1.0.16.0/24", &eu_west),
        // A CNAME onto the geo name, decided for the client's subnet.
        ("shop", RecordType::A, "1.0.16.0/24", &["192.0.2.30"]),
    ] {
        let qname = format!("{n}.{APEX}");
        let r = u.ask_ecs(&qname, t, Some(subnet));
        u.assert_secure(&r, &format!("{qname} {t} from {subnet}"));
        assert_eq!(dns::answer_data(&r, t), want, "{qname} {t} from {subnet}");
    }
    // weighted (sticky, 3:1): each subnet gets us-east or eu-west, validated; over a few
    // subnets both are seen.
    let mut seen = BTreeSet::new();
    for i in 0..16 {
        let subnet = format!("81.2.{i}.0/24");
        let r = u.ask_ecs("api.gslb.example.com.", RecordType::A, Some(&subnet));
        u.assert_secure(&r, &format!("api from {subnet}"));
        let got = dns::answer_data(&r, RecordType::A);
        assert!(
            got == ["192.0.2.10"] || got == eu_west,
            "api from {subnet}: {got:?}"
        );
        seen.insert(got);
    }
    assert_eq!(seen.len(), 2, "weighted answered one region only: {seen:?}");
}

#[test]
fn after_a_failover_the_new_answer_validates() {
    let Some(bin) = unbound_bin() else { return };
    let (eu, us) = (FakeRegion::start().unwrap(), FakeRegion::start().unwrap());
    let probe = |url: String| {
        format!(
            "probe = {{ url = \"{url}\", expect_body = \"ok\", interval = \"100ms\", timeout = \"80ms\", rise = 2, fall = 2 }}\n"
        )
    };
    let (eu_probe, us_probe) = (probe(eu.url()), probe(us.url()));
    let dep = example(
        |c| {
            c.replacen(
                "[regions.eu-west]\n",
                &format!("[regions.eu-west]\n{eu_probe}"),
                1,
            )
            .replacen(
                "[regions.us-east]\n",
                &format!("[regions.us-east]\n{us_probe}"),
                1,
            ) + DNSSEC
        },
        "",
    );
    let ds = keygen(&dep.config(), &[]);
    let s = dep.start();
    let u = Unbound::start(bin, dep.dir.path(), &ds, &[(APEX, s.udp)], false);
    let db = "db.gslb.example.com.";
    let r = u.secure(db, RecordType::A);
    assert_eq!(
        dns::answer_data(&r, RecordType::A),
        ["192.0.2.20", "192.0.2.21"]
    );

    // eu-west fails: within fall*interval + timeout + 1 s the answer moves to us-east
    // (allowing 2 s more on a busy machine, as tests/it/health.rs does), and every answer
    // on the way, old or new, validates.
    let bound = Duration::from_millis(2 * 100 + 80) + Duration::from_secs(1 + 2);
    eu.set(Mode::Status(503));
    let start = Instant::now();
    loop {
        let r = u.secure(db, RecordType::A);
        let got = dns::answer_data(&r, RecordType::A);
        if got == ["192.0.2.10"] {
            break;
        }
        assert_eq!(got, ["192.0.2.20", "192.0.2.21"]);
        assert!(
            start.elapsed() < bound,
            "db still {got:?} after {:?}; gslbd log:\n{}",
            start.elapsed(),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And back.
    eu.set(Mode::Up);
    let start = Instant::now();
    loop {
        let r = u.secure(db, RecordType::A);
        if dns::answer_data(&r, RecordType::A) == ["192.0.2.20", "192.0.2.21"] {
            break;
        }
        assert!(start.elapsed() < bound, "eu-west not back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child zone served by its own gslbd, signed or not.
fn child(zone: &str, host: &str, signed: bool) -> (Deployment, Gslbd, Vec<String>) {
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{}",
        if signed { DNSSEC } else { "" }
    );
    let text = format!(
        "$ORIGIN {zone}\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.54\nhost A {host}\n"
    );
    let dep = Deployment::new(&config, &[(&format!("{zone}zone"), &text)]);
    let ds = if signed {
        keygen(&dep.config(), &[])
    } else {
        Vec::new()
    };
    let s = dep.start();
    (dep, s, ds)
}

#[test]
fn delegations_to_a_signed_and_to_an_unsigned_child_validate() {
    let Some(bin) = unbound_bin() else { return };
    // lab. is delegated in the example zone, with no DS: an insecure delegation. signed.
    // is added with the DS of its own key, as `gslbd dnssec ds` prints it.
    let (_lab_dep, lab, _) = child("lab.gslb.example.com.", "192.0.2.99", false);
    let (_signed_dep, signed, child_ds) = child("signed.gslb.example.com.", "192.0.2.98", true);
    assert_eq!(child_ds.len(), 1);
    let extra = format!(
        "\n; a signed child\nsigned   IN NS ns1.signed\nns1.signed IN A 192.0.2.55\n{}\n",
        child_ds[0]
    );
    let (dep, ds) = signed_example(&extra, &[]);
    let s = dep.start();
    let u = Unbound::start(
        bin,
        dep.dir.path(),
        &ds,
        &[
            (APEX, s.udp),
            ("lab.gslb.example.com.", lab.udp),
            ("signed.gslb.example.com.", signed.udp),
        ],
        false,
    );

    // Unbound proves there is no DS for lab (the parent's NSEC at the cut), so the
    // child's unsigned answer is insecure, not bogus: NOERROR without AD.
    let r = u.ask("host.lab.gslb.example.com.", RecordType::A);
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::NoError,
        "insecure delegation; unbound log:\n{}",
        u.log()
    );
    assert!(
        !r.metadata.authentic_data,
        "an unsigned child is not secure"
    );
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.99"]);
    let r = u.secure("lab.gslb.example.com.", RecordType::DS);
    assert!(r.answers.is_empty(), "lab has no DS");

    // The signed child validates through the parent's signed DS.
    let r = u.secure("host.signed.gslb.example.com.", RecordType::A);
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.98"]);
    let r = u.secure("signed.gslb.example.com.", RecordType::DS);
    let served: Vec<u16> = r
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DS(ds)) => Some(ds.key_tag()),
            _ => None,
        })
        .collect();
    assert_eq!(served, [ds_tag(&child_ds[0])]);

    // Directly: the DS is answered by the parent, signed; the referral to lab carries
    // the NSEC at the cut (NS, no DS); the referral to signed carries the signed DS.
    let tag = ds_tag(&ds[0]);
    let r = dns::udp(
        s.udp,
        &signed_query("signed.gslb.example.com.", RecordType::DS),
    );
    assert!(r.metadata.authoritative);
    assert_eq!(dns::answer_data(&r, RecordType::DS).len(), 1);
    assert_eq!(covered(&r.answers), types(&[RecordType::DS]));
    assert_fully_signed(&r, APEX, tag, "signed DS");

    let r = dns::udp(
        s.udp,
        &signed_query("host.lab.gslb.example.com.", RecordType::A),
    );
    assert!(!r.metadata.authoritative, "a referral");
    assert!(r.answers.is_empty());
    let cut = name("lab.gslb.example.com.");
    assert_eq!(
        nsecs(&r.authorities),
        [(
            cut.clone(),
            successor("lab.gslb.example.com."),
            types(&[RecordType::NS, RecordType::RRSIG, RecordType::NSEC])
        )]
    );
    assert_eq!(
        covered(&r.authorities),
        types(&[RecordType::NSEC]),
        "the NS of a cut is not signed, its NSEC is:\n{}",
        dns::rrs(&r.authorities).join("\n")
    );

    let r = dns::udp(
        s.udp,
        &signed_query("host.signed.gslb.example.com.", RecordType::A),
    );
    assert!(!r.metadata.authoritative, "a referral");
    assert_eq!(
        r.authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::DS)
            .count(),
        1
    );
    assert_eq!(covered(&r.authorities), types(&[RecordType::DS]));
    assert!(nsecs(&r.authorities).is_empty());
}

#[test]
fn ed25519_keys_validate() {
    let Some(bin) = unbound_bin() else { return };
    let (dep, ds) = signed_example("", &["--algorithm", "ed25519"]);
    assert_eq!(ds.len(), 1);
    let f: Vec<&str> = ds[0].split_whitespace().collect();
    assert_eq!(&f[..6], [APEX, "IN", "DS", f[3], "15", "2"], "{}", ds[0]);
    let stem = format!("gslb.example.com+015+{:05}", ds_tag(&ds[0]));
    for ext in ["private", "key"] {
        assert!(dep.dir.path().join(format!("keys/{stem}.{ext}")).exists());
    }
    let s = dep.start();
    let u = Unbound::start(bin, dep.dir.path(), &ds, &[(APEX, s.udp)], false);
    let r = u.secure("static.gslb.example.com.", RecordType::A);
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
    let r = u.secure("shop.gslb.example.com.", RecordType::A);
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.10"]);
    let r = u.secure("x.apps.gslb.example.com.", RecordType::A);
    assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.80"]);
    let r = u.ask("nope.gslb.example.com.", RecordType::A);
    assert!(r.metadata.authentic_data && r.answers.is_empty(), "denial");
}

/// A key roll by hand (README): `keygen --add` puts a second key beside the first, both
/// sign everything, so a resolver holding either DS validates; once the old key is
/// removed, only the new DS does.
#[test]
fn a_key_roll_validates_with_either_ds_then_with_the_new_one_only() {
    let Some(bin) = unbound_bin() else { return };
    let (dep, old) = signed_example("", &[]);
    let both = keygen(&dep.config(), &["--add"]);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(
        both.contains(&old[0]),
        "the first key's DS is kept: {both:?}"
    );
    let new: Vec<String> = both.iter().filter(|l| **l != old[0]).cloned().collect();
    let tags: BTreeSet<u16> = both.iter().map(|l| ds_tag(l)).collect();

    let s = dep.start();
    // Both keys are published and sign every RRset.
    let r = dns::udp(s.udp, &signed_query(APEX, RecordType::DNSKEY));
    assert_eq!(dns::answer_data(&r, RecordType::DNSKEY).len(), 2);
    let r = dns::udp(s.udp, &signed_query(APEX, RecordType::CDS));
    assert_eq!(dns::answer_data(&r, RecordType::CDS).len(), 2);
    for (n, t) in [
        ("static.gslb.example.com.", RecordType::A),
        ("www.gslb.example.com.", RecordType::A),
        ("nope.gslb.example.com.", RecordType::A),
    ] {
        let r = dns::udp(s.udp, &signed_query(n, t));
        let section = if r.answers.is_empty() {
            &r.authorities
        } else {
            &r.answers
        };
        let by: BTreeSet<u16> = rrsigs(section)
            .iter()
            .filter(|(_, s)| s.input().type_covered != RecordType::SOA)
            .map(|(_, s)| s.input().key_tag)
            .collect();
        assert_eq!(by, tags, "{n} {t}: signed by {by:?}");
    }
    for (i, anchor) in [&old, &new].into_iter().enumerate() {
        let dir = dep.dir.path().join(format!("unbound-{i}"));
        std::fs::create_dir(&dir).unwrap();
        let u = Unbound::start(bin, &dir, anchor, &[(APEX, s.udp)], false);
        let r = u.secure("static.gslb.example.com.", RecordType::A);
        assert_eq!(dns::answer_data(&r, RecordType::A), ["192.0.2.1"]);
        u.secure("shop.gslb.example.com.", RecordType::A);
        u.secure("static.gslb.example.com.", RecordType::TXT);
    }
    drop(s);

    // The roll's last step: the old key's files removed, a restart.
    let keys = dep.dir.path().join("keys");
    let stem = format!("gslb.example.com+013+{:05}", ds_tag(&old[0]));
    for ext in ["private", "key"] {
        std::fs::remove_file(keys.join(format!("{stem}.{ext}"))).unwrap();
    }
    let out = run_ok(&mut dnssec_cmd("ds", &dep.config(), &[]));
    assert_eq!(lines(&out.stdout), new);
    let s = dep.start();
    let dir = dep.dir.path().join("unbound-new");
    std::fs::create_dir(&dir).unwrap();
    let u = Unbound::start(bin, &dir, &new, &[(APEX, s.udp)], false);
    u.secure("static.gslb.example.com.", RecordType::A);
    drop(u);
    let dir = dep.dir.path().join("unbound-old");
    std::fs::create_dir(&dir).unwrap();
    let u = Unbound::start(bin, &dir, &old, &[(APEX, s.udp)], false);
    let r = u.ask("static.gslb.example.com.", RecordType::A);
    assert_eq!(
        r.metadata.response_code,
        ResponseCode::ServFail,
        "the old DS alone no longer matches a published key"
    );
}

// ---------------------------------------------------------------------------------------
// Directly against gslbd

#[test]
fn signed_replies_carry_signatures_and_compact_denial() {
    let (dep, ds) = signed_example("", &[]);
    let tag = ds_tag(&ds[0]);
    let s = dep.start();
    let ask = |n: &str, t| dns::udp(s.udp, &signed_query(n, t));

    for (n, t) in [
        ("static.gslb.example.com.", RecordType::A),
        (APEX, RecordType::NS),
        (APEX, RecordType::SOA),
        (APEX, RecordType::DNSKEY),
        (APEX, RecordType::CDS),
        (APEX, RecordType::CDNSKEY),
        ("shop.gslb.example.com.", RecordType::A),
        ("www.gslb.example.com.", RecordType::A),
        ("db.gslb.example.com.", RecordType::A),
        ("a.apps.gslb.example.com.", RecordType::A),
    ] {
        let r = ask(n, t);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{n} {t}");
        assert!(r.metadata.authoritative, "{n} {t}");
        assert!(
            r.answers.iter().any(|a| a.record_type() == t),
            "{n} {t}: {:?}",
            dns::rrs(&r.answers)
        );
        assert_fully_signed(&r, APEX, tag, &format!("{n} {t}"));
    }
    // The DNSKEY is the key whose DS `keygen` printed.
    let r = ask(APEX, RecordType::DNSKEY);
    let keys: Vec<&DNSKEY> = r
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].calculate_key_tag().unwrap(), tag);
    assert_eq!(keys[0].flags(), 257);

    // NODATA: the NSEC at the name lists its types; NXDOMAIN: NOERROR, and the NSEC at
    // the name lists only RRSIG NSEC NXNAME. Each names only the name asked (next:
    // `\000.name`), so nothing of the zone can be walked.
    let nxname = RecordType::Unknown(128);
    for (n, t, want_types) in [
        (
            "static.gslb.example.com.",
            RecordType::TXT,
            types(&[
                RecordType::A,
                RecordType::AAAA,
                RecordType::RRSIG,
                RecordType::NSEC,
            ]),
        ),
        (
            "nope.gslb.example.com.",
            RecordType::A,
            types(&[RecordType::RRSIG, RecordType::NSEC, nxname]),
        ),
        (
            "a.b.nope.gslb.example.com.",
            RecordType::MX,
            types(&[RecordType::RRSIG, RecordType::NSEC, nxname]),
        ),
    ] {
        let r = ask(n, t);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{n} {t}");
        assert!(r.metadata.authoritative && r.answers.is_empty(), "{n} {t}");
        let owner = name(n);
        assert_eq!(
            nsecs(&r.authorities),
            [(owner.clone(), successor(n), want_types)],
            "{n} {t}"
        );
        assert_eq!(
            covered(&r.authorities),
            types(&[RecordType::SOA, RecordType::NSEC]),
            "{n} {t}"
        );
        assert_fully_signed(&r, APEX, tag, &format!("{n} {t}"));
    }
}

#[test]
fn do0_replies_are_those_of_an_unsigned_server() {
    let unsigned_dep = example(|c| c, "");
    let (signed_dep, _) = signed_example("", &[]);
    let (plain, signed) = (unsigned_dep.start(), signed_dep.start());
    let cases = [
        ("static.gslb.example.com.", RecordType::A),
        ("static.gslb.example.com.", RecordType::AAAA),
        ("static.gslb.example.com.", RecordType::TXT),
        (APEX, RecordType::SOA),
        (APEX, RecordType::NS),
        (APEX, RecordType::MX),
        (APEX, RecordType::TXT),
        ("shop.gslb.example.com.", RecordType::A),
        ("www.gslb.example.com.", RecordType::A),
        ("www.gslb.example.com.", RecordType::TXT),
        ("db.gslb.example.com.", RecordType::A),
        ("api.gslb.example.com.", RecordType::A),
        ("edge.gslb.example.com.", RecordType::AAAA),
        ("x.apps.gslb.example.com.", RecordType::A),
        ("apps.gslb.example.com.", RecordType::A),
        ("nope.gslb.example.com.", RecordType::A),
        ("host.lab.gslb.example.com.", RecordType::A),
        ("lab.gslb.example.com.", RecordType::DS),
    ];
    // Sorted sections: the order within an RRset may rotate.
    let view = |m: &Message| {
        let sorted = |rs: &[Record]| {
            let mut v = dns::rrs(rs);
            v.sort();
            v
        };
        (
            m.metadata.response_code,
            m.metadata.authoritative,
            m.metadata.truncation,
            sorted(&m.answers),
            sorted(&m.authorities),
            sorted(&m.additionals),
        )
    };
    for (n, t) in cases {
        for edns in [false, true] {
            let q = || {
                if edns {
                    dns::with_edns(query(n, t), 1232)
                } else {
                    query(n, t)
                }
            };
            let (a, b) = (dns::udp(plain.udp, &q()), dns::udp(signed.udp, &q()));
            assert!(
                !all_records(&b).any(is_dnssec),
                "{n} {t} (EDNS {edns}), DO=0: {:?}",
                dns::rrs(&b.authorities)
            );
            assert_eq!(view(&a), view(&b), "{n} {t} (EDNS {edns})");
        }
    }
    // The keys are there with DO=0 too, unsigned.
    let r = dns::udp(
        signed.udp,
        &dns::with_edns(query(APEX, RecordType::DNSKEY), 1232),
    );
    assert_eq!(dns::answer_data(&r, RecordType::DNSKEY).len(), 1);
    assert!(!all_records(&r).any(is_dnssec));
    // NXDOMAIN stays NXDOMAIN without DO.
    let r = dns::udp(signed.udp, &query("nope.gslb.example.com.", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn a_signed_answer_too_big_for_the_payload_is_truncated_and_whole_over_tcp() {
    // Two 190-byte strings: about 440 bytes unsigned, over 512 with its RRSIG.
    let extra = format!(
        "mid IN TXT \"{}\" \"{}\"\n",
        "a".repeat(190),
        "b".repeat(190)
    );
    let (dep, ds) = signed_example(&extra, &[]);
    let s = dep.start();
    let n = "mid.gslb.example.com.";
    let small = |dnssec_ok: bool| {
        let mut m = dns::with_edns(query(n, RecordType::TXT), 512);
        m.edns.as_mut().unwrap().set_dnssec_ok(dnssec_ok);
        m
    };
    let r = dns::udp(s.udp, &small(false));
    assert!(!r.metadata.truncation, "unsigned, it fits 512 bytes");
    assert_eq!(dns::answer_data(&r, RecordType::TXT).len(), 1);
    let r = dns::udp(s.udp, &small(true));
    assert!(r.metadata.truncation, "signed, it does not fit 512 bytes");
    let r = dns::tcp(s.tcp, &small(true));
    assert!(!r.metadata.truncation);
    assert_eq!(dns::answer_data(&r, RecordType::TXT).len(), 1);
    assert_fully_signed(&r, APEX, ds_tag(&ds[0]), "mid TXT over TCP");
    // At 1232 it fits over UDP.
    let r = dns::udp(s.udp, &signed_query(n, RecordType::TXT));
    assert!(!r.metadata.truncation);
    assert_eq!(covered(&r.answers), types(&[RecordType::TXT]));
}

// ---------------------------------------------------------------------------------------
// The CLI

const ZONE_A: &str = "$ORIGIN gslb.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.53\n";
const ZONE_B: &str = "$ORIGIN other.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.53\n";
const ZONE_C: &str = "$ORIGIN third.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.53\n";

fn two_zones() -> Deployment {
    Deployment::new(
        &format!("[server]\nlisten = [\"127.0.0.1:0\"]\n{DNSSEC}"),
        &[("gslb.test.zone", ZONE_A), ("other.test.zone", ZONE_B)],
    )
}

/// Each file of the key folder: (name, content, modification time, mode).
fn key_files(dep: &Deployment) -> Vec<(String, Vec<u8>, SystemTime, u32)> {
    let mut v: Vec<_> = std::fs::read_dir(dep.dir.path().join("keys"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
                meta.modified().unwrap(),
                meta.permissions().mode() & 0o777,
            )
        })
        .collect();
    v.sort();
    v
}

/// Checks a DS line's format: `ZONE IN DS TAG ALG 2 HEX` (SHA-256: 64 hex digits).
fn assert_ds_line(line: &str, zone: &str, alg: &str) {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 7, "{line}");
    assert_eq!(
        [f[0], f[1], f[2], f[4], f[5]],
        [zone, "IN", "DS", alg, "2"],
        "{line}"
    );
    assert!(f[3].parse::<u16>().is_ok(), "{line}");
    assert!(
        f[6].len() == 64 && f[6].chars().all(|c| matches!(c, '0'..='9' | 'A'..='F')),
        "{line}"
    );
}

#[test]
fn keygen_writes_each_key_once_and_ds_prints_every_zone() {
    let dep = two_zones();
    let config = dep.config();
    let first = run_ok(&mut dnssec_cmd("keygen", &config, &[]));
    let ds = lines(&first.stdout);
    assert_eq!(ds.len(), 2, "{ds:?}");
    let zones: BTreeSet<&str> = ds.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(zones, BTreeSet::from(["gslb.test.", "other.test."]));
    for line in &ds {
        let zone = line.split(' ').next().unwrap();
        assert_ds_line(line, zone, "13");
        // ZONE+013+TAG.private (mode 0600) and .key, named after the DS's key tag.
        let stem = format!("{}+013+{:05}", zone.trim_end_matches('.'), ds_tag(line));
        let private = dep.dir.path().join(format!("keys/{stem}.private"));
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", private.display());
        let public =
            std::fs::read_to_string(dep.dir.path().join(format!("keys/{stem}.key"))).unwrap();
        assert!(
            public.contains(&format!("{zone} IN DNSKEY 257 3 13 ")),
            "{public}"
        );
        assert!(String::from_utf8_lossy(&first.stderr).contains(&format!("{stem}.private")));
    }
    let files = key_files(&dep);
    assert_eq!(files.len(), 4);

    // Again: nothing written, nothing changed, the same DS printed.
    std::thread::sleep(Duration::from_millis(20));
    let again = run_ok(&mut dnssec_cmd("keygen", &config, &[]));
    assert_eq!(lines(&again.stdout), ds);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing written"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        key_files(&dep),
        files,
        "a second keygen changed the key folder"
    );
    // `ds` prints the same lines.
    let out = run_ok(&mut dnssec_cmd("ds", &config, &[]));
    assert_eq!(lines(&out.stdout), ds);

    // The DS is the served key's: its tag, and the SHA-256 digest of the served DNSKEY;
    // the CDS is the DS, the CDNSKEY the DNSKEY.
    let s = dep.start();
    for line in &ds {
        let f: Vec<&str> = line.split_whitespace().collect();
        let zone = name(f[0]);
        let r = dns::udp(s.udp, &signed_query(f[0], RecordType::DNSKEY));
        let key = r
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
                _ => None,
            })
            .expect("a DNSKEY");
        assert_eq!(key.calculate_key_tag().unwrap(), ds_tag(line));
        let digest = key.to_digest(&zone, DigestType::SHA256).unwrap();
        assert_eq!(
            data_encoding_upper(digest.as_ref()),
            f[6],
            "{line}: digest of the served DNSKEY"
        );
        let r = dns::udp(s.udp, &signed_query(f[0], RecordType::CDS));
        let cds = r
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::CDS(c)) => Some(c),
                _ => None,
            })
            .expect("a CDS");
        assert_eq!(cds.key_tag(), ds_tag(line));
        assert_eq!(data_encoding_upper(cds.digest()), f[6]);
        let r = dns::udp(s.udp, &signed_query(f[0], RecordType::CDNSKEY));
        let cdnskey = r
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::CDNSKEY(c)) => Some(c),
                _ => None,
            })
            .expect("a CDNSKEY");
        assert_eq!(cdnskey.flags(), 257);
        assert_eq!(
            cdnskey.public_key().unwrap().public_bytes(),
            key.public_key().public_bytes()
        );
    }
    drop(s);

    // A new zone, with `algorithm = "ed25519"` in the config: only it gets a key, of
    // that algorithm; the others are untouched.
    std::fs::write(dep.dir.path().join("zones/third.test.zone"), ZONE_C).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}algorithm = \"ed25519\"\n")).unwrap();
    let third = run_ok(&mut dnssec_cmd("keygen", &config, &[]));
    let written = String::from_utf8_lossy(&third.stderr);
    assert_eq!(written.matches("wrote ").count(), 1, "{written}");
    assert!(written.contains("third.test+015+"), "{written}");
    let all = lines(&third.stdout);
    assert_eq!(all.len(), 3);
    for line in &ds {
        assert!(all.contains(line), "{line} is gone: {all:?}");
    }
    let new = all.iter().find(|l| l.starts_with("third.test.")).unwrap();
    assert_ds_line(new, "third.test.", "15");
    let now = key_files(&dep);
    assert_eq!(now.len(), 6);
    for f in &files {
        assert!(now.contains(f), "{} changed", f.0);
    }
}

fn data_encoding_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Runs `gslbd serve` on `config` and waits (at most 10 s) for it to exit.
fn serve_exit(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(gslbd_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            return (out.status.code(), all_output(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("gslbd serve kept running with a bad key folder");
}

/// `check` and `serve` both exit 2, saying all of `needles`.
fn assert_refused(dep: &Deployment, needles: &[&str], absent: &[&str]) {
    let out = dep.check();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "check: {text}");
    let (code, served) = serve_exit(&dep.config());
    assert_eq!(code, Some(2), "serve: {served}");
    for needle in needles {
        assert!(
            text.contains(needle),
            "check does not say {needle:?}:\n{text}"
        );
        assert!(
            served.contains(needle),
            "serve does not say {needle:?}:\n{served}"
        );
    }
    for needle in absent {
        assert!(!text.contains(needle), "check says {needle:?}:\n{text}");
    }
}

#[test]
fn check_and_serve_refuse_a_missing_or_malformed_key() {
    let dep = two_zones();
    // No keys at all: each zone named, with the command that fixes it; `ds` says so too.
    assert_refused(
        &dep,
        &[
            "zone gslb.test. has no signing key",
            "zone other.test. has no signing key",
            "gslbd dnssec keygen",
            "dnssec.keys",
        ],
        &[],
    );
    let out = dnssec_cmd("ds", &dep.config(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(all_output(&out).contains("gslbd dnssec keygen"));

    let ds = keygen(&dep.config(), &[]);
    assert_eq!(dep.check().status.code(), Some(0));
    let keys = dep.dir.path().join("keys");
    let private = |zone: &str| {
        let line = ds.iter().find(|l| l.starts_with(zone)).unwrap();
        keys.join(format!(
            "{}+013+{:05}.private",
            zone.trim_end_matches('.'),
            ds_tag(line)
        ))
    };
    let (a, b) = (private("gslb.test."), private("other.test."));
    let a_text = std::fs::read(&a).unwrap();

    // One zone's key missing: that zone is named, not the other.
    let b_text = std::fs::read(&b).unwrap();
    std::fs::remove_file(&b).unwrap();
    assert_refused(
        &dep,
        &["zone other.test. has no signing key", "gslbd dnssec keygen"],
        &["zone gslb.test."],
    );
    std::fs::write(&b, &b_text).unwrap();

    // A corrupt PEM, then PEM that is no key: the file is named.
    let a_name = a.display().to_string();
    std::fs::write(
        &a,
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert_refused(&dep, &[&a_name, "malformed"], &[]);
    std::fs::write(
        &a,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert_refused(&dep, &[&a_name, "malformed"], &[]);
    std::fs::write(&a, &a_text).unwrap();

    // The wrong tag, or the wrong algorithm, in the file name: the file is named.
    let tag = ds_tag(ds.iter().find(|l| l.starts_with("gslb.test.")).unwrap());
    for wrong in [
        format!("gslb.test+013+{:05}.private", tag.wrapping_add(1)),
        format!("gslb.test+015+{tag:05}.private"),
    ] {
        let renamed = keys.join(&wrong);
        std::fs::rename(&a, &renamed).unwrap();
        assert_refused(&dep, &[&renamed.display().to_string()], &[]);
        std::fs::rename(&renamed, &a).unwrap();
    }
    assert_eq!(dep.check().status.code(), Some(0), "restored");
}
