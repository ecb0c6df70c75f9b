//! The deployments the fuzz targets run against, built once per process.
//!
//! - [`request`]: a config and two zones with every kind of data gslbd serves (static
//!   records, CNAME chains and loops, wildcards, a delegation with glue, dynamic names with
//!   every policy, a `*.pool` wildcard dynamic name, answers too big for 512 bytes) and a
//!   GeoIP database built in memory with `gslbd::geoip_build::build_bytes`, in four health
//!   states, each also with response rate limiting. The datagram's ID picks the state and
//!   the source address (see [`Request::pick`]), so every input is still a plain DNS
//!   message and the seeds are real queries.
//! - [`zone_dir`]: a zones folder with files for `$INCLUDE` to find, including a
//!   symlink that escapes the folder, so the fuzzer exercises `$INCLUDE` and its
//!   confinement without ever reaching a file we did not put there.
//!
//! Files are written only here, at start-up, under `fuzz/target/fixtures/` (ignored by
//! git); nothing a fuzz input contains can make the process write a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use gslbd::Shared;
use gslbd::geo::GeoDb;
use gslbd::health::{Health, RegionHealth};
use gslbd::model::RateLimit;
use gslbd::snapshot::Snapshot;

/// Regions with and without IPv6 and locations, one with more addresses than fit 512
/// bytes; every policy; `when_all_down` in all three forms; a latency table; a dynamic
/// name in the second zone and a wildcard dynamic name.
pub const CONFIG: &str = r#"[server]
listen = ["127.0.0.1:0"]
zones = "zones"
geoip = "geo.mmdb"
query_log = { sample = 1.0 }

[defaults]
ttl = 30

[regions.us-east]
addresses = ["192.0.2.10", "192.0.2.11", "2001:db8:10::1"]
location = { lat = 39.04, lon = -77.49 }

[regions.eu-west]
addresses = ["192.0.2.20", "192.0.2.21", "2001:db8:20::1"]
location = { lat = 53.34, lon = -6.26 }

[regions.ap-south]
addresses = ["192.0.2.30", "2001:db8:30::1"]
location = { lat = 19.08, lon = 72.88 }

[regions.v6-only]
addresses = ["2001:db8:60::1", "2001:db8:60::2"]

[regions.big]
addresses = [
  "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5",
  "198.51.100.6", "198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.100.10",
  "198.51.100.11", "198.51.100.12", "198.51.100.13", "198.51.100.14", "198.51.100.15",
  "198.51.100.16", "198.51.100.17", "198.51.100.18", "198.51.100.19", "198.51.100.20",
  "198.51.100.21", "198.51.100.22", "198.51.100.23", "198.51.100.24", "198.51.100.25",
  "198.51.100.26", "198.51.100.27", "198.51.100.28", "198.51.100.29", "198.51.100.30",
  "198.51.100.31", "198.51.100.32", "198.51.100.33", "198.51.100.34", "198.51.100.35",
  "198.51.100.36", "198.51.100.37", "198.51.100.38", "198.51.100.39", "198.51.100.40",
  "2001:db8:b::1", "2001:db8:b::2", "2001:db8:b::3", "2001:db8:b::4", "2001:db8:b::5",
  "2001:db8:b::6", "2001:db8:b::7", "2001:db8:b::8", "2001:db8:b::9", "2001:db8:b::a",
  "2001:db8:b::b", "2001:db8:b::c", "2001:db8:b::d", "2001:db8:b::e", "2001:db8:b::f",
  "2001:db8:b::10", "2001:db8:b::11", "2001:db8:b::12", "2001:db8:b::13", "2001:db8:b::14",
  "2001:db8:b::15", "2001:db8:b::16", "2001:db8:b::17", "2001:db8:b::18", "2001:db8:b::19",
  "2001:db8:b::1a", "2001:db8:b::1b", "2001:db8:b::1c", "2001:db8:b::1d", "2001:db8:b::1e",
]
location = { lat = -33.87, lon = 151.21 }

[records."www.gslb.test"]
policy = "geo"
ttl = 20
regions = ["us-east", "eu-west", "ap-south", "v6-only"]

[records."www.gslb.test".geo]
continent.EU = ["eu-west", "us-east"]
continent.AS = ["ap-south", "eu-west"]
country.CN = ["us-east", "ap-south"]
subdivision."US-CA" = ["v6-only", "us-east"]
cidr."203.0.113.0/24" = ["eu-west"]
cidr."81.2.69.128/25" = ["ap-south"]
cidr."2001:db8:2::/48" = ["ap-south", "eu-west"]
default = ["us-east", "eu-west", "ap-south"]

[records."api.gslb.test"]
policy = "weighted"
weights = { us-east = 3, eu-west = 1, ap-south = 0 }
sticky = true

[records."rnd.gslb.test"]
policy = "weighted"
weights = { us-east = 1, eu-west = 1, big = 1 }
when_all_down = "all"

[records."edge.gslb.test"]
policy = "latency"
regions = ["us-east", "eu-west", "ap-south", "v6-only", "big"]

[records."db.gslb.test"]
policy = "failover"
regions = ["eu-west", "us-east"]
when_all_down = "nodata"

[records."big.gslb.test"]
policy = "failover"
regions = ["big", "us-east"]
ttl = 0

[records."v6.gslb.test"]
policy = "failover"
regions = ["v6-only", "us-east"]
when_all_down = "all"

[records."*.pool.gslb.test"]
policy = "geo"
regions = ["ap-south", "eu-west", "big"]

[records."*.pool.gslb.test".geo]
continent.EU = ["eu-west"]
default = ["ap-south"]

[records."www.second.test"]
policy = "latency"

[latency]
continent.EU = { eu-west = 20, us-east = 90, ap-south = 140 }
country.JP = { ap-south = 70.5, us-east = 160 }
cidr."198.51.100.0/24" = { us-east = 5 }
cidr."2001:218::/32" = { big = 1 }
"#;

/// The main zone: every kind of static data.
pub const ZONE: &str = r#"$ORIGIN gslb.test.
$TTL 300
@        IN SOA ns1.gslb.test. hostmaster.gslb.test. ( 2024010101 3600 600 86400 60 )
@        IN NS  ns1
@        IN NS  ns2.gslb.test.
@        IN MX  10 mail
@        IN TXT "apex"
ns1      IN A   127.0.0.1
ns1      IN AAAA ::1
ns2      IN AAAA ::2
static   IN A   192.0.2.1
static   IN AAAA 2001:db8::1
static   IN TXT "hello"
static   IN CAA 0 issue "ca.example.net"
multi    IN A   192.0.2.2
multi    IN A   192.0.2.3
multi    IN A   192.0.2.4
alias    IN CNAME static
chain    IN CNAME alias
c1       IN CNAME c2
c2       IN CNAME c3
c3       IN CNAME c4
c4       IN CNAME c5
c5       IN CNAME c6
c6       IN CNAME c7
c7       IN CNAME c8
c8       IN CNAME c9
c9       IN CNAME c10
c10      IN CNAME c11
c11      IN CNAME c12
c12      IN CNAME c13
c13      IN CNAME c14
c14      IN CNAME static
towww    IN CNAME www
topool   IN CNAME x.pool
tobig    IN CNAME big
tosecond IN CNAME www.second.test.
away     IN CNAME www.example.net.
loop1    IN CNAME loop2
loop2    IN CNAME loop1
self     IN CNAME self
dangling IN CNAME nothing
host.ent IN A   192.0.2.5
*.wild   IN A   192.0.2.7
*.wild   IN TXT "wildcard"
exists.wild IN TXT "explicit"
*.cwild  IN CNAME static
www      IN TXT "dynamic name with a static TXT"
sub      IN NS  ns.sub
sub      IN NS  ns.elsewhere.example.
ns.sub   IN A   192.0.2.53
ns.sub   IN AAAA 2001:db8::53
mx       IN MX  10 mail
mx       IN MX  20 ns.sub
mail     IN A   192.0.2.25
mail     IN AAAA 2001:db8::25
_sip._tcp IN SRV 10 5 5060 mail
srv      IN SRV 0 5 443 static
ptr      IN PTR static
hinfo    IN HINFO "PC" "Linux"
sshfp    IN SSHFP 1 1 dd465c09cfa51fb45020cc83316fff21b9ec74ac
naptr    IN NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .
BIG
HUGE
MANY
"#;

/// A second zone, for CNAMEs across zones and a dynamic name outside the first.
pub const ZONE2: &str = r#"$ORIGIN second.test.
$TTL 60
@        IN SOA ns1.gslb.test. hostmaster.second.test. 1 3600 600 86400 30
@        IN NS  ns1.gslb.test.
static   IN A   198.51.100.200
back     IN CNAME chain.gslb.test.
"#;

/// The GeoIP rows: every continent, IPv4 and IPv6, with and without subdivision and
/// coordinates, and the documentation ranges.
pub const GEO_CSV: &str = "network,continent,country,subdivision,lat,lon
81.2.0.0/16,EU,GB,,,
81.2.69.0/24,EU,GB,GB-ENG,51.51,-0.09
1.0.16.0/24,AS,JP,JP-13,35.69,139.69
175.16.199.0/24,AS,CN,,,
8.8.8.0/24,NA,US,US-CA,37.39,-122.08
103.1.1.0/24,OC,AU,AU-NSW,-33.87,151.21
200.160.0.0/20,SA,BR,,-23.55,-46.63
41.0.0.0/8,AF,ZA,,,
192.0.2.0/24,NA,US,US-VA,39.04,-77.49
198.51.100.0/24,EU,DE,DE-HE,50.11,8.68
203.0.113.0/24,EU,FR,,,
2001:218::/32,AS,JP,,35.69,139.69
2a02:d3c0::/29,EU,GB,,,
2001:db8::/32,NA,US,US-CA,37.39,-122.08
";

/// Source addresses a datagram may come from: located and not, IPv4 and IPv6, inside
/// and outside `cidr` rules, loopback, an IPv4-mapped IPv6 address.
pub const SOURCES: [&str; 16] = [
    "127.0.0.1:53000",
    "81.2.69.7:5300",
    "81.2.69.200:5300",
    "1.0.16.5:5300",
    "175.16.199.1:5300",
    "8.8.8.8:5300",
    "103.1.1.1:5300",
    "200.160.1.1:5300",
    "41.1.2.3:5300",
    "203.0.113.9:5300",
    "10.0.0.1:5300",
    "[2001:218::1]:5300",
    "[2a02:d3c0::5]:5300",
    "[2001:db8:2::1]:5300",
    "[::1]:5300",
    "[::ffff:81.2.69.1]:5300",
];

/// The `request` target's state: one snapshot per health state, and each again with
/// response rate limiting.
pub struct Request {
    /// Snapshots sharing config, zones and GeoIP, with different health: the four of
    /// [`health_states`], then the same four with a rate limiter of their own.
    pub states: Vec<Shared>,
    /// [`SOURCES`], parsed.
    pub sources: Vec<SocketAddr>,
}

/// What the datagram's ID picked.
pub struct Pick<'a> {
    /// The snapshot to answer from.
    pub state: &'a Shared,
    /// Index of `state` in [`Request::states`].
    pub index: usize,
    /// The source address.
    pub src: SocketAddr,
    /// `state` has a rate limiter ([`RATE_LIMIT`]): a reply may be dropped.
    pub rate_limited: bool,
}

/// The rate limit of the rate-limited states: low enough that the fuzzer sees drops and
/// slips (TC=1 replies) within a second.
pub const RATE_LIMIT: RateLimit = RateLimit {
    responses_per_second: 5,
    slip: 2,
};

impl Request {
    /// The snapshot and source address for a datagram, from its ID (bytes 0-1): bits 0-1
    /// pick the health state, bits 2-5 the source, and bits 6 and 7 both set the
    /// rate-limited copy of the state. Shorter datagrams get the first of each.
    pub fn pick(&self, datagram: &[u8]) -> Pick<'_> {
        let id = match datagram {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rate_limited = id & 0xC0 == 0xC0;
        let index = (id & 3) + if rate_limited { 4 } else { 0 };
        Pick {
            state: &self.states[index],
            index,
            src: self.sources[(id >> 2) & 15],
            rate_limited,
        }
    }
}

/// The zone text with the large RRsets filled in.
pub fn zone_text() -> String {
    let txt = |owner: &str, n: usize, len: usize| -> String {
        (0..n)
            .map(|i| {
                let c = char::from(b'a' + i as u8);
                format!("{owner} IN TXT \"{}\"\n", c.to_string().repeat(len))
            })
            .collect()
    };
    // 60 A records at one static name: over 512 bytes, under 1232.
    let many: String = (1..=60)
        .map(|i| format!("many IN A 203.0.113.{i}\n"))
        .collect();
    ZONE.replace("BIG\n", &txt("big-txt", 4, 200))
        .replace("HUGE\n", &txt("huge", 8, 250))
        .replace("MANY\n", &many)
}

/// The GeoIP database of [`GEO_CSV`], as MaxMind DB bytes.
pub fn geo_bytes() -> Vec<u8> {
    gslbd::geoip_build::build_bytes(GEO_CSV, Path::new("geo.csv"), 1_767_225_600)
        .unwrap_or_else(|e| panic!("fixture GeoIP CSV: {e}"))
}

/// `fuzz/target/fixtures/NAME`, created empty-or-existing.
pub fn fixture_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("fixtures")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Writes `text` to `path` so that a concurrent reader sees the old or the new content
/// (parallel fuzzing jobs share the fixtures).
fn write_atomic(path: &Path, text: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The snapshot of [`CONFIG`], the zones and the GeoIP DB, loaded the way `gslbd serve`
/// loads a deployment (from a folder written for the purpose, then removed).
pub fn load_snapshot() -> Snapshot {
    let dir = fixture_dir(&format!("request-{}", std::process::id()));
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    std::fs::write(dir.join("gslb.toml"), CONFIG).unwrap();
    std::fs::write(zones.join("gslb.test.zone"), zone_text()).unwrap();
    std::fs::write(zones.join("second.test.zone"), ZONE2).unwrap();
    std::fs::write(dir.join("geo.mmdb"), geo_bytes()).unwrap();
    let snap = Snapshot::load(&dir.join("gslb.toml"));
    // The GeoIP DB is read into memory: nothing refers to the folder any more.
    let _ = std::fs::remove_dir_all(&dir);
    snap.unwrap_or_else(|e| panic!("fixture deployment does not load:\n{e}"))
}

/// Four health states, by region order in [`CONFIG`] (us-east, eu-west, ap-south, v6-only,
/// big): all up; eu-west down, us-east drained, ap-south slow; everything down; some
/// addresses down (per-address probes).
pub fn health_states() -> Vec<Health> {
    let up = RegionHealth::default;
    let down = || RegionHealth {
        up: false,
        ..RegionHealth::default()
    };
    let addrs = |v: Vec<bool>| RegionHealth {
        addr_up: v,
        ..RegionHealth::default()
    };
    vec![
        Health::from_regions(vec![up(), up(), up(), up(), up()]),
        Health::from_regions(vec![
            RegionHealth {
                drained: true,
                ..up()
            },
            down(),
            RegionHealth {
                rtt_penalty_ms: 500.0,
                ..up()
            },
            up(),
            up(),
        ]),
        Health::from_regions(vec![down(), down(), down(), down(), down()]),
        Health::from_regions(vec![
            addrs(vec![false, true, false]),
            addrs(vec![false, false, true]),
            up(),
            addrs(vec![false, false]),
            addrs((0..70).map(|i| i % 3 != 0).collect()),
        ]),
    ]
}

/// The `request` target's state, built on first use.
pub fn request() -> &'static Request {
    static STATE: OnceLock<Request> = OnceLock::new();
    STATE.get_or_init(|| {
        let base = load_snapshot();
        assert!(
            base.model.server.rate_limit.is_none(),
            "the fixture config sets no rate limit"
        );
        let mut states = Vec::new();
        for limited in [false, true] {
            for h in health_states() {
                let mut s = base.clone();
                s.health = Arc::new(h);
                if limited {
                    let mut model = (*s.model).clone();
                    model.server.rate_limit = Some(RATE_LIMIT);
                    s.model = Arc::new(model);
                }
                states.push(s.into_shared());
            }
        }
        let sources = SOURCES.iter().map(|s| s.parse().unwrap()).collect();
        Request { states, sources }
    })
}

/// The GeoIP DB of [`GEO_CSV`], opened once (for targets that build their own snapshots).
pub fn geo() -> Arc<GeoDb> {
    static GEO: OnceLock<Arc<GeoDb>> = OnceLock::new();
    GEO.get_or_init(|| {
        let path = fixture_dir("geo").join(format!("geo-{}.mmdb", std::process::id()));
        std::fs::write(&path, geo_bytes()).unwrap();
        let db = GeoDb::open(&path);
        let _ = std::fs::remove_file(&path);
        Arc::new(db.unwrap_or_else(|e| panic!("fixture GeoIP DB: {e}")))
    })
    .clone()
}

/// Files `$INCLUDE` may find next to the fuzzed zone file.
pub const INCLUDES: [(&str, &str); 6] = [
    ("a.inc", "www IN A 192.0.2.1\nmail IN MX 10 www\n"),
    ("nested.inc", "$INCLUDE a.inc sub\nnested IN TXT \"n\"\n"),
    ("self.inc", "$INCLUDE self.inc\n"),
    ("bad.inc", "bad IN A not-an-address\n"),
    ("origin.inc", "$ORIGIN elsewhere.\nx IN A 192.0.2.2\n"),
    (
        "fuzz.test.zone",
        "@ IN SOA ns1 host 1 2 3 4 5\n@ IN NS ns1\nns1 IN A 192.0.2.53\n",
    ),
];

/// Written outside the zones folder; `zones/escape.inc` is a symlink to it. Including it
/// would be a confinement bug, and it does not parse, so any such inclusion shows up as
/// an error naming this file.
pub const OUTSIDE: &str = "outside-the-zones-folder IN A 999.0.0.1\n";

/// The zones folder of the `zone` target: [`INCLUDES`], a symlink out of the folder, and
/// [`OUTSIDE`] next to the folder. Returns the canonical path of the folder.
pub fn zone_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = fixture_dir("zone");
        let zones = root.join("zones");
        std::fs::create_dir_all(&zones).unwrap();
        for (name, text) in INCLUDES {
            write_atomic(&zones.join(name), text.as_bytes());
        }
        write_atomic(&root.join("outside.inc"), OUTSIDE.as_bytes());
        let link = zones.join("escape.inc");
        if std::fs::symlink_metadata(&link).is_err() {
            #[cfg(unix)]
            let _ = std::os::unix::fs::symlink("../outside.inc", &link);
        }
        zones.canonicalize().unwrap()
    })
}
