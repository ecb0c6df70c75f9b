//! The owner's bookkeeping, without I/O: the distinct probe targets of a model, the
//! rise/fall state of each, the peers' views when the instance is part of a cluster
//! ([`votes`](super::votes)), manual drains, and the [`Health`] table they add up to.
//! Every state change is logged here once, with its reason, and kept in [`Changes`] for
//! the status page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

use super::changes::{Change, Changes};
use super::probe::{self, TargetSpec};
use super::state::{Outcome, TargetState, Transition};
use super::votes::{self, Peers, Tally, TargetView, View};
use super::{Health, RegionHealth, UnknownRegion};
use crate::model::{Model, RegionId};

/// Targets, their states and drains for one model.
#[derive(Debug, Clone)]
pub struct Monitor {
    model: Arc<Model>,
    targets: Vec<Target>,
    /// Per region: its targets (one for the region, or one per address).
    region_targets: Vec<Vec<usize>>,
    drained: Vec<bool>,
    /// The peers' views, with `[cluster]`.
    peers: Option<Peers>,
    /// Too few fresh views for the quorum (logged once per change).
    alone: bool,
    /// The last state changes.
    changes: Changes,
}

/// One distinct probe target and its state.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is probed.
    pub spec: TargetSpec,
    /// Its rise/fall state and RTT statistics.
    pub state: TargetState,
    /// The regions that use it (for logs and the admin API).
    pub regions: Vec<RegionId>,
    /// Results and probe durations so far, for metrics.
    pub stats: TargetStats,
    /// Its key in views shared with peers ([`votes::key`]).
    pub key: String,
    /// Up as decided: its own state, or with `[cluster]` the quorum's verdict.
    pub decided: bool,
    /// The votes behind `decided` (with `[cluster]`).
    pub tally: Tally,
}

/// Probe results of one target by kind, and their durations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetStats {
    /// Count per [`TargetStats::KINDS`] entry.
    pub results: [u64; 6],
    /// Sum of probe durations, seconds.
    pub duration_sum: f64,
    /// Number of probes.
    pub count: u64,
}

impl TargetStats {
    /// Result kinds, as metric labels.
    pub const KINDS: [&'static str; 6] = ["ok", "status", "body", "timeout", "refused", "error"];

    fn record(&mut self, outcome: &Outcome, rtt: Duration) {
        let kind = match outcome {
            Outcome::Ok => 0,
            Outcome::Status(_) => 1,
            Outcome::BodyMismatch => 2,
            Outcome::Timeout => 3,
            Outcome::Refused => 4,
            Outcome::Error(_) => 5,
        };
        self.results[kind] += 1;
        self.duration_sum += rtt.as_secs_f64();
        self.count += 1;
    }
}

impl Monitor {
    /// The targets of `model`, all up with no result yet, nothing drained.
    pub fn new(model: Arc<Model>) -> Monitor {
        let mut targets: Vec<Target> = Vec::new();
        let mut index: HashMap<TargetSpec, usize> = HashMap::new();
        let mut region_targets = Vec::with_capacity(model.regions.len());
        for (i, region) in model.regions.iter().enumerate() {
            let id = RegionId(i as u16);
            let mut mine = Vec::new();
            for spec in probe::region_targets(region) {
                let t = *index.entry(spec.clone()).or_insert_with(|| {
                    targets.push(Target {
                        key: votes::key(&spec),
                        spec,
                        state: TargetState::default(),
                        regions: Vec::new(),
                        stats: TargetStats::default(),
                        decided: true,
                        tally: Tally::default(),
                    });
                    targets.len() - 1
                });
                if !targets[t].regions.contains(&id) {
                    targets[t].regions.push(id);
                }
                mine.push(t);
            }
            region_targets.push(mine);
        }
        let drained = vec![false; model.regions.len()];
        let peers = model.cluster.as_ref().map(Peers::new);
        Monitor {
            model,
            targets,
            region_targets,
            drained,
            alone: peers.is_some(),
            peers,
            changes: Changes::default(),
        }
    }

    /// The peers' views, with `[cluster]`.
    pub fn peers(&self) -> Option<&Peers> {
        self.peers.as_ref()
    }

    /// This instance's own view of every target, made at `now`, for its peers.
    pub fn view(&self, now: SystemTime) -> View {
        let time = |s: SystemTime| humantime::format_rfc3339_millis(s).to_string();
        View {
            made_ms: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            targets: self
                .targets
                .iter()
                .map(|t| TargetView {
                    key: t.key.clone(),
                    target: t.spec.to_string(),
                    up: t.state.up,
                    known: t.state.known,
                    since: t.state.last_change.map(time),
                    last_result: t.state.last.as_ref().map(|(o, _)| o.to_string()),
                })
                .collect(),
        }
    }

    /// Records a peer's view (or why it could not be pulled) at `now`, and decides every
    /// target again.
    pub fn peer_view(&mut self, url: &str, view: Result<View, String>, now: Instant) {
        let Some(peers) = self.peers.as_mut() else {
            return;
        };
        if !peers.record(url, view, now) {
            return;
        }
        let alone = peers.alone();
        let at = SystemTime::now();
        if alone != self.alone {
            self.alone = alone;
            let fresh = peers.peers.iter().filter(|p| peers.fresh(p)).count();
            self.changes.push(Change {
                at,
                kind: "cluster",
                subject: "cluster".into(),
                from: if alone { "quorum" } else { "alone" },
                to: if alone { "alone" } else { "quorum" },
                reason: format!("{fresh} fresh peer view(s), quorum {}", peers.quorum),
            });
            if alone {
                warn!(
                    fresh_peers = fresh,
                    quorum = peers.quorum,
                    "cluster: too few fresh peer views for the quorum: deciding health from this instance's own probes"
                );
            } else {
                info!(
                    fresh_peers = fresh,
                    quorum = peers.quorum,
                    "cluster: enough fresh peer views again: health decided by quorum"
                );
            }
        }
        let before = self.region_up_all();
        self.redecide(&before, "peer views", at);
    }

    /// True while too few peers' views are fresh for the quorum (always false without
    /// `[cluster]`).
    pub fn deciding_alone(&self) -> bool {
        self.peers.is_some() && self.alone
    }

    /// The last state changes.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The model this monitor watches.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The distinct targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The targets of one region (one, or one per address in address order).
    pub fn region_targets(&self, id: RegionId) -> impl Iterator<Item = &Target> {
        self.region_targets
            .get(id.index())
            .into_iter()
            .flatten()
            .map(|t| &self.targets[*t])
    }

    /// True when an operator drained the region.
    pub fn is_drained(&self, id: RegionId) -> bool {
        self.drained.get(id.index()).copied().unwrap_or(false)
    }

    /// The names of the drained regions, in config order (what `server.state_file` keeps).
    pub fn drained_names(&self) -> Vec<String> {
        let drained = self.model.regions.iter().zip(&self.drained);
        drained
            .filter(|(_, d)| **d)
            .map(|(r, _)| r.name.clone())
            .collect()
    }

    /// Takes over the state of every target that `old` also probes, and the drains of
    /// regions of the same name: a reload must not forget what probes have learnt, nor
    /// undo an operator's drain.
    pub fn carry_over(&mut self, old: &Monitor) {
        let by_spec: HashMap<&TargetSpec, &Target> =
            old.targets.iter().map(|t| (&t.spec, t)).collect();
        for t in &mut self.targets {
            if let Some(o) = by_spec.get(&t.spec) {
                t.state = o.state.clone();
                t.stats = o.stats.clone();
                t.decided = o.decided;
                t.tally = o.tally;
            }
        }
        if let (Some(new), Some(old)) = (self.peers.as_mut(), old.peers.as_ref()) {
            new.carry_over(old);
            self.alone = new.alone();
        }
        self.changes = old.changes.clone();
        let before = self.region_up_all();
        self.redecide(&before, "reload", SystemTime::now());
        for (i, region) in self.model.regions.iter().enumerate() {
            if let Some(j) = old.model.region_id(&region.name) {
                self.drained[i] = old.drained[j.index()];
            }
        }
    }

    /// Applies one probe result and logs target and region transitions.
    pub fn apply(
        &mut self,
        target: usize,
        outcome: Outcome,
        rtt: Duration,
        now: SystemTime,
    ) -> Option<Transition> {
        let before: Vec<bool> = self.region_up_all();
        let t = self.targets.get_mut(target)?;
        t.stats.record(&outcome, rtt);
        let timing = t.spec.timing;
        let transition = t.state.apply(outcome, rtt, timing.rise, timing.fall, now)?;
        let names: Vec<&str> = t
            .regions
            .iter()
            .map(|r| self.model.region(*r).name.as_str())
            .collect();
        info!(
            target = %t.spec,
            regions = %names.join(","),
            from = updown(transition.from),
            to = updown(transition.to),
            reason = %transition.reason,
            "probe target {}", updown(transition.to)
        );
        let reason = transition.reason.to_string();
        self.changes.push(Change {
            at: now,
            kind: "target",
            subject: t.spec.to_string(),
            from: updown(transition.from),
            to: updown(transition.to),
            reason: reason.clone(),
        });
        self.redecide(&before, &reason, now);
        Some(transition)
    }

    /// Decides every target from its own state (and with `[cluster]`, the peers' fresh
    /// votes), and logs each change of a decided target or of a region (`before`: the
    /// regions' states before) once, and keeps it as happened `at`.
    fn redecide(&mut self, before: &[bool], reason: &str, at: SystemTime) {
        for t in &mut self.targets {
            let (up, tally) = match &self.peers {
                Some(p) => p.decide(&t.key, t.state.up),
                None => (t.state.up, Tally::default()),
            };
            if self.peers.is_some() && up != t.decided {
                self.changes.push(Change {
                    at,
                    kind: "target",
                    subject: t.spec.to_string(),
                    from: updown(t.decided),
                    to: updown(up),
                    reason: if tally.alone {
                        format!(
                            "too few fresh views ({}) for the quorum: this instance's own probe decides",
                            tally.views
                        )
                    } else {
                        format!(
                            "{} of {} fresh views say down (quorum {})",
                            tally.down,
                            tally.views,
                            self.peers.as_ref().map_or(1, |p| p.quorum)
                        )
                    },
                });
                info!(
                    target = %t.spec,
                    from = updown(t.decided),
                    to = updown(up),
                    down_votes = tally.down,
                    views = tally.views,
                    alone = tally.alone,
                    "probe target decided {}: {} of {} fresh views say down (quorum {})",
                    updown(up),
                    tally.down,
                    tally.views,
                    self.peers.as_ref().map_or(1, |p| p.quorum)
                );
            }
            t.decided = up;
            t.tally = tally;
        }
        for (i, (was, is)) in before.iter().zip(self.region_up_all()).enumerate() {
            if *was != is {
                let region = &self.model.regions[i];
                let (up, total) = self.region_counts(i);
                self.changes.push(Change {
                    at,
                    kind: "region",
                    subject: region.name.clone(),
                    from: updown(*was),
                    to: updown(is),
                    reason: format!("{reason} ({up} of {total} probe targets up)"),
                });
                info!(
                    region = %region.name,
                    from = updown(*was),
                    to = updown(is),
                    reason = %reason,
                    "region {} is {} ({up} of {total} probe targets up)",
                    region.name,
                    updown(is)
                );
            }
        }
    }

    /// Drains or undrains the region called `name`; `Err` when there is none. Returns
    /// whether anything changed.
    pub fn set_drained(&mut self, name: &str, drained: bool) -> Result<bool, UnknownRegion> {
        let Some(id) = self.model.region_id(name) else {
            return Err(UnknownRegion {
                name: name.to_string(),
                known: self.model.regions.iter().map(|r| r.name.clone()).collect(),
            });
        };
        let changed = self.drained[id.index()] != drained;
        if changed {
            self.drained[id.index()] = drained;
            let (from, to) = if drained {
                ("undrained", "drained")
            } else {
                ("drained", "undrained")
            };
            self.changes.push(Change {
                at: SystemTime::now(),
                kind: "drain",
                subject: name.to_string(),
                from,
                to,
                reason: "operator".into(),
            });
            info!(region = %name, "region {name} {}", if drained { "drained" } else { "undrained" });
        }
        Ok(changed)
    }

    /// The health table for the query path.
    pub fn health(&self) -> Health {
        let regions = (0..self.model.regions.len())
            .map(|i| {
                let targets = &self.region_targets[i];
                let up = self.region_up(i);
                // The best RTT penalty among the region's up targets.
                let penalty = targets
                    .iter()
                    .filter(|t| self.targets[**t].decided)
                    .map(|t| self.targets[*t].state.rtt_penalty_ms())
                    .reduce(f64::min)
                    .unwrap_or(0.0);
                RegionHealth {
                    up,
                    drained: self.drained[i],
                    rtt_penalty_ms: penalty,
                    addr_up: if self.is_templated(i) {
                        targets.iter().map(|t| self.targets[*t].decided).collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        Health::from_regions(regions)
    }

    fn is_templated(&self, region: usize) -> bool {
        self.model.regions[region]
            .probe
            .as_ref()
            .is_some_and(|p| match &p.target {
                crate::model::ProbeTarget::Http { url, .. } => url.contains("{address}"),
                crate::model::ProbeTarget::Tcp { addr } => addr.contains("{address}"),
            })
    }

    /// (targets up, targets) of a region.
    fn region_counts(&self, region: usize) -> (usize, usize) {
        let targets = &self.region_targets[region];
        let up = targets.iter().filter(|t| self.targets[**t].decided).count();
        (up, targets.len())
    }

    /// Up by probes: no probe, or at least `min_healthy` of its per-address targets, or
    /// its single target.
    fn region_up(&self, region: usize) -> bool {
        let (up, total) = self.region_counts(region);
        if total == 0 {
            return true;
        }
        let need = match &self.model.regions[region].probe {
            Some(p) if self.is_templated(region) => p.min_healthy as usize,
            _ => 1,
        };
        up >= need.clamp(1, total)
    }

    fn region_up_all(&self) -> Vec<bool> {
        (0..self.model.regions.len())
            .map(|i| self.region_up(i))
            .collect()
    }
}

fn updown(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn model(text: &str) -> Arc<Model> {
        Arc::new(
            crate::config::parse(text, Path::new("gslb.toml")).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    const REGIONS: &str = r#"
[regions.a]
addresses = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
probe = { url = "http://{address}:80/health", min_healthy = 2 }
[regions.b]
addresses = ["192.0.2.9"]
probe = { url = "http://127.0.0.1:9000/health" }
[regions.c]
addresses = ["192.0.2.10"]
probe = { url = "http://127.0.0.1:9000/health" }
[regions.d]
addresses = ["192.0.2.11"]
"#;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    const RTT: Duration = Duration::from_millis(5);

    fn fail(m: &mut Monitor, t: usize) {
        m.apply(t, Outcome::Status(503), RTT, T0);
    }

    #[test]
    fn identical_probes_share_one_target_and_per_address_probes_expand() {
        let m = Monitor::new(model(REGIONS));
        let specs: Vec<String> = m.targets().iter().map(|t| t.spec.to_string()).collect();
        assert_eq!(
            specs,
            [
                "GET http://192.0.2.1:80/health",
                "GET http://192.0.2.2:80/health",
                "GET http://[2001:db8::1]:80/health",
                "GET http://127.0.0.1:9000/health",
            ]
        );
        assert_eq!(m.targets()[3].regions, [RegionId(1), RegionId(2)]);
        // Nothing probed yet: everything up.
        let h = m.health();
        assert!((0..4).all(|i| h.usable(RegionId(i))));
    }

    #[test]
    fn min_healthy_and_per_address_state() {
        let mut m = Monitor::new(model(REGIONS));
        fail(&mut m, 0); // first result: down at once
        let h = m.health();
        let a = h.region(RegionId(0)).unwrap();
        assert_eq!(a.addr_up, [false, true, true]);
        assert!(a.up, "2 of 3 addresses up, min_healthy = 2");
        fail(&mut m, 2);
        assert!(!m.health().usable(RegionId(0)), "1 of 3 < min_healthy");
        // The shared target takes both b and c down; d has no probe.
        fail(&mut m, 3);
        let h = m.health();
        assert!(!h.usable(RegionId(1)) && !h.usable(RegionId(2)) && h.usable(RegionId(3)));
    }

    #[test]
    fn drains_and_reload_carry_over() {
        let mut m = Monitor::new(model(REGIONS));
        fail(&mut m, 3);
        assert_eq!(m.set_drained("d", true), Ok(true));
        assert_eq!(m.set_drained("d", true), Ok(false));
        assert!(
            m.set_drained("zz", true)
                .unwrap_err()
                .to_string()
                .contains("known: a, b, c, d")
        );
        assert!(!m.health().usable(RegionId(3)));
        // A reload that reorders regions and changes a's probe: b/c's target keeps its
        // state, a's new targets start fresh, d stays drained.
        let next_text = REGIONS.replace("{address}:80", "{address}:81").replace(
            "[regions.d]",
            "[regions.e]\naddresses = [\"192.0.2.12\"]\n[regions.d]",
        );
        let mut next = Monitor::new(model(&next_text));
        next.carry_over(&m);
        let shared = next
            .targets()
            .iter()
            .find(|t| t.spec.to_string() == "GET http://127.0.0.1:9000/health")
            .unwrap();
        assert!(!shared.state.up && shared.state.known);
        assert!(
            next.targets()
                .iter()
                .filter(|t| t.spec.to_string().contains(":81"))
                .all(|t| !t.state.known)
        );
        let d = next.model().region_id("d").unwrap();
        assert!(!next.health().usable(d), "drain survives the reload");
        assert!(next.health().usable(next.model().region_id("e").unwrap()));
    }

    #[test]
    fn state_changes_are_kept_with_their_reason_across_reloads() {
        let mut m = Monitor::new(model(REGIONS));
        fail(&mut m, 3);
        m.set_drained("d", true).unwrap();
        let seen = |m: &Monitor| -> Vec<String> {
            m.changes()
                .newest_first()
                .map(|c| format!("{} {} {}->{} {}", c.kind, c.subject, c.from, c.to, c.reason))
                .collect()
        };
        let want = [
            "drain d undrained->drained operator",
            "region c up->down status 503 (0 of 1 probe targets up)",
            "region b up->down status 503 (0 of 1 probe targets up)",
            "target GET http://127.0.0.1:9000/health up->down status 503",
        ];
        assert_eq!(seen(&m), want);
        assert_eq!(m.changes().newest_first().last().unwrap().at, T0);
        let mut next = Monitor::new(model(REGIONS));
        next.carry_over(&m);
        assert_eq!(seen(&next), want, "a reload keeps the changes");
    }
}
