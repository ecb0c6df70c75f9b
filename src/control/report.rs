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
    /// Its addresses and whether each is served (none for a `cname` region).
    pub addresses: Vec<AddressReport>,
    /// The name it is answered with, for a `cname` region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
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
    /// Current state, by this instance's own probes.
    pub up: bool,
    /// The state the answers follow: `up`, or with `[cluster]` the quorum's verdict.
    pub decided_up: bool,
    /// With `[cluster]`: each peer's vote on this target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<VoteReport>,
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

/// One peer's vote on a target.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VoteReport {
    /// The peer's admin API URL.
    pub peer: String,
    /// `up` or `down` from its fresh view; `none` when its view is stale, missing, or
    /// does not name the target.
    pub vote: &'static str,
    /// Age of its latest view, ms.
    pub view_age_ms: Option<u64>,
}

/// The cluster, as `GET /api/v1/regions` reports it (with `[cluster]`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterReport {
    /// Down-votes that take a target down.
    pub quorum: usize,
    /// Too few fresh views for the quorum: health is decided from this instance's own
    /// probes.
    pub deciding_alone: bool,
    /// Each peer.
    pub peers: Vec<PeerReport>,
}

/// One peer of the cluster.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerReport {
    /// Its admin API URL.
    pub url: String,
    /// Its latest view is fresh (younger than three pull intervals).
    pub fresh: bool,
    /// Age of its latest view, ms.
    pub view_age_ms: Option<u64>,
    /// Why the latest pull failed, if it did.
    pub error: Option<String>,
}

/// The cluster's report, when the monitor has `[cluster]`.
pub(super) fn cluster(monitor: &Monitor) -> Option<ClusterReport> {
    let peers = monitor.peers()?;
    Some(ClusterReport {
        quorum: peers.quorum,
        deciding_alone: monitor.deciding_alone(),
        peers: peers
            .peers
            .iter()
            .map(|p| PeerReport {
                url: p.url.clone(),
                fresh: peers.fresh(p),
                view_age_ms: peers.age(p).map(|a| a.as_millis() as u64),
                error: p.error.clone(),
            })
            .collect(),
    })
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
                .map(|(m, mid)| m.region_targets(mid).map(|t| target_report(m, t)).collect())
                .unwrap_or_default();
            RegionReport {
                name: region.name.clone(),
                state: state.into(),
                up: h.up,
                drained: h.drained,
                rtt_penalty_ms: h.rtt_penalty_ms,
                addresses,
                cname: region.cname.as_ref().map(ToString::to_string),
                targets,
            }
        })
        .collect()
}

fn target_report(m: &Monitor, t: &Target) -> TargetReport {
    let time = |s: SystemTime| humantime::format_rfc3339_millis(s).to_string();
    let votes = m
        .peers()
        .map(|peers| {
            peers
                .peers
                .iter()
                .map(|p| VoteReport {
                    peer: p.url.clone(),
                    vote: match peers.vote(p, &t.key) {
                        Some(true) => "up",
                        Some(false) => "down",
                        None => "none",
                    },
                    view_age_ms: peers.age(p).map(|a| a.as_millis() as u64),
                })
                .collect()
        })
        .unwrap_or_default();
    TargetReport {
        target: t.spec.to_string(),
        up: t.state.up,
        decided_up: t.decided,
        votes,
        probed: t.state.known,
        last_result: t.state.last.as_ref().map(|(o, _)| o.to_string()),
        last_probe: t.state.last.as_ref().map(|(_, at)| time(*at)),
        last_change: t.state.last_change.map(time),
        srtt_ms: t.state.srtt_ms,
        min_rtt_ms: t.state.min_rtt_ms(),
    }
}
