//! What an operator can ask of a running server — reload, drain, region report,
//! explain, metrics — in one place, shared by the admin HTTP API and the signal handler.
//! Nothing here runs on the query path: reloads load and validate off it, then hand a
//! complete snapshot to the health owner, which swaps it in atomically.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use ipnet::IpNet;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::diag::{Diagnostic, Diagnostics};
use crate::explain::{self, Explanation};
use crate::health::{DrainError, HealthService, HealthStopped};
use crate::metrics;
use crate::model::{Model, RegionId};
use crate::runtime::Shared;
use crate::snapshot::Snapshot;

/// Command-line values that replace config values, kept across reloads.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` (empty: use the config's).
    pub listen: Vec<SocketAddr>,
    /// `--admin`.
    pub admin: Option<SocketAddr>,
}

impl Overrides {
    /// `snap` with the overrides applied to its model.
    pub fn applied(&self, snap: Snapshot) -> Snapshot {
        let mut model = (*snap.model).clone();
        self.apply(&mut model);
        Snapshot {
            model: Arc::new(model),
            ..snap
        }
    }

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
    /// What was bound at start: changing these needs a restart.
    running: Running,
    /// One reload at a time: a second one waits for the first.
    reloading: tokio::sync::Mutex<()>,
}

/// The settings a running server cannot change: its sockets and threads.
#[derive(Debug, Clone, PartialEq)]
struct Running {
    listen: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    workers: Option<usize>,
}

impl Running {
    fn of(model: &Model) -> Running {
        Running {
            listen: model.server.listen.clone(),
            admin: model.server.admin,
            workers: model.server.workers,
        }
    }

    /// One warning per setting of `model` that differs from what runs.
    fn warnings(&self, model: &Model) -> Vec<String> {
        let want = Running::of(model);
        let mut w = Vec::new();
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if want.listen != self.listen {
            w.push(format!(
                "server.listen changed to [{}] but the server keeps listening on [{}] until it is restarted",
                list(&want.listen),
                list(&self.listen)
            ));
        }
        if want.admin != self.admin {
            let show = |a: Option<SocketAddr>| a.map_or("none".to_string(), |a| a.to_string());
            w.push(format!(
                "server.admin changed to {} but the admin API stays on {} until the server is restarted",
                show(want.admin),
                show(self.admin)
            ));
        }
        if want.workers != self.workers {
            let show = |n: Option<usize>| n.map_or("one per core".to_string(), |n| n.to_string());
            w.push(format!(
                "server.workers changed to {} but {} UDP workers per address keep running until the server is restarted",
                show(want.workers),
                show(self.workers)
            ));
        }
        w
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reloaded {
    /// Zones, regions and dynamic names now served.
    pub summary: String,
    /// Changed settings that take effect only at a restart.
    pub warnings: Vec<String>,
}

/// Why a reload did not take effect; the previous config keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config, a zone or the GeoIP database has errors.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// The health owner is gone, so nothing new can be published.
    #[error(transparent)]
    Stopped(#[from] HealthStopped),
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
        let running = Running::of(&state.snapshot().model);
        Arc::new(Control {
            config,
            overrides,
            state,
            health,
            running,
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.snapshot()
    }

    /// The shared state the query path reads.
    pub fn state(&self) -> &Shared {
        &self.state
    }

    /// Re-reads config, zones and GeoIP DB. On any error the running snapshot stays and
    /// the errors come back (and are logged); otherwise the new one is swapped in whole,
    /// keeping probe state, drains, counters and the rate limiter's table. Every setting
    /// takes effect except those that need a restart, which come back as warnings.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let path = self.config.clone();
        let loaded = tokio::task::spawn_blocking(move || Snapshot::load(&path))
            .await
            .unwrap_or_else(|e| {
                Err(Diagnostic::new(&self.config, format!("reload task failed: {e}")).into())
            });
        let queries = &self.state.runtime().queries;
        let failed = || queries.reloads_failed.fetch_add(1, Relaxed);
        let loaded = match loaded {
            Ok(s) => s,
            Err(errors) => {
                failed();
                error!("reload failed, still serving the previous config:\n{errors}");
                return Err(ReloadError::Invalid(errors));
            }
        };
        let next = self.overrides.applied(loaded);
        let warnings = self.running.warnings(&next.model);
        let summary = format!(
            "{} zone(s), {} region(s), {} dynamic name(s)",
            next.zones.zones().len(),
            next.model.regions.len(),
            next.model.records.len()
        );
        if let Err(e) = self.health.reload(next).await {
            failed();
            error!("reload failed, still serving the previous config: {e}");
            return Err(e.into());
        }
        queries.reloads_ok.fetch_add(1, Relaxed);
        info!("reloaded {}: {summary}", self.config.display());
        for w in &warnings {
            warn!("reload: {w}");
        }
        Ok(Reloaded { summary, warnings })
    }

    /// Drains or undrains a region by name: `Ok(changed)`.
    pub async fn drain(&self, region: &str, drained: bool) -> Result<bool, DrainError> {
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
        let monitor = self.health.inspect().await;
        metrics::exposition(&self.snapshot(), self.state.runtime(), monitor.as_ref())
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
