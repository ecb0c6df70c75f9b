//! The health owner task and its probers on the tokio runtime.
//!
//! [`HealthService::start`] runs one round of probes first (bounded by the probes'
//! timeouts) so that a region which is down at start is never served, publishes the
//! resulting snapshot, then keeps one prober task per distinct target, each on its own
//! interval with a random phase so probes spread out. A semaphore bounds how many probes
//! run at once; a hanging endpoint is cut by its own timeout and delays nothing else.
//! Results, drains and reloads reach the single owner over a channel; it applies them,
//! coalesces bursts, and publishes a new snapshot only when an answer would change.
//! With `server.state_file`, the drains read at start are applied before the first
//! publish, and every drain or undrain is written to the file before it is answered.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::probe::Prober;
use super::state::Outcome;
use super::state_file::{self, WriteError};
use super::votes::View;
use super::{DrainError, HealthStopped, Monitor};
use crate::runtime::Shared;
use crate::snapshot::Snapshot;

/// Probes allowed to run at the same time.
const MAX_CONCURRENT_PROBES: usize = 64;

enum Event {
    Result {
        generation: u64,
        target: usize,
        outcome: Outcome,
        rtt: Duration,
    },
    Drain {
        region: String,
        drained: bool,
        reply: oneshot::Sender<Result<bool, DrainError>>,
    },
    Reload {
        snapshot: Snapshot,
        reply: oneshot::Sender<()>,
    },
    Inspect {
        reply: oneshot::Sender<Monitor>,
    },
    /// The current config's zones and dynamic answers signed again (DNSSEC renewal).
    Resigned {
        snapshot: Snapshot,
    },
    Peer {
        url: String,
        view: Result<View, String>,
        at: std::time::Instant,
    },
    Stop,
}

/// A handle on the running health owner.
#[derive(Debug, Clone)]
pub struct HealthService {
    tx: mpsc::Sender<Event>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Event")
    }
}

impl HealthService {
    /// Drains the regions named in `drained` (read from `server.state_file`), probes
    /// every target once, publishes the health found, then starts the probers and the
    /// owner task in the background.
    pub async fn start(state: Shared, drained: Vec<String>) -> HealthService {
        // reqwest is built without a default TLS provider: install ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let snap = state.snapshot();
        let mut monitor = Monitor::new(snap.model.clone());
        restore(&mut monitor, &drained);
        let sem = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
        let probers = build_probers(&monitor, snap.model.server.probe_source);
        cold_start(&mut monitor, &probers, &sem).await;
        publish(&state, &monitor, None);
        let (tx, rx) = mpsc::channel(1024);
        let service = HealthService { tx: tx.clone() };
        if state.snapshot().signing.is_some() {
            tokio::spawn(renew_signatures(state.clone(), tx.clone()));
        }
        tokio::spawn(owner(state, monitor, probers, rx, tx, sem));
        service
    }

    /// Drains (takes out of every answer) or undrains a region by name, and writes the
    /// drains to `server.state_file` when it is set. `Ok(changed)`; `Err` names the
    /// unknown region, or the state file that could not be written (the change applies
    /// in memory all the same).
    pub async fn drain(&self, region: &str, drained: bool) -> Result<bool, DrainError> {
        let (reply, rx) = oneshot::channel();
        let ev = Event::Drain {
            region: region.to_string(),
            drained,
            reply,
        };
        self.tx.send(ev).await.map_err(|_| HealthStopped)?;
        rx.await.map_err(|_| HealthStopped)?
    }

    /// Switches to a newly loaded snapshot (config, zones, GeoIP), keeping the state of
    /// every probe target that is unchanged and every drain; returns once it is
    /// published, or fails when the owner is gone.
    pub async fn reload(&self, snapshot: Snapshot) -> Result<(), HealthStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Event::Reload { snapshot, reply })
            .await
            .map_err(|_| HealthStopped)?;
        rx.await.map_err(|_| HealthStopped)
    }

    /// Hands over a peer's view pulled at `at` (or why it could not be pulled).
    pub async fn peer_view(
        &self,
        url: String,
        view: Result<View, String>,
        at: std::time::Instant,
    ) -> Result<(), HealthStopped> {
        let ev = Event::Peer { url, view, at };
        self.tx.send(ev).await.map_err(|_| HealthStopped)
    }

    /// Stops the probers and the owner (a server that stops in-process must not leave
    /// them probing). Later calls on this handle fail with [`HealthStopped`].
    pub async fn stop(&self) {
        let _ = self.tx.send(Event::Stop).await;
    }

    /// A copy of the owner's bookkeeping (targets, states, drains), for reports.
    pub async fn inspect(&self) -> Option<Monitor> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Event::Inspect { reply }).await.ok()?;
        rx.await.ok()
    }
}

/// One prober per target, each sending from `source` (`server.probe_source`) when set.
fn build_probers(monitor: &Monitor, source: Option<std::net::IpAddr>) -> Vec<Option<Prober>> {
    if let Some(ip) = source.filter(|_| !monitor.targets().is_empty()) {
        // Said once here; each failed probe also names it as its reason.
        if let Err(e) = std::net::UdpSocket::bind((ip, 0)) {
            tracing::warn!(
                "server.probe_source {ip} cannot be used ({e}): every probe will fail until it is an address of this machine"
            );
        }
    }
    monitor
        .targets()
        .iter()
        .map(|t| match Prober::new(t.spec.clone(), source) {
            Ok(p) => Some(p),
            Err(e) => {
                // Cannot happen short of a broken TLS backend; the target stays "no result".
                error!("{e}");
                None
            }
        })
        .collect()
}

/// One round of probes, concurrently; each is bounded by its own timeout.
async fn cold_start(monitor: &mut Monitor, probers: &[Option<Prober>], sem: &Arc<Semaphore>) {
    if probers.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let mut round = JoinSet::new();
    for (i, p) in probers.iter().enumerate() {
        let Some(p) = p.clone() else { continue };
        let sem = sem.clone();
        round.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let (outcome, rtt) = p.probe().await;
            (i, outcome, rtt)
        });
    }
    while let Some(Ok((i, outcome, rtt))) = round.join_next().await {
        monitor.apply(i, outcome, rtt, SystemTime::now());
    }
    let up = monitor.targets().iter().filter(|t| t.state.up).count();
    info!(
        "first probe round: {up} of {} targets up ({} ms)",
        monitor.targets().len(),
        started.elapsed().as_millis()
    );
}

async fn owner(
    state: Shared,
    mut monitor: Monitor,
    mut probers: Vec<Option<Prober>>,
    mut rx: mpsc::Receiver<Event>,
    tx: mpsc::Sender<Event>,
    sem: Arc<Semaphore>,
) {
    let mut generation = 0u64;
    let mut tasks = spawn_probers(&probers, generation, &tx, &sem);
    while let Some(first) = rx.recv().await {
        let mut pending = Some(first);
        // Drain replies wait until the change is published, so that a caller that got
        // its answer already sees the new state in DNS.
        let mut drain_replies = Vec::new();
        // Apply everything already queued before publishing: one swap per burst.
        while let Some(ev) = pending.take().or_else(|| rx.try_recv().ok()) {
            match ev {
                Event::Result {
                    generation: g,
                    target,
                    outcome,
                    rtt,
                } if g == generation => {
                    monitor.apply(target, outcome, rtt, SystemTime::now());
                }
                Event::Result { .. } => {} // from probers of a config since replaced
                Event::Drain {
                    region,
                    drained,
                    reply,
                } => {
                    let result = monitor.set_drained(&region, drained);
                    drain_replies.push((reply, region, drained, result));
                }
                Event::Reload { snapshot, reply } => {
                    let mut next = Monitor::new(snapshot.model.clone());
                    next.carry_over(&monitor);
                    let file = |m: &Monitor| m.model().server.state_file.clone();
                    let moved = file(&next) != file(&monitor);
                    if moved || next.drained_names() != monitor.drained_names() {
                        match file(&next) {
                            Some(path) if moved => {
                                info!("drains are now kept in {}", path.display());
                            }
                            None if moved => info!(
                                "server.state_file removed: drains are no longer kept across restarts"
                            ),
                            _ => {}
                        }
                        // A failure is logged; the next drain reports it to its caller.
                        let _ = save(&next).await;
                    }
                    monitor = next;
                    tasks.abort_all();
                    generation += 1;
                    probers = build_probers(&monitor, snapshot.model.server.probe_source);
                    tasks = spawn_probers(&probers, generation, &tx, &sem);
                    publish_reload(&state, &monitor, snapshot).await;
                    let _ = reply.send(());
                }
                Event::Inspect { reply } => {
                    let _ = reply.send(monitor.clone());
                }
                // Signed for the config still served (a reload in between signed anew).
                Event::Resigned { snapshot } if Arc::ptr_eq(&snapshot.model, monitor.model()) => {
                    publish(&state, &monitor, Some(snapshot));
                }
                Event::Resigned { .. } => {}
                Event::Peer { url, view, at } => monitor.peer_view(&url, view, at),
                Event::Stop => {
                    tasks.abort_all();
                    return;
                }
            }
        }
        // Written before the callers hear back: an answered drain survives a restart.
        let any = drain_replies.iter().any(|(_, _, _, r)| r.is_ok());
        let saved = if any { save(&monitor).await } else { Ok(()) };
        publish(&state, &monitor, None);
        for (reply, region, drained, result) in drain_replies {
            let result = match (result, &saved) {
                (Ok(changed), Err(error)) => Err(DrainError::NotSaved {
                    region,
                    drained,
                    changed,
                    error: error.clone(),
                }),
                (result, _) => result.map_err(DrainError::from),
            };
            let _ = reply.send(result);
        }
    }
}

/// How often the DNSSEC renewer looks at the signatures' age.
const RENEW_CHECK: Duration = Duration::from_secs(60);

/// With `[dnssec]`: signs every zone and dynamic answer again once the signatures are
/// halfway through their validity, off the async threads, and hands the result to the
/// owner (no restart, no reload). Ends with the owner.
async fn renew_signatures(state: Shared, tx: mpsc::Sender<Event>) {
    loop {
        let snap = state.snapshot();
        let due = snap
            .signing
            .as_ref()
            .is_some_and(|s| s.epoch.due(SystemTime::now()));
        if due {
            let started = std::time::Instant::now();
            let signed = tokio::task::spawn_blocking(move || snap.resigned(SystemTime::now()))
                .await
                .ok()
                .flatten();
            if let Some(snapshot) = signed {
                let epoch = snapshot.signing.as_ref().map(|s| s.epoch);
                info!(
                    ms = started.elapsed().as_millis() as u64,
                    expiration = epoch.map_or(0, |e| e.expiration),
                    "DNSSEC signatures renewed"
                );
                if tx.send(Event::Resigned { snapshot }).await.is_err() {
                    return;
                }
            }
        } else {
            drop(snap);
        }
        tokio::time::sleep(RENEW_CHECK).await;
        if tx.is_closed() {
            return;
        }
    }
}

fn spawn_probers(
    probers: &[Option<Prober>],
    generation: u64,
    tx: &mpsc::Sender<Event>,
    sem: &Arc<Semaphore>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (target, p) in probers.iter().enumerate() {
        let Some(p) = p.clone() else { continue };
        let (tx, sem) = (tx.clone(), sem.clone());
        tasks.spawn(async move {
            let interval = p.spec().timing.interval;
            let mut next = Instant::now() + phase(interval);
            loop {
                tokio::time::sleep_until(next).await;
                let (outcome, rtt) = {
                    let _permit = sem.acquire().await;
                    p.probe().await
                };
                if tx
                    .send(Event::Result {
                        generation,
                        target,
                        outcome,
                        rtt,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                next += interval;
                // After a stall, skip the missed ticks instead of probing in a burst.
                let now = Instant::now();
                if next < now {
                    next = now + interval;
                }
            }
        });
    }
    tasks
}

/// Drains the regions named in the state file (`drained`) before anything is
/// published; names the config no longer defines are warned about once and ignored
/// (the next write of the file drops them).
fn restore(monitor: &mut Monitor, drained: &[String]) {
    let Some(file) = monitor.model().server.state_file.clone() else {
        return;
    };
    let mut unknown = Vec::new();
    for name in drained {
        if monitor.set_drained(name, true).is_err() && !unknown.contains(name) {
            unknown.push(name.clone());
        }
    }
    if !unknown.is_empty() {
        warn!(
            "state file {}: drained region(s) {} no longer in the config: ignored, and dropped from the file at its next write",
            file.display(),
            unknown.join(", ")
        );
    }
    let restored = monitor.drained_names();
    if !restored.is_empty() {
        info!(
            "state file {}: kept drained: {}",
            file.display(),
            restored.join(", ")
        );
    }
}

/// Writes the monitor's drains to `server.state_file`, when it is set, off the async
/// threads; a failure is logged here (with the file and the cause) and returned.
async fn save(monitor: &Monitor) -> Result<(), WriteError> {
    let Some(path) = monitor.model().server.state_file.clone() else {
        return Ok(());
    };
    let drained = monitor.drained_names();
    let file = path.clone();
    let result = tokio::task::spawn_blocking(move || state_file::write(&path, &drained))
        .await
        .unwrap_or_else(|e| {
            Err(WriteError {
                file,
                cause: format!("the writing task failed: {e}"),
            })
        });
    if let Err(e) = &result {
        error!("{e}: drains apply in memory but will not survive a restart");
    }
    result
}

/// A random offset in [0, interval), so targets do not all probe at the same instant.
fn phase(interval: Duration) -> Duration {
    let r = RandomState::new().build_hasher().finish();
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(r % nanos)
}

/// Installs a reloaded config with the monitor's health. On a blocking thread: laying out
/// the answer counters of a large config and freeing the old one take long enough to
/// hold up the queries an async worker thread would otherwise answer meanwhile. The
/// owner waits for it, so it stays the one writer.
async fn publish_reload(state: &Shared, monitor: &Monitor, snapshot: Snapshot) {
    let (state, health) = (state.clone(), monitor.health());
    let install = move || {
        state.install(Snapshot {
            health: Arc::new(health),
            ..snapshot
        });
        // The old config was freed here: give its heap back, not just to malloc.
        crate::snapshot::release_free_heap();
    };
    if let Err(e) = tokio::task::spawn_blocking(install).await {
        error!("installing the reloaded config failed: {e}");
    }
}

/// Publishes the monitor's health (with a new config when reloading) if it changes
/// anything a query would see.
fn publish(state: &Shared, monitor: &Monitor, replacement: Option<Snapshot>) {
    let health = monitor.health();
    match replacement {
        Some(s) => state.install(Snapshot {
            health: Arc::new(health),
            ..s
        }),
        None => {
            state.set_health(health);
        }
    }
}
