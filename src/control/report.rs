//! What `GET /api/v1/regions` reports: each region's state, its addresses and its probe
//! targets, from the snapshot (what queries see) and the health owner's bookkeeping.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::health::Monitor;
use crate::health::monitor::Target;
use crate::model::RegionId;
use crate::snapshot::Snapshot;

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

/// Every region's report: state and addresses from `snap`, targets from `monitor`.
pub(super) fn regions(snap: &Snapshot, monitor: Option<&Monitor>) -> Vec<RegionReport> {
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

fn target_report(t: &Target) -> TargetReport {
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
