//! The probers: one HTTP(S) GET or one TCP connect against one target, bounded by the
//! probe's timeout. A result is data (an [`Outcome`] and the RTT), never an error up the
//! stack: a failing region is the normal case here, not an exceptional one.

use std::fmt;
use std::net::IpAddr;
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
    http: Option<reqwest::Client>,
}

impl Prober {
    /// Builds the prober; fails only if the TLS backend cannot be set up.
    pub fn new(spec: TargetSpec) -> Result<Prober, String> {
        let http = match &spec.check {
            ProbeTarget::Http { insecure, .. } => Some(
                reqwest::Client::builder()
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
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client for {spec}: {e}"))?,
            ),
            ProbeTarget::Tcp { .. } => None,
        };
        Ok(Prober { spec, http })
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
        match (&self.spec.check, &self.http) {
            (ProbeTarget::Tcp { addr }, _) => {
                match tokio::net::TcpStream::connect(addr.as_str()).await {
                    Ok(_) => Outcome::Ok,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
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
                    Err(e) => return classify(&e),
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
                        Err(e) => return classify(&e),
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

fn classify(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Timeout;
    }
    // reqwest hides the io::Error kind; walk the source chain for it.
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Outcome::Refused;
            }
        }
        source = s.source();
    }
    let mut text = e.to_string();
    if let Some(inner) = std::error::Error::source(e) {
        text = format!("{text}: {inner}");
    }
    Outcome::Error(text)
}
