//! What an operator can ask of a running server — reload, drain, region report,
//! explain, metrics — in one place, shared by the admin HTTP API and the signal handler.
//! Nothing here runs on the query path: reloads load and validate off it, then hand a
//! complete snapshot to the health owner, which swaps it in atomically.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::diag::{Diagnostic, Diagnostics};
use crate::explain::{self, Explanation};
use crate::health::HealthService;
use crate::health::monitor::TargetStats;
use crate::metrics::{self, AnswerCounters, label};
use crate::model::{Model, RegionId};
use crate::snapshot::{Shared, Snapshot};

/// Command-line values that replace config values, kept across reloads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` (empty: use the config's).
    pub listen: Vec<SocketAddr>,
    /// `--admin`.
    pub admin: Option<SocketAddr>,
}

impl Overrides {
    /// Applies the overrides to a freshly loaded model.
    pub fn apply(&self, model: &mut Model) {
        if !self.listen.is_empty() {
            model.server.listen = self.listen.clone();
        }
        if self.admin.is_some() {
            model.server.admin = self.admin;
        }
    }
}

/// The running server's operations.
#[derive(Debug)]
pub struct Control {
    config: PathBuf,
    overrides: Overrides,
    state: Shared,
    health: HealthService,
    /// One reload at a time: a second one waits for the first.
    reloading: tokio::sync::Mutex<()>,
}

/// A region as `GET /api/v1/regions` reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegionReport {
    /// The region's name.
    pub name: String,
    /// `up`, `down` or `drained` (drained wins).
    pub state: String,
    /// Probes say up (or no probe).
    pub up: bool,
    /// Drained by an operator.
    pub drained: bool,
    /// The live RTT penalty used by the latency policy, ms.
    pub rtt_penalty_ms: f64,
    /// Its addresses and whether each is served.
    pub addresses: Vec<AddressReport>,
    /// Its probe targets (none when the region has no probe).
    pub targets: Vec<TargetReport>,
}

/// One address of a region.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AddressReport {
    /// The VIP.
    pub address: IpAddr,
    /// Up (per-address probes) or the region's probe state.
    pub up: bool,
}

/// One probe target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetReport {
    /// `GET URL` or `tcp ADDR`.
    pub target: String,
    /// Current state.
    pub up: bool,
    /// Has any result arrived.
    pub probed: bool,
    /// The last result (`ok`, `status 503`, `timeout`, ...).
    pub last_result: Option<String>,
    /// When the last probe finished (RFC 3339).
    pub last_probe: Option<String>,
    /// When the state last changed (RFC 3339).
    pub last_change: Option<String>,
    /// Smoothed RTT of successful probes, ms.
    pub srtt_ms: Option<f64>,
    /// Best RTT of the last 32 successful probes, ms.
    pub min_rtt_ms: Option<f64>,
}

impl Control {
    /// Wraps a running server: its config path (re-read on reload), the command-line
    /// overrides, the shared snapshot and the health owner.
    pub fn new(
        config: PathBuf,
        overrides: Overrides,
        state: Shared,
        health: HealthService,
    ) -> Arc<Control> {
        Arc::new(Control {
            config,
            overrides,
            state,
            health,
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.load_full()
    }

    /// Re-reads config, zones and GeoIP DB. On any error the running snapshot stays and
    /// the errors come back (and are logged); otherwise the new one is swapped in whole,
    /// keeping probe state and drains, and a one-line summary comes back.
    pub async fn reload(&self) -> Result<String, Diagnostics> {
        let _one_at_a_time = self.reloading.lock().await;
        let path = self.config.clone();
        let loaded = tokio::task::spawn_blocking(move || Snapshot::load(&path))
            .await
            .unwrap_or_else(|e| {
                Err(Diagnostic::new(&self.config, format!("reload task failed: {e}")).into())
            });
        let cur = self.state.load_full();
        let mut next = match loaded {
            Ok(s) => s,
            Err(errors) => {
                cur.queries
                    .reloads_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                error!("reload failed, still serving the previous config:\n{errors}");
                return Err(errors);
            }
        };
        let mut model = (*next.model).clone();
        self.overrides.apply(&mut model);
        if model.server.listen != cur.model.server.listen
            || model.server.admin != cur.model.server.admin
        {
            warn!("server.listen and server.admin changes take effect at restart, not on reload");
        }
        next.answers = Arc::new(AnswerCounters::carried_over(&model, &cur.answers));
        next.model = Arc::new(model);
        next.queries = cur.queries.clone();
        let summary = format!(
            "{} zone(s), {} region(s), {} dynamic name(s)",
            next.zones.zones().len(),
            next.model.regions.len(),
            next.model.records.len()
        );
        self.health.reload(next).await;
        cur.queries
            .reloads_ok
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        info!("reloaded {}: {summary}", self.config.display());
        Ok(summary)
    }

    /// Drains or undrains a region by name: `Ok(changed)`, or `Err` naming the known ones.
    pub async fn drain(&self, region: &str, drained: bool) -> Result<bool, String> {
        self.health.drain(region, drained).await
    }

    /// Every region's state, addresses and probe targets.
    pub async fn regions(&self) -> Vec<RegionReport> {
        let snap = self.snapshot();
        let monitor = self.health.inspect().await;
        let model = &snap.model;
        (0..model.regions.len())
            .map(|i| {
                let id = RegionId(i as u16);
                let region = &model.regions[i];
                let h = snap.health.region(id).cloned().unwrap_or_default();
                let state = if h.drained {
                    "drained"
                } else if h.up {
                    "up"
                } else {
                    "down"
                };
                let addrs = region
                    .v4
                    .iter()
                    .map(|a| IpAddr::V4(*a))
                    .chain(region.v6.iter().map(|a| IpAddr::V6(*a)));
                let addresses = addrs
                    .enumerate()
                    .map(|(j, address)| AddressReport {
                        address,
                        up: h.up && snap.health.address_up(id, j),
                    })
                    .collect();
                // The monitor may briefly lag a reload; match targets by region name.
                let targets = monitor
                    .as_ref()
                    .and_then(|m| m.model().region_id(&region.name).map(|mid| (m, mid)))
                    .map(|(m, mid)| m.region_targets(mid).map(target_report).collect())
                    .unwrap_or_default();
                RegionReport {
                    name: region.name.clone(),
                    state: state.into(),
                    up: h.up,
                    drained: h.drained,
                    rtt_penalty_ms: h.rtt_penalty_ms,
                    addresses,
                    targets,
                }
            })
            .collect()
    }

    /// The `explain` trace for a query from `client` with an optional ECS `subnet`.
    pub fn explain(
        &self,
        name: &str,
        qtype: &str,
        client: IpAddr,
        subnet: Option<IpNet>,
    ) -> Result<Explanation, String> {
        explain::explain(&self.snapshot(), name, qtype, client, subnet)
    }

    /// Prometheus text exposition of every metric.
    pub async fn metrics(&self) -> String {
        let snap = self.snapshot();
        let mut out = String::with_capacity(4096);
        metrics::family(
            &mut out,
            "gslbd_build_info",
            "gauge",
            "Always 1; the version is a label.",
        );
        let _ = writeln!(
            out,
            "gslbd_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        snap.queries.render(&mut out);
        snap.answers.render(&mut out);
        if let Some(rrl) = &snap.rrl {
            let help = "UDP responses over server.rate_limit, by action (since the last reload).";
            metrics::family(&mut out, "gslbd_rate_limited_total", "counter", help);
            let drops = rrl.limited() - rrl.slipped();
            let _ = writeln!(out, "gslbd_rate_limited_total{{action=\"drop\"}} {drops}");
            let _ = writeln!(
                out,
                "gslbd_rate_limited_total{{action=\"slip\"}} {}",
                rrl.slipped()
            );
        }
        metrics::family(
            &mut out,
            "gslbd_region_up",
            "gauge",
            "1 while probes say the region is up (or it has no probe).",
        );
        for (i, r) in snap.model.regions.iter().enumerate() {
            let up = snap.health.region(RegionId(i as u16)).is_none_or(|h| h.up);
            let _ = writeln!(
                out,
                "gslbd_region_up{{region=\"{}\"}} {}",
                label(&r.name),
                u8::from(up)
            );
        }
        metrics::family(
            &mut out,
            "gslbd_region_drained",
            "gauge",
            "1 while an operator has drained the region.",
        );
        for (i, r) in snap.model.regions.iter().enumerate() {
            let d = snap
                .health
                .region(RegionId(i as u16))
                .is_some_and(|h| h.drained);
            let _ = writeln!(
                out,
                "gslbd_region_drained{{region=\"{}\"}} {}",
                label(&r.name),
                u8::from(d)
            );
        }
        if let Some(m) = self.health.inspect().await {
            metrics::family(
                &mut out,
                "gslbd_probe_up",
                "gauge",
                "1 while the probe target is up.",
            );
            for t in m.targets() {
                let _ = writeln!(
                    out,
                    "gslbd_probe_up{{target=\"{}\"}} {}",
                    label(&t.spec.to_string()),
                    u8::from(t.state.up)
                );
            }
            metrics::family(
                &mut out,
                "gslbd_probe_results_total",
                "counter",
                "Probe results by target and kind.",
            );
            for t in m.targets() {
                for (k, kind) in TargetStats::KINDS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "gslbd_probe_results_total{{target=\"{}\",result=\"{kind}\"}} {}",
                        label(&t.spec.to_string()),
                        t.stats.results[k]
                    );
                }
            }
            metrics::family(
                &mut out,
                "gslbd_probe_duration_seconds",
                "summary",
                "Time each probe took (bounded by its timeout).",
            );
            for t in m.targets() {
                let l = label(&t.spec.to_string());
                let _ = writeln!(
                    out,
                    "gslbd_probe_duration_seconds_sum{{target=\"{l}\"}} {}",
                    t.stats.duration_sum
                );
                let _ = writeln!(
                    out,
                    "gslbd_probe_duration_seconds_count{{target=\"{l}\"}} {}",
                    t.stats.count
                );
            }
        }
        out
    }
}

fn target_report(t: &crate::health::monitor::Target) -> TargetReport {
    let time = |s: SystemTime| humantime::format_rfc3339_millis(s).to_string();
    TargetReport {
        target: t.spec.to_string(),
        up: t.state.up,
        probed: t.state.known,
        last_result: t.state.last.as_ref().map(|(o, _)| o.to_string()),
        last_probe: t.state.last.as_ref().map(|(_, at)| time(*at)),
        last_change: t.state.last_change.map(time),
        srtt_ms: t.state.srtt_ms,
        min_rtt_ms: t.state.min_rtt_ms(),
    }
}
