//! Health of every region, as the query path sees it: one flat table inside the
//! snapshot, replaced as a whole when anything changes (RCU, as gdnsd does).
//!
//! ```text
//! prober tasks (probe.rs) ──results──► owner task (service.rs)
//!                                        │  Monitor (monitor.rs): rise/fall per target
//!                                        │  (state.rs), drains, RTT penalties
//!                                        └─► new Health ─► new Snapshot ─► ArcSwap
//! ```
//!
//! Probers share nothing; one owner applies results, drains, reloads and (with
//! `[cluster]`) the peers' views pulled by [`crate::cluster`], and publishes.

pub mod changes;
pub mod monitor;
pub mod probe;
pub mod service;
pub mod state;
pub mod state_file;
pub mod votes;

use crate::model::{Model, Region, RegionId};
use crate::policy::Family;

pub use monitor::Monitor;
pub use service::HealthService;

/// A region name that the config does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no region {name:?} (known: {})", known.join(", "))]
pub struct UnknownRegion {
    /// The name asked for.
    pub name: String,
    /// The regions the config defines.
    pub known: Vec<String>,
}

/// The health owner task is gone (it panicked, or the runtime is shutting down): no
/// drain, reload or health change can take effect any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the health owner task has stopped: health, drains and reloads no longer take effect; restart gslbd"
)]
pub struct HealthStopped;

/// Why a drain or undrain did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    /// No such region.
    #[error(transparent)]
    UnknownRegion(#[from] UnknownRegion),
    /// The health owner is gone.
    #[error(transparent)]
    Stopped(#[from] HealthStopped),
    /// The drain or undrain applies in memory, but `server.state_file` could not be
    /// written: it would not survive a restart.
    #[error(
        "region {region} is {} in memory, but it will not survive a restart: {error}",
        if *drained { "drained" } else { "undrained" }
    )]
    NotSaved {
        /// The region.
        region: String,
        /// Drained (true) or undrained.
        drained: bool,
        /// Whether the state in memory changed.
        changed: bool,
        /// The file and why it could not be written.
        error: state_file::WriteError,
    },
}

/// The health of every region, indexed by [`RegionId`].
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    regions: Vec<RegionHealth>,
}

/// The state of one region.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionHealth {
    /// Probes say the region is up (a region without a probe is always up).
    pub up: bool,
    /// An operator took the region out of every answer.
    pub drained: bool,
    /// How far the region's current probe RTT is above its own recent best, in ms: the
    /// latency policy adds it, so a slowing region loses traffic before it fails.
    pub rtt_penalty_ms: f64,
    /// Per-address state when the probe is per address (`{address}`), IPv4 addresses
    /// first; empty when the region is probed as a whole (every address counts as up).
    pub addr_up: Vec<bool>,
}

impl Default for RegionHealth {
    fn default() -> Self {
        RegionHealth {
            up: true,
            drained: false,
            rtt_penalty_ms: 0.0,
            addr_up: Vec::new(),
        }
    }
}

impl Health {
    /// Every region of `model` up and not drained.
    pub fn all_up(model: &Model) -> Health {
        Health {
            regions: vec![RegionHealth::default(); model.regions.len()],
        }
    }

    /// A table from per-region states (the monitor builds these).
    pub fn from_regions(regions: Vec<RegionHealth>) -> Health {
        Health { regions }
    }

    /// True when the region may be served: up and not drained.
    pub fn usable(&self, id: RegionId) -> bool {
        self.regions
            .get(id.index())
            .is_some_and(|r| r.up && !r.drained)
    }

    /// True when address `index` of the region (IPv4 first, then IPv6) is up.
    pub fn address_up(&self, id: RegionId, index: usize) -> bool {
        self.regions
            .get(id.index())
            .is_none_or(|r| r.addr_up.get(index).copied().unwrap_or(true))
    }

    /// True when the region is usable and has an up address of the family.
    pub fn serves(&self, region: &Region, id: RegionId, family: Family) -> bool {
        if !self.usable(id) {
            return false;
        }
        if region.is_cname() {
            return true;
        }
        let (start, len) = match family {
            Family::V4 => (0, region.v4.len()),
            Family::V6 => (region.v4.len(), region.v6.len()),
        };
        (start..start + len).any(|i| self.address_up(id, i))
    }

    /// The live RTT penalty of a region, ms.
    pub fn rtt_penalty_ms(&self, id: RegionId) -> f64 {
        self.regions
            .get(id.index())
            .map_or(0.0, |r| r.rtt_penalty_ms)
    }

    /// The state of one region.
    pub fn region(&self, id: RegionId) -> Option<&RegionHealth> {
        self.regions.get(id.index())
    }

    /// Sets the state of one region (used by tests).
    pub fn set(&mut self, id: RegionId, state: RegionHealth) {
        if let Some(r) = self.regions.get_mut(id.index()) {
            *r = state;
        }
    }

    /// True when `other` would answer differently: any up, drained or address flag, or
    /// an RTT penalty that moved by more than 1 ms and 10 % (small jitter is not worth a
    /// new snapshot).
    pub fn differs(&self, other: &Health) -> bool {
        self.regions.len() != other.regions.len()
            || self.regions.iter().zip(&other.regions).any(|(a, b)| {
                let (p, q) = (a.rtt_penalty_ms, b.rtt_penalty_ms);
                a.up != b.up
                    || a.drained != b.drained
                    || a.addr_up != b.addr_up
                    || ((p - q).abs() > 1.0 && (p - q).abs() > 0.1 * p.max(q))
            })
    }
}
