//! The probers: one HTTP(S) GET or one TCP connect against one target, bounded by the
//! probe's timeout. A result is data (an [`Outcome`] and the RTT), never an error up the
//! stack: a failing region is the normal case here, not an exceptional one.
//!
//! With `server.probe_source`, every probe's socket is bound to that address before it
//! connects. A target of the other address family, or a source this machine does not
//! have, is a failed probe whose reason names `probe_source`; nothing is sent from
//! another address instead.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::health::state::Outcome;
use crate::model::{ProbeTarget, ProbeTiming, Region};

/// The most of a response body read to look for `expect_body`.
pub const MAX_BODY: usize = 64 * 1024;

/// One distinct thing to probe, with its timing. Regions with identical probes share one
/// target, so probe load does not grow with the number of regions or records using it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetSpec {
    /// What to check, with `{address}` already replaced by one address.
    pub check: ProbeTarget,
    /// Interval, timeout, rise, fall.
    pub timing: TimingKey,
}

/// [`ProbeTiming`] as a hashable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimingKey {
    /// Time between probes.
    pub interval: Duration,
    /// Time after which a probe fails.
    pub timeout: Duration,
    /// Successes to come up.
    pub rise: u32,
    /// Failures to go down.
    pub fall: u32,
}

impl From<ProbeTiming> for TimingKey {
    fn from(t: ProbeTiming) -> Self {
        TimingKey {
            interval: t.interval,
            timeout: t.timeout,
            rise: t.rise,
            fall: t.fall,
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.check {
            ProbeTarget::Http { url, .. } => write!(f, "GET {url}"),
            ProbeTarget::Tcp { addr } => write!(f, "tcp {addr}"),
        }
    }
}

/// The targets of one region: one for the whole region, or one per address when the
/// probe mentions `{address}` (then `per_address[i]` belongs to address i, IPv4 first).
pub fn region_targets(region: &Region) -> Vec<TargetSpec> {
    let Some(probe) = &region.probe else {
        return Vec::new();
    };
    let timing = TimingKey::from(probe.timing);
    let fill = |addr: Option<IpAddr>, s: &str| match addr {
        Some(IpAddr::V6(a)) => s.replace("{address}", &format!("[{a}]")),
        Some(IpAddr::V4(a)) => s.replace("{address}", &a.to_string()),
        None => s.to_string(),
    };
    let check = |addr: Option<IpAddr>| match &probe.target {
        ProbeTarget::Http {
            url,
            expect_status,
            expect_body,
            host,
            insecure,
        } => ProbeTarget::Http {
            url: fill(addr, url),
            expect_status: expect_status.clone(),
            expect_body: expect_body.clone(),
            host: host.clone(),
            insecure: *insecure,
        },
        ProbeTarget::Tcp { addr: a } => ProbeTarget::Tcp {
            addr: fill(addr, a),
        },
    };
    let templated = match &probe.target {
        ProbeTarget::Http { url, .. } => url.contains("{address}"),
        ProbeTarget::Tcp { addr } => addr.contains("{address}"),
    };
    if templated {
        let v4 = region.v4.iter().map(|a| IpAddr::V4(*a));
        let v6 = region.v6.iter().map(|a| IpAddr::V6(*a));
        v4.chain(v6)
            .map(|a| TargetSpec {
                check: check(Some(a)),
                timing,
            })
            .collect()
    } else {
        vec![TargetSpec {
            check: check(None),
            timing,
        }]
    }
}

/// A prober for one target: holds its HTTP client (one per target, so TLS settings and
/// connection handling are the target's own).
#[derive(Debug, Clone)]
pub struct Prober {
    spec: TargetSpec,
    /// `server.probe_source`: the address every probe is sent from.
    source: Option<IpAddr>,
    /// Set when the target is an IP address of the other family than `source`: every
    /// probe fails with this reason, without a connection attempt.
    mismatch: Option<String>,
    http: Option<reqwest::Client>,
}

impl Prober {
    /// Builds the prober, sending from `source` when given (`server.probe_source`);
    /// fails only if the TLS backend cannot be set up.
    pub fn new(spec: TargetSpec, source: Option<IpAddr>) -> Result<Prober, String> {
        let http = match &spec.check {
            ProbeTarget::Http { insecure, .. } => {
                let mut builder = reqwest::Client::builder()
                    .user_agent(concat!(
                        "gslbd/",
                        env!("CARGO_PKG_VERSION"),
                        " (health probe)"
                    ))
                    // A 3xx is an answer to judge, not a hop to follow.
                    .redirect(reqwest::redirect::Policy::none())
                    // Probe the region itself, never through an environment proxy.
                    .no_proxy()
                    // One probe, one attempt: retries would hide failures.
                    .retry(reqwest::retry::never())
                    // A fresh connection each time exercises accept and the TLS handshake.
                    .pool_max_idle_per_host(0)
                    .connect_timeout(spec.timing.timeout)
                    .timeout(spec.timing.timeout)
                    .tls_danger_accept_invalid_certs(*insecure)
                    .local_address(source);
                if let Some(source) = source {
                    // Host names resolve to the source's family only, and say so when
                    // they have no such address (the connector would just find none).
                    builder = builder.dns_resolver(Arc::new(SourceFamily(source)));
                }
                Some(
                    builder
                        .build()
                        .map_err(|e| format!("cannot build the HTTP client for {spec}: {e}"))?,
                )
            }
            ProbeTarget::Tcp { .. } => None,
        };
        let mismatch = source.and_then(|s| {
            let ip = target_ip(&spec.check)?;
            (ip.is_ipv4() != s.is_ipv4()).then(|| {
                format!(
                    "cannot send from probe_source {s} ({}) to {ip} ({})",
                    family(s),
                    family(ip)
                )
            })
        });
        Ok(Prober {
            spec,
            source,
            mismatch,
            http,
        })
    }

    /// The target probed.
    pub fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// Runs one probe: the outcome and how long it took (bounded by the timeout).
    pub async fn probe(&self) -> (Outcome, Duration) {
        let start = Instant::now();
        let timeout = self.spec.timing.timeout;
        let outcome = match tokio::time::timeout(timeout, self.run()).await {
            Ok(o) => o,
            Err(_) => Outcome::Timeout,
        };
        (outcome, start.elapsed().min(timeout))
    }

    async fn run(&self) -> Outcome {
        if let Some(why) = &self.mismatch {
            return Outcome::Error(why.clone());
        }
        match (&self.spec.check, &self.http) {
            (ProbeTarget::Tcp { addr }, _) => {
                let connected = match self.source {
                    None => tokio::net::TcpStream::connect(addr.as_str()).await,
                    Some(source) => match connect_from(source, addr).await {
                        Ok(stream) => Ok(stream),
                        Err(TcpFailure::Source(why)) => return Outcome::Error(why),
                        Err(TcpFailure::Io(e)) => Err(e),
                    },
                };
                match connected {
                    Ok(_) => Outcome::Ok,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Outcome::Refused,
                    Err(e) => Outcome::Error(e.to_string()),
                }
            }
            (
                ProbeTarget::Http {
                    url,
                    expect_status,
                    expect_body,
                    host,
                    ..
                },
                Some(client),
            ) => {
                let mut req = client.get(url);
                if let Some(h) = host {
                    req = req.header(reqwest::header::HOST, h);
                }
                let mut resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => return classify(&e, self.source),
                };
                let status = resp.status().as_u16();
                if !expect_status.contains(&status) {
                    return Outcome::Status(status);
                }
                let Some(want) = expect_body else {
                    return Outcome::Ok;
                };
                let mut body = Vec::new();
                loop {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => {
                            let room = MAX_BODY - body.len();
                            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                            if body.len() >= MAX_BODY {
                                break; // read no more than 64 KiB
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return classify(&e, self.source),
                    }
                }
                let want = want.as_bytes();
                if want.is_empty() || body.windows(want.len()).any(|w| w == want) {
                    Outcome::Ok
                } else {
                    Outcome::BodyMismatch
                }
            }
            (ProbeTarget::Http { .. }, None) => Outcome::Error("no HTTP client".into()),
        }
    }
}

fn classify(e: &reqwest::Error, probe_source: Option<IpAddr>) -> Outcome {
    if e.is_timeout() {
        return Outcome::Timeout;
    }
    // reqwest hides the io::Error kind; walk the source chain for it.
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error(s) {
            return Outcome::Error(certificate_problem(cert));
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::ConnectionRefused {
                return Outcome::Refused;
            }
            // With a source address, binding to it is the step that fails this way.
            if let (Some(from), io::ErrorKind::AddrNotAvailable) = (probe_source, io.kind()) {
                return Outcome::Error(unusable_source(from, io));
            }
        }
        if let Some(SourceError(why)) = s.downcast_ref::<SourceError>() {
            return Outcome::Error(why.clone());
        }
        source = s.source();
    }
    let mut text = e.to_string();
    if let Some(inner) = std::error::Error::source(e) {
        text = format!("{text}: {inner}");
    }
    Outcome::Error(text)
}

/// The rustls error that `e` is or wraps: hyper hands it over inside an io::Error inside
/// another, and an io::Error's `source()` skips what it wraps, so unwrap them by hand.
fn rustls_error<'e>(mut e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        e = e.downcast_ref::<io::Error>()?.get_ref()?;
    }
}

/// The reason of an HTTPS probe whose certificate was refused: which problem, and the
/// way out (reqwest says only "client error (Connect)").
fn certificate_problem(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    let when = |t: &rustls::pki_types::UnixTime| {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(t.as_secs());
        humantime::format_rfc3339_seconds(t).to_string()
    };
    let what = match e {
        C::UnknownIssuer => "unknown issuer: self-signed, or signed by a CA that is not \
                             among this machine's trusted roots"
            .to_string(),
        C::ExpiredContext { not_after, .. } => format!("expired on {}", when(not_after)),
        C::Expired => "expired".to_string(),
        C::NotValidYetContext { not_before, .. } => format!(
            "not valid before {} (is this machine's clock right?)",
            when(not_before)
        ),
        C::NotValidYet => "not valid yet (is this machine's clock right?)".to_string(),
        C::NotValidForNameContext { .. } | C::NotValidForName => format!("name mismatch: {e}"),
        other => other.to_string(),
    };
    format!(
        "TLS certificate refused: {what}; `insecure = true` in this probe accepts any \
         certificate"
    )
}

/// The probe target's host when it is an IP address (not a name).
fn target_ip(check: &ProbeTarget) -> Option<IpAddr> {
    match check {
        ProbeTarget::Http { url, .. } => {
            let url = reqwest::Url::parse(url).ok()?;
            let host = url.host_str()?;
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        }
        ProbeTarget::Tcp { addr } => addr.parse::<SocketAddr>().ok().map(|a| a.ip()),
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// The reason of a probe that could not be sent from `source` at all.
fn unusable_source(source: IpAddr, e: &io::Error) -> String {
    let hint = if e.kind() == io::ErrorKind::AddrNotAvailable {
        " (not an address of this machine?)"
    } else {
        ""
    };
    format!("cannot send from probe_source {source}: {e}{hint}")
}

/// The reason of a probe of `host` that has no address of `source`'s family.
fn no_such_family(source: IpAddr, host: &str) -> String {
    format!(
        "cannot send from probe_source {source} ({}): {host} has no {} address",
        family(source),
        family(source)
    )
}

/// Why a TCP probe from a source address did not connect.
enum TcpFailure {
    /// The probe could not be sent from the source: the whole reason.
    Source(String),
    /// The connection failed (refused, reset, unreachable, ...).
    Io(io::Error),
}

/// Connects to `addr` (`host:port`) from `source`: each of its addresses of the source's
/// family in turn, as `TcpStream::connect` does, on a socket bound to `(source, 0)`.
async fn connect_from(source: IpAddr, addr: &str) -> Result<tokio::net::TcpStream, TcpFailure> {
    let found = tokio::net::lookup_host(addr)
        .await
        .map_err(TcpFailure::Io)?;
    let mut last = None;
    for to in found.filter(|a| a.is_ipv4() == source.is_ipv4()) {
        let socket = if source.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        };
        let socket = socket
            .and_then(|s| s.bind(SocketAddr::new(source, 0)).map(|()| s))
            .map_err(|e| TcpFailure::Source(unusable_source(source, &e)))?;
        match socket.connect(to).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    Err(last.map_or_else(
        || TcpFailure::Source(no_such_family(source, host)),
        TcpFailure::Io,
    ))
}

/// A probe that cannot be sent from `server.probe_source`, as an error a resolver can
/// return through reqwest (and [`classify`] can find again).
#[derive(Debug)]
struct SourceError(String);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

/// Resolves host names to the addresses of the source's family only: the only ones a
/// socket bound to the source can reach.
struct SourceFamily(IpAddr);

impl reqwest::dns::Resolve for SourceFamily {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let source = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let same: Vec<SocketAddr> = found.filter(|a| a.is_ipv4() == source.is_ipv4()).collect();
            if same.is_empty() {
                return Err(SourceError(no_such_family(source, &host)).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(same.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::dns::Resolve;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tcp(addr: &str) -> TargetSpec {
        TargetSpec {
            check: ProbeTarget::Tcp { addr: addr.into() },
            timing: TimingKey {
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(500),
                rise: 1,
                fall: 1,
            },
        }
    }

    fn http(url: &str) -> ProbeTarget {
        ProbeTarget::Http {
            url: url.into(),
            expect_status: vec![200],
            expect_body: None,
            host: None,
            insecure: false,
        }
    }

    #[test]
    fn target_addresses_are_recognised_in_urls_and_tcp_targets() {
        assert_eq!(
            target_ip(&http("http://192.0.2.1:8080/h")),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            target_ip(&http("https://[2001:db8::1]/h")),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(target_ip(&http("http://localhost:8080/h")), None);
        assert_eq!(target_ip(&tcp("[::1]:443").check), Some(ip("::1")));
        assert_eq!(
            target_ip(&tcp("192.0.2.1:443").check),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(target_ip(&tcp("localhost:443").check), None);
    }

    #[tokio::test]
    async fn a_target_of_the_other_family_fails_without_a_connection() {
        let p = Prober::new(tcp("[::1]:9"), Some(ip("127.0.0.2"))).unwrap();
        let want = "cannot send from probe_source 127.0.0.2 (IPv4) to ::1 (IPv6)";
        assert_eq!(p.probe().await.0, Outcome::Error(want.into()));
        let p = Prober::new(tcp("127.0.0.1:9"), Some(ip("::1"))).unwrap();
        let want = "cannot send from probe_source ::1 (IPv6) to 127.0.0.1 (IPv4)";
        assert_eq!(p.probe().await.0, Outcome::Error(want.into()));
        // The same family, or no source: no verdict before trying.
        assert!(
            Prober::new(tcp("[::1]:9"), Some(ip("::1")))
                .unwrap()
                .mismatch
                .is_none()
        );
        assert!(
            Prober::new(tcp("[::1]:9"), None)
                .unwrap()
                .mismatch
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_name_without_an_address_of_the_source_family_names_probe_source() {
        // An address literal resolves to itself: IPv4 only.
        let want = "cannot send from probe_source ::1 (IPv6): 127.0.0.1 has no IPv6 address";
        match connect_from(ip("::1"), "127.0.0.1:9").await {
            Err(TcpFailure::Source(why)) => assert_eq!(why, want),
            Err(TcpFailure::Io(e)) => panic!("{e}"),
            Ok(_) => panic!("connected"),
        }
        let err = SourceFamily(ip("::1"))
            .resolve("127.0.0.1".parse().unwrap())
            .await
            .err()
            .expect("no address");
        assert_eq!(err.to_string(), want);
        assert!(err.downcast_ref::<SourceError>().is_some());
        let found: Vec<SocketAddr> = SourceFamily(ip("127.0.0.2"))
            .resolve("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(found, [SocketAddr::from(([127, 0, 0, 1], 0))]);
    }

    #[tokio::test]
    async fn a_source_the_machine_does_not_have_names_probe_source() {
        // 192.0.2.1 (TEST-NET-1) is never local: binding to it fails.
        match connect_from(ip("192.0.2.1"), "127.0.0.1:9").await {
            Err(TcpFailure::Source(why)) => {
                assert!(
                    why.starts_with("cannot send from probe_source 192.0.2.1: ")
                        && why.ends_with("(not an address of this machine?)"),
                    "{why}"
                );
            }
            Err(TcpFailure::Io(e)) => panic!("{e}"),
            Ok(_) => panic!("connected"),
        }
    }
}
