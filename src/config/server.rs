//! Validates `[server]` and `[defaults]`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::Ctx;
use super::raw::{RawCluster, RawDefaults, RawDnssec, RawDnstap, RawServer, Str};
use crate::model::{
    Cluster, DEFAULT_RELOAD_TIMEOUT, Defaults, Dnssec, Dnstap, DnstapDest, GeoIp, ProbeTiming,
    RateLimit, Server, TcpLimits,
};

/// The DNS listen address when `server.listen` is omitted.
const DEFAULT_LISTEN: &str = "127.0.0.1:5353";
/// The zones folder when `server.zones` is omitted.
const DEFAULT_ZONES: &str = "zones";

/// `[server]`; relative paths are resolved against `base`, the config file's folder.
pub(crate) fn server(cx: &mut Ctx<'_>, raw: &RawServer, base: &Path) -> Server {
    let listen = match &raw.listen {
        None => vec![DEFAULT_LISTEN.parse().expect("valid default")],
        Some(list) => {
            if list.get_ref().is_empty() {
                cx.error(
                    &list.span(),
                    "server.listen",
                    "must list at least one address",
                );
            }
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for item in list.get_ref() {
                let Some(addr) = socket_addr(cx, item, "server.listen") else {
                    continue;
                };
                if addrs.contains(&addr) {
                    let msg = format!("address {addr} is listed twice");
                    cx.error(&item.span(), "server.listen", msg);
                } else {
                    addrs.push(addr);
                }
            }
            addrs
        }
    };
    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| socket_addr(cx, a, "server.admin"));
    let admin_token = raw.admin_token.as_ref().map(|t| {
        if t.get_ref().trim().is_empty() {
            let msg = "must not be empty (omit the key to allow mutating calls from loopback only)";
            cx.error(&t.span(), "server.admin_token", msg);
        }
        t.get_ref().clone()
    });
    let zones = match &raw.zones {
        Some(z) => path(cx, z, "server.zones", base),
        None => absolute(base.join(DEFAULT_ZONES)),
    };
    // Without `geoip` the key has nothing to act on and is ignored, like `admin_token`
    // without `admin`.
    let mmap = raw.geoip_mmap.as_ref().is_some_and(|m| *m.get_ref());
    let geoip = raw.geoip.as_ref().map(|g| GeoIp {
        path: path(cx, g, "server.geoip", base),
        mmap,
    });
    let rate_limit = raw.rate_limit.as_ref().map(|r| {
        let key = "server.rate_limit.responses_per_second";
        let responses_per_second = cx.int(&r.responses_per_second, key, 1..=1_000_000, "");
        // BIND's range for `slip`: beyond 10 truncation stops helping legitimate clients.
        let slip = r.slip.as_ref().map_or(Some(2), |s| {
            cx.int(
                s,
                "server.rate_limit.slip",
                0..=10,
                "0 never sends truncated answers",
            )
        });
        RateLimit {
            responses_per_second: responses_per_second.unwrap_or(1),
            slip: slip.unwrap_or(2),
        }
    });
    let mut tcp = TcpLimits::default();
    if let Some(m) = &raw.tcp.max_connections {
        let max = cx.int(m, "server.tcp.max_connections", 1..=1_000_000, "");
        tcp.max_connections = max.unwrap_or(tcp.max_connections);
    }
    if let Some(m) = &raw.tcp.max_per_client {
        let key = "server.tcp.max_per_client";
        let max = cx.int(m, key, 1..=1_000_000, "connections from one /24 or /56");
        tcp.max_per_client = max.unwrap_or(tcp.max_per_client);
    }
    if let Some(d) = &raw.tcp.idle_timeout {
        let idle = cx.duration(d, "server.tcp.idle_timeout");
        tcp.idle_timeout = idle.unwrap_or(tcp.idle_timeout);
    }
    let query_log = raw.query_log.as_ref().and_then(|q| {
        let v = *q.sample.get_ref();
        if v.is_finite() && v > 0.0 && v <= 1.0 {
            Some(v)
        } else {
            let msg = format!(
                "{v} is not a share of queries: expected a number in (0, 1], e.g. 0.01 for 1 %"
            );
            cx.error(&q.sample.span(), "server.query_log.sample", msg);
            None
        }
    });
    let workers = raw.workers.as_ref().and_then(|w| {
        cx.int(
            w,
            "server.workers",
            1..=1024,
            "UDP worker threads per listen address",
        )
    });
    let probe_source = raw.probe_source.as_ref().and_then(|a| {
        let parsed = a.get_ref().parse::<IpAddr>();
        if parsed.is_err() {
            let msg = format!(
                "\"{}\" is not an IP address (the source address of this instance's probes, e.g. \"203.0.113.53\")",
                a.get_ref()
            );
            cx.error(&a.span(), "server.probe_source", msg);
        }
        parsed.ok()
    });
    let state_file = raw
        .state_file
        .as_ref()
        .map(|f| path(cx, f, "server.state_file", base));
    let dnstap = raw.dnstap.as_ref().and_then(|d| dnstap(cx, d, base));
    let reload_timeout = (raw.reload_timeout.as_ref())
        .and_then(|d| cx.duration(d, "server.reload_timeout"))
        .unwrap_or(DEFAULT_RELOAD_TIMEOUT);
    Server {
        reload_timeout,
        workers,
        probe_source,
        dnstap,
        state_file,
        listen,
        admin,
        admin_token,
        zones,
        geoip,
        rate_limit,
        tcp,
        query_log,
    }
}

/// `server.dnstap`: exactly one destination (`socket`, a Unix socket path, or `tcp`, an
/// ip:port address) and the share of queries logged.
fn dnstap(cx: &mut Ctx<'_>, raw: &toml::Spanned<RawDnstap>, base: &Path) -> Option<Dnstap> {
    let span = raw.span();
    let raw = raw.get_ref();
    let dest = match (&raw.socket, &raw.tcp) {
        (Some(s), None) => {
            let p = path(cx, s, "server.dnstap.socket", base);
            // sun_path holds 108 bytes with the terminating NUL (Linux).
            let len = p.as_os_str().len();
            if len > 107 {
                let msg = format!(
                    "\"{}\" is {len} bytes long: a Unix socket path must be at most 107",
                    p.display()
                );
                cx.error(&s.span(), "server.dnstap.socket", msg);
                return None;
            }
            Some(DnstapDest::Unix(p))
        }
        (None, Some(t)) => socket_addr(cx, t, "server.dnstap.tcp").map(DnstapDest::Tcp),
        (Some(_), Some(t)) => {
            let msg = "give either socket or tcp, not both";
            cx.error(&t.span(), "server.dnstap.tcp", msg);
            None
        }
        (None, None) => {
            let msg = "missing a destination: socket = \"/run/gslbd/dnstap.sock\" or tcp = \"127.0.0.1:6000\"";
            cx.error(&span, "server.dnstap", msg);
            None
        }
    };
    let sample = match &raw.sample {
        None => Some(1.0),
        Some(s) => {
            let v = *s.get_ref();
            if v.is_finite() && v > 0.0 && v <= 1.0 {
                Some(v)
            } else {
                let msg = format!(
                    "{v} is not a share of queries: expected a number in (0, 1], e.g. 0.1 for 10 %"
                );
                cx.error(&s.span(), "server.dnstap.sample", msg);
                None
            }
        }
    };
    Some(Dnstap {
        dest: dest?,
        sample: sample?,
    })
}

/// How often peers' views are pulled when `cluster.interval` is omitted.
const DEFAULT_CLUSTER_INTERVAL: Duration = Duration::from_secs(2);

/// `[cluster]`: peer URLs (`http(s)://host:port` of their admin API), the pull interval,
/// and the quorum (default: a majority of all instances, this one included).
pub(crate) fn cluster(cx: &mut Ctx<'_>, raw: &toml::Spanned<RawCluster>) -> Option<Cluster> {
    let span = raw.span();
    let raw = raw.get_ref();
    let mut peers: Vec<String> = Vec::new();
    match &raw.peers {
        None => cx.error(
            &span,
            "cluster.peers",
            "missing: list the other instances' admin API, e.g. peers = [\"http://192.0.2.53:8053\"]",
        ),
        Some(list) if list.get_ref().is_empty() => cx.error(
            &list.span(),
            "cluster.peers",
            "must list at least one other instance (omit [cluster] for a single instance)",
        ),
        Some(list) => {
            for item in list.get_ref() {
                let Some(url) = peer_url(cx, item) else {
                    continue;
                };
                if peers.contains(&url) {
                    cx.error(&item.span(), "cluster.peers", format!("{url} is listed twice"));
                } else {
                    peers.push(url);
                }
            }
        }
    }
    let interval = raw
        .interval
        .as_ref()
        .map_or(Some(DEFAULT_CLUSTER_INTERVAL), |i| {
            cx.duration(i, "cluster.interval")
        });
    let instances = peers.len() + 1;
    let quorum = match &raw.quorum {
        None => Some(instances / 2 + 1),
        Some(q) => {
            let n = *q.get_ref();
            if n < 1 {
                cx.error(
                    &q.span(),
                    "cluster.quorum",
                    format!("{n}: at least 1 down-vote must take a target down"),
                );
                None
            } else if n as usize > instances {
                let msg = format!(
                    "{n} is more than the {instances} instances (this one and {} peer(s)): no target could ever go down",
                    peers.len()
                );
                cx.error(&q.span(), "cluster.quorum", msg);
                None
            } else {
                Some(n as usize)
            }
        }
    };
    Some(Cluster {
        peers,
        interval: interval?,
        quorum: quorum?,
    })
}

/// A peer's admin API URL: http or https, a host and port, nothing after them; returned
/// as `scheme://host[:port]`.
fn peer_url(cx: &mut Ctx<'_>, item: &Str) -> Option<String> {
    let text = item.get_ref();
    let bad = |why: &str| {
        format!(
            "\"{text}\" is not a peer's admin API URL ({why}); expected e.g. \"http://192.0.2.53:8053\""
        )
    };
    let msg = match reqwest::Url::parse(text) {
        _ if !text.contains("://") => bad("no http:// or https://"),
        Err(e) => bad(&e.to_string()),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => bad("the scheme must be http or https"),
        Ok(u) if u.path() != "/" || u.query().is_some() || u.fragment().is_some() => {
            bad("give the address only, without a path")
        }
        Ok(u) => match u.host_str() {
            None | Some("") => bad("no host"),
            Some(host) => {
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                return Some(format!("{}://{host}{port}", u.scheme()));
            }
        },
    };
    cx.error(&item.span(), "cluster.peers", msg);
    None
}

/// `[defaults]`.
pub(crate) fn defaults(cx: &mut Ctx<'_>, raw: &RawDefaults) -> Defaults {
    let mut d = Defaults::default();
    if let Some(ttl) = &raw.ttl {
        d.ttl = ttl_value(cx, ttl, "defaults.ttl").unwrap_or(d.ttl);
    }
    if let Some(ttl) = &raw.fallback_ttl {
        d.fallback_ttl = ttl_value(cx, ttl, "defaults.fallback_ttl").unwrap_or(d.fallback_ttl);
    }
    let p = &raw.probe;
    d.probe = cx.timing(
        p.interval.as_ref(),
        p.timeout.as_ref(),
        p.rise.as_ref(),
        p.fall.as_ref(),
        ProbeTiming::default(),
        "defaults.probe",
        &(0..0),
    );
    d
}

/// A TTL: RFC 2181 section 8 limits TTLs to 2^31 - 1.
pub(crate) fn ttl_value(cx: &mut Ctx<'_>, value: &super::raw::Int, key: &str) -> Option<u32> {
    cx.int(value, key, 0..=2_147_483_647, "RFC 2181")
}

fn socket_addr(cx: &mut Ctx<'_>, value: &Str, key: &str) -> Option<SocketAddr> {
    match value.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            let msg = format!(
                "\"{}\" is not an ip:port address (e.g. \"127.0.0.1:5353\" or \"[::1]:5353\")",
                value.get_ref()
            );
            cx.error(&value.span(), key, msg);
            None
        }
    }
}

fn path(cx: &mut Ctx<'_>, value: &Str, key: &str, base: &Path) -> PathBuf {
    if value.get_ref().is_empty() {
        cx.error(&value.span(), key, "must not be empty");
    }
    absolute(crate::diag::resolve(base, Path::new(value.get_ref())))
}

/// `[dnssec]`: the key folder (default `keys`, beside the config), the algorithm of new
/// keys, and the signatures' validity (2 hours to 90 days; renewed halfway).
pub(crate) fn dnssec(
    cx: &mut Ctx<'_>,
    raw: &toml::Spanned<RawDnssec>,
    base: &Path,
) -> Option<Dnssec> {
    use crate::dnssec::Algorithm;
    let pos = cx.pos(&raw.span());
    let raw = raw.get_ref();
    let keys = match &raw.keys {
        Some(k) => path(cx, k, "dnssec.keys", base),
        None => absolute(base.join("keys")),
    };
    let algorithm = match &raw.algorithm {
        None => Some(Algorithm::EcdsaP256Sha256),
        Some(a) => {
            let found = Algorithm::from_name(a.get_ref());
            if found.is_none() {
                let msg = format!(
                    "unknown algorithm {:?}: ecdsap256sha256 (13, the default) or ed25519 (15)",
                    a.get_ref()
                );
                cx.error(&a.span(), "dnssec.algorithm", msg);
            }
            found
        }
    };
    let validity = match &raw.validity {
        None => Some(crate::dnssec::DEFAULT_VALIDITY),
        Some(v) => {
            let text = v.get_ref();
            let parsed = humantime::parse_duration(text);
            let problem = match &parsed {
                Ok(d) if *d < crate::dnssec::MIN_VALIDITY => Some(format!(
                    "validity \"{text}\" is too short (at least 2h: signatures are renewed halfway)"
                )),
                Ok(d) if *d > crate::dnssec::MAX_VALIDITY => {
                    Some(format!("validity \"{text}\" is too long (at most 90d)"))
                }
                Ok(_) => None,
                Err(e) => Some(format!(
                    "invalid duration \"{text}\" (expected e.g. \"14d\"): {e}"
                )),
            };
            match problem {
                Some(msg) => {
                    cx.error(&v.span(), "dnssec.validity", msg);
                    None
                }
                None => parsed.ok(),
            }
        }
    };
    Some(Dnssec {
        keys,
        algorithm: algorithm?,
        validity: validity?,
        pos,
    })
}

/// `path` made absolute against the working directory when the config path was relative,
/// without touching the file system (the file may not exist yet; `check` reports that).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}
