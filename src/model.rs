//! The validated, immutable model of `gslb.toml`.
//!
//! Everything here has been checked by [`crate::config::load`]: region names are resolved
//! to [`RegionId`]s that index [`Model::regions`], durations are parsed, paths are made
//! absolute against the config file's folder. The query path indexes `Vec`s by id and never
//! looks a string up in a map.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::geo::Code;

/// Index of a region in [`Model::regions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId(pub u16);

impl RegionId {
    /// The index into [`Model::regions`].
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Index of a dynamic record in [`Model::records`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub u32);

impl RecordId {
    /// The index into [`Model::records`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a key was written in the config file (1-based), for errors found after parsing
/// (a dynamic name that clashes with zone data is only known once zones are loaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Model {
    /// The config file it was read from.
    pub file: PathBuf,
    /// `[server]`.
    pub server: Server,
    /// `[defaults]`.
    pub defaults: Defaults,
    /// `[regions.*]`, in file order; [`RegionId`] indexes this.
    pub regions: Vec<Region>,
    /// `[records.*]`, in file order; [`RecordId`] indexes this.
    pub records: Vec<DynRecord>,
    /// `[latency]`; empty when absent.
    pub latency: LatencyTable,
    /// `[cluster]`: the other instances serving the same zones, when configured.
    pub cluster: Option<Cluster>,
    /// `[dnssec]`: sign every zone online, when configured.
    pub dnssec: Option<Dnssec>,
}

/// `[dnssec]`: where the signing keys are and how signatures are made.
#[derive(Debug, Clone, PartialEq)]
pub struct Dnssec {
    /// The folder of key files (`dnssec.keys`), absolute.
    pub keys: std::path::PathBuf,
    /// The algorithm `gslbd dnssec keygen` uses for new keys.
    pub algorithm: crate::dnssec::Algorithm,
    /// How long a signature is valid from its inception (`dnssec.validity`).
    pub validity: Duration,
    /// Where `[dnssec]` is written, for errors about its keys.
    pub pos: Pos,
}

/// `[cluster]`: the peers whose probe views vote on each target's health.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Each peer's admin API base URL (`http://host:port`), as written, without a trailing `/`.
    pub peers: Vec<String>,
    /// How often each peer's view is pulled.
    pub interval: Duration,
    /// Down-votes (this instance's included) that take a probe target down.
    pub quorum: usize,
}

impl Region {
    /// True for a region answered by name (`cname`), which serves every family.
    pub fn is_cname(&self) -> bool {
        self.cname.is_some()
    }
}

impl Model {
    /// The region with this id.
    pub fn region(&self, id: RegionId) -> &Region {
        &self.regions[id.index()]
    }

    /// The id of the region called `name`.
    pub fn region_id(&self, name: &str) -> Option<RegionId> {
        self.regions
            .iter()
            .position(|r| r.name == name)
            .map(|i| RegionId(i as u16))
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// DNS listen addresses (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// Admin HTTP API address, when enabled.
    pub admin: Option<SocketAddr>,
    /// Bearer token required by mutating admin calls, when set.
    pub admin_token: Option<String>,
    /// Folder of `*.zone` files (absolute).
    pub zones: PathBuf,
    /// GeoIP database and how to load it, when `server.geoip` is configured.
    pub geoip: Option<GeoIp>,
    /// Response rate limiting, when configured.
    pub rate_limit: Option<RateLimit>,
    /// TCP limits.
    pub tcp: TcpLimits,
    /// UDP worker threads (and SO_REUSEPORT sockets) per listen address; `None`: one per
    /// core.
    pub workers: Option<usize>,
    /// Share of queries written to the query log (`server.query_log.sample`); `None`: off.
    pub query_log: Option<f64>,
    /// Source address of this instance's health probes (`server.probe_source`).
    pub probe_source: Option<IpAddr>,
    /// Where queries and responses are logged with dnstap (`server.dnstap`), when set.
    pub dnstap: Option<Dnstap>,
    /// Where drains are kept across restarts (`server.state_file`, absolute), when set.
    pub state_file: Option<PathBuf>,
    /// How long a reload may take to read and check its files (`server.reload_timeout`)
    /// before it fails and the running config stays.
    pub reload_timeout: Duration,
}

/// `server.reload_timeout` when not given: far above what a large config takes, well
/// below "forever".
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// `server.dnstap`: a Frame Streams connection carrying dnstap messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Dnstap {
    /// The collector.
    pub dest: DnstapDest,
    /// Share of queries logged, 0 < sample <= 1.
    pub sample: f64,
}

/// Where `server.dnstap` connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnstapDest {
    /// A Unix stream socket (`socket`, absolute).
    Unix(PathBuf),
    /// A TCP address (`tcp`).
    Tcp(SocketAddr),
}

impl std::fmt::Display for DnstapDest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnstapDest::Unix(p) => write!(f, "unix:{}", p.display()),
            DnstapDest::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// `server.geoip` and `server.geoip_mmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoIp {
    /// The database file (absolute).
    pub path: PathBuf,
    /// Map the file instead of reading it into memory (`server.geoip_mmap`, default
    /// false): no private copy, but while the server runs the file must be replaced
    /// by rename, never overwritten in place.
    pub mmap: bool,
}

/// `server.rate_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Responses per second allowed per client network.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 never.
    pub slip: u32,
}

/// `server.tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open TCP connections allowed at once.
    pub max_connections: u32,
    /// Open TCP connections allowed at once from one client network (/24, /56).
    pub max_per_client: u32,
    /// Idle time after which a TCP connection is closed.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 1024,
            max_per_client: 64,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// `[defaults]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// TTL of dynamic answers, seconds.
    pub ttl: u32,
    /// TTL cap of answers that are not the client's first choice because it is down.
    pub fallback_ttl: u32,
    /// Probe timing used where a region's probe does not say.
    pub probe: ProbeTiming,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ttl: 30,
            fallback_ttl: 10,
            probe: ProbeTiming::default(),
        }
    }
}

/// How often and how patiently a target is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    /// Time between probes of one target.
    pub interval: Duration,
    /// Time after which one probe counts as failed.
    pub timeout: Duration,
    /// Consecutive successes that bring a down target up.
    pub rise: u32,
    /// Consecutive failures that take an up target down.
    pub fall: u32,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

/// `[regions.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// The region's name as written.
    pub name: String,
    /// IPv4 VIPs, in config order.
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 VIPs, in config order.
    pub v6: Vec<Ipv6Addr>,
    /// Instead of addresses: the name the region is answered with, as a CNAME (cloud load
    /// balancers, CDNs); absolute, as written.
    pub cname: Option<hickory_proto::rr::Name>,
    /// Coordinates for the latency policy's distance estimate.
    pub location: Option<Coords>,
    /// Health probe; `None` means always up.
    pub probe: Option<Probe>,
}

/// A point on Earth, degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coords {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

/// A region's health probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// What to probe.
    pub target: ProbeTarget,
    /// Timing, with defaults filled in.
    pub timing: ProbeTiming,
    /// Addresses that must be up for the region to be up (per-address probes).
    pub min_healthy: u32,
}

/// What a probe connects to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeTarget {
    /// An HTTP(S) GET.
    Http {
        /// The URL; may contain `{address}`, probed once per region address.
        url: String,
        /// Statuses that count as up.
        expect_status: Vec<u16>,
        /// A substring the body (first 64 KiB) must contain.
        expect_body: Option<String>,
        /// `Host` header to send (for probing a VIP by address).
        host: Option<String>,
        /// Accept any TLS certificate.
        insecure: bool,
    },
    /// A TCP connect to `host:port`; may contain `{address}`.
    Tcp {
        /// `addr:port`.
        addr: String,
    },
}

/// What to do when every candidate region is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenAllDown {
    /// Fail open: answer as if all were up (the ranking's first).
    #[default]
    First,
    /// Every candidate's addresses.
    All,
    /// NOERROR with no answer.
    Nodata,
}

/// A dynamic name, `[records."NAME"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DynRecord {
    /// Lower-case, fully qualified, with the trailing dot.
    pub name: String,
    /// Where `[records."NAME"]` was written.
    pub pos: Pos,
    /// The policy and its parameters.
    pub policy: Policy,
    /// TTL of answers.
    pub ttl: u32,
    /// TTL cap of answers from a region other than the ranking's first because that one
    /// is down or drained (`fallback_ttl`), so resolvers come back soon after it recovers.
    pub fallback_ttl: u32,
    /// Candidate regions in order (never empty).
    pub regions: Vec<RegionId>,
    /// Behaviour when every candidate is down.
    pub when_all_down: WhenAllDown,
}

/// The policy of a dynamic record.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// By client location.
    Geo(Box<GeoRules>),
    /// Lowest estimated RTT.
    Latency,
    /// Shares by weight.
    Weighted {
        /// Weight per candidate region, parallel to [`DynRecord::regions`].
        weights: Vec<u32>,
        /// Same client subnet, same region while the healthy set is unchanged.
        sticky: bool,
    },
    /// The `regions` order.
    Failover,
}

impl Policy {
    /// The name used in the config.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Geo(_) => "geo",
            Policy::Latency => "latency",
            Policy::Weighted { .. } => "weighted",
            Policy::Failover => "failover",
        }
    }
}

/// `[records."NAME".geo]`: ordered region lists by client location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GeoRules {
    /// By continent code (`EU`).
    pub continent: BTreeMap<String, Vec<RegionId>>,
    /// By ISO country code (`JP`).
    pub country: BTreeMap<String, Vec<RegionId>>,
    /// By `CC-SUB` subdivision code (`US-CA`).
    pub subdivision: BTreeMap<String, Vec<RegionId>>,
    /// By client network; longest prefix wins.
    pub cidr: Vec<(IpNet, Vec<RegionId>)>,
    /// When nothing else matches.
    pub default: Option<Vec<RegionId>>,
    /// The rules compiled for the query path ([`GeoRules::compile`]).
    pub compiled: Compiled,
}

/// [`GeoRules`] compiled for the query path: codes as inline [`Code`]s in sorted tables,
/// and every rule's whole ranking (its list, then the record's other candidates)
/// prebuilt, so ranking a client is a few comparisons and one copy. Derived data: it
/// takes no part in comparing rules.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// `(code, index into orders)`, sorted by code.
    pub subdivision: Vec<(Code, u16)>,
    /// As `subdivision`, by country.
    pub country: Vec<(Code, u16)>,
    /// As `subdivision`, by continent.
    pub continent: Vec<(Code, u16)>,
    /// Index into `orders` per `cidr` rule, in the same order.
    pub cidr: Vec<u16>,
    /// The ranking when no rule matches: `default` then the rest, or the record's order.
    pub fallback: u16,
    /// Whole rankings.
    pub orders: Vec<Box<[RegionId]>>,
}

impl PartialEq for Compiled {
    fn eq(&self, _: &Compiled) -> bool {
        true
    }
}

impl Eq for Compiled {}

/// Consistent with `eq`: derived data adds nothing to a rule set's hash.
impl std::hash::Hash for Compiled {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl Compiled {
    /// The prebuilt ranking number `i`.
    pub fn order(&self, i: u16) -> &[RegionId] {
        self.orders.get(usize::from(i)).map_or(&[], |o| &o[..])
    }
}

impl GeoRules {
    /// Builds [`GeoRules::compiled`] for a record whose candidates are `regions`. Rules
    /// are only built by the config loader, which calls this once they are complete.
    pub fn compile(&mut self, regions: &[RegionId]) {
        let mut c = Compiled::default();
        let mut add = |list: &[RegionId]| {
            let mut order = list.to_vec();
            order.extend(regions.iter().filter(|r| !list.contains(r)));
            c.orders.push(order.into_boxed_slice());
            u16::try_from(c.orders.len() - 1).unwrap_or(u16::MAX)
        };
        let mut table = |map: &BTreeMap<String, Vec<RegionId>>| {
            let mut t: Vec<(Code, u16)> = map
                .iter()
                .filter_map(|(code, list)| Some((Code::new(code)?, add(list))))
                .collect();
            t.sort_by_key(|e| e.0);
            t
        };
        let subdivision = table(&self.subdivision);
        let country = table(&self.country);
        let continent = table(&self.continent);
        let cidr = self.cidr.iter().map(|(_, list)| add(list)).collect();
        let fallback = add(self.default.as_deref().unwrap_or(regions));
        c.subdivision = subdivision;
        c.country = country;
        c.continent = continent;
        c.cidr = cidr;
        c.fallback = fallback;
        self.compiled = c;
    }
}

/// `[latency]`: measured RTTs in milliseconds from client networks to regions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyTable {
    /// By continent code.
    pub continent: BTreeMap<String, Vec<(RegionId, f64)>>,
    /// By ISO country code.
    pub country: BTreeMap<String, Vec<(RegionId, f64)>>,
    /// By client network; longest prefix wins.
    pub cidr: Vec<(IpNet, Vec<(RegionId, f64)>)>,
}
