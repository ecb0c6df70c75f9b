//! What an operator can ask of a running server — reload, drain, region report, status,
//! explain, metrics — in one place, shared by the admin HTTP API and the signal handler.
//! Nothing here runs on the query path: reloads load and validate off it, then hand a
//! complete snapshot to the health owner, which swaps it in atomically.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use ipnet::IpNet;
use serde::Serialize;
use tracing::{error, info, warn};

use crate::diag::{Diagnostic, Diagnostics};
use crate::explain::{self, Explanation};
use crate::health::votes::View;
use crate::health::{DrainError, HealthService, HealthStopped};
use crate::metrics;
use crate::runtime::Shared;
use crate::snapshot::Snapshot;

mod report;
mod settings;
pub mod status;

pub use report::{
    AddressReport, ClusterReport, PeerReport, RegionReport, TargetReport, VoteReport,
};
pub use settings::Overrides;
use settings::Running;
pub use status::StatusReport;
use status::Traffic;

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
    /// Loads still reading files on a blocking thread, given up on by a reload that
    /// timed out (they cannot be cancelled: a thread blocked in a read stays blocked).
    abandoned: Arc<AtomicUsize>,
    /// When this server started, and when the config served was loaded.
    started: SystemTime,
    config_loaded: Mutex<SystemTime>,
    /// The answer counters over the last minute, for the status page.
    traffic: Traffic,
}

/// Loads given up on that may still block threads at once; past this, a reload is
/// refused at once rather than block one more thread.
const MAX_ABANDONED: usize = 4;

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
        // The first sample before any query is answered: the first minute's shares
        // count every answer.
        let traffic = Traffic::default();
        traffic.sample(Instant::now(), state.runtime().answers().totals());
        Arc::new(Control {
            config,
            overrides,
            state,
            health,
            running,
            reloading: tokio::sync::Mutex::new(()),
            abandoned: Arc::new(AtomicUsize::new(0)),
            started: SystemTime::now(),
            config_loaded: Mutex::new(SystemTime::now()),
            traffic,
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
    ///
    /// Reading and checking the files runs on a blocking thread, bounded by the running
    /// config's `server.reload_timeout`: a load that has not finished by then (a file on
    /// a hung network file system) fails the reload, and the next reload starts afresh.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let queries = &self.state.runtime().queries;
        let failed = || queries.reloads_failed.fetch_add(1, Relaxed);
        let (next, warnings) = match self.load().await {
            Ok(loaded) => loaded,
            Err(errors) => {
                failed();
                error!("reload failed, still serving the previous config:\n{errors}");
                return Err(ReloadError::Invalid(errors));
            }
        };
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
        *self.config_loaded.lock().unwrap_or_else(|e| e.into_inner()) = SystemTime::now();
        info!("reloaded {}: {summary}", self.config.display());
        for w in &warnings {
            warn!("reload: {w}");
        }
        Ok(Reloaded { summary, warnings })
    }

    /// Loads config, zones and GeoIP DB on a blocking thread, with the overrides applied,
    /// and the warnings for settings that need a restart; an error once the running
    /// config's `server.reload_timeout` has passed.
    async fn load(&self) -> Result<(Snapshot, Vec<String>), Diagnostics> {
        let bound = self.state.snapshot().model.server.reload_timeout;
        let stuck = self.abandoned.load(Relaxed);
        if stuck >= MAX_ABANDONED {
            let msg = format!(
                "{stuck} earlier reloads are still blocked reading their files (each timed out \
                 after server.reload_timeout); no new reload starts until one of them returns"
            );
            return Err(Diagnostic::new(&self.config, msg).into());
        }
        let (path, overrides, running) = (
            self.config.clone(),
            self.overrides.clone(),
            self.running.clone(),
        );
        let done = Arc::new(AtomicBool::new(false));
        let (done2, abandoned) = (done.clone(), self.abandoned.clone());
        let old = self.state.snapshot();
        let task = tokio::task::spawn_blocking(move || {
            let loaded = Snapshot::reload(&path, &old).map(|s| {
                let next = overrides.applied(s);
                let warnings = running.warnings(&next.model);
                (next, warnings)
            });
            // Given up on: it no longer holds a thread. (Its result is then dropped
            // on this thread, not on an async one.)
            if done2.swap(true, Relaxed) {
                abandoned.fetch_sub(1, Relaxed);
            }
            loaded
        });
        match tokio::time::timeout(bound, task).await {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                Err(Diagnostic::new(&self.config, format!("reload task failed: {e}")).into())
            }
            Err(_) => {
                // Counted before the flag is set, so that the count never goes below 0.
                self.abandoned.fetch_add(1, Relaxed);
                if done.swap(true, Relaxed) {
                    self.abandoned.fetch_sub(1, Relaxed); // it finished meanwhile
                }
                let msg = format!(
                    "reload did not finish within {} (server.reload_timeout): reading config, \
                     zones or GeoIP DB is blocked (a file on a hung network file system?); \
                     the next reload starts afresh",
                    humantime::format_duration(bound)
                );
                Err(Diagnostic::new(&self.config, msg)
                    .key("server.reload_timeout")
                    .into())
            }
        }
    }

    /// Drains or undrains a region by name: `Ok(changed)`.
    pub async fn drain(&self, region: &str, drained: bool) -> Result<bool, DrainError> {
        self.health.drain(region, drained).await
    }

    /// Every region's state, addresses and probe targets, and with `[cluster]` the
    /// peers' state.
    pub async fn regions(&self) -> (Vec<RegionReport>, Option<ClusterReport>) {
        let monitor = self.health.inspect().await;
        let regions = report::regions(&self.snapshot(), monitor.as_ref());
        (regions, monitor.as_ref().and_then(report::cluster))
    }

    /// The version, config load time, each dynamic name's answers per region over the
    /// last minute, and the last state changes (`GET /api/v1/status`).
    pub async fn status(&self) -> StatusReport {
        let monitor = self.health.inspect().await;
        let snap = self.snapshot();
        let totals = self.state.runtime().answers().totals();
        let loaded = *self.config_loaded.lock().unwrap_or_else(|e| e.into_inner());
        StatusReport {
            version: env!("CARGO_PKG_VERSION"),
            started: status::rfc3339(self.started),
            config_loaded: status::rfc3339(loaded),
            traffic: self.traffic.report(Instant::now(), &totals, &snap.model),
            changes: monitor
                .as_ref()
                .map(|m| status::changes(m.changes()))
                .unwrap_or_default(),
        }
    }

    /// Samples the answer counters every [`status::SAMPLE_EVERY`], for the traffic
    /// shares of [`Control::status`]; runs until dropped (the admin API runs it).
    pub async fn sample_traffic(&self) {
        let mut tick = tokio::time::interval(status::SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let totals = self.state.runtime().answers().totals();
            self.traffic.sample(Instant::now(), totals);
        }
    }

    /// This instance's own probe view, as its peers pull it.
    pub async fn health_view(&self) -> Result<View, HealthStopped> {
        let monitor = self.health.inspect().await.ok_or(HealthStopped)?;
        Ok(monitor.view(std::time::SystemTime::now()))
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
