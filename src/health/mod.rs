//! Health of every region, as the query path sees it: one flat table inside the
//! snapshot, replaced as a whole when anything changes.
//!
//! Until probing lands every region is up; the table already carries the manual drain
//! flag so that policies filter on one notion of "usable".

use crate::model::{Model, RegionId};

/// The health of every region, indexed by [`RegionId`].
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    regions: Vec<RegionHealth>,
}

/// The state of one region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionHealth {
    /// Probes say the region is up (a region without a probe is always up).
    pub up: bool,
    /// An operator took the region out of every answer.
    pub drained: bool,
    /// How far the region's current probe RTT is above its own recent best, in ms: the
    /// latency policy adds it, so a slowing region loses traffic before it fails. Stays
    /// 0 until probing measures RTTs.
    pub rtt_penalty_ms: f64,
}

impl Default for RegionHealth {
    fn default() -> Self {
        RegionHealth {
            up: true,
            drained: false,
            rtt_penalty_ms: 0.0,
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

    /// True when the region may be served.
    pub fn usable(&self, id: RegionId) -> bool {
        self.regions
            .get(id.index())
            .is_some_and(|r| r.up && !r.drained)
    }

    /// The live RTT penalty of a region, ms.
    pub fn rtt_penalty_ms(&self, id: RegionId) -> f64 {
        self.regions
            .get(id.index())
            .map_or(0.0, |r| r.rtt_penalty_ms)
    }

    /// The state of one region.
    pub fn region(&self, id: RegionId) -> Option<RegionHealth> {
        self.regions.get(id.index()).copied()
    }

    /// Sets the state of one region (used by the health owner and by tests).
    pub fn set(&mut self, id: RegionId, state: RegionHealth) {
        if let Some(r) = self.regions.get_mut(id.index()) {
            *r = state;
        }
    }
}
