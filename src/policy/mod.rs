//! Choosing the region that answers a dynamic name, in three pure steps shared by every
//! policy (after gdnsd): the policy *ranks* the record's candidate regions for this
//! client, health *filters* the ranking (first usable region that has addresses of the
//! asked family), and when nothing is usable `when_all_down` decides. No I/O, no clock,
//! no randomness of its own: the caller passes everything in, so tests are tables.

pub mod failover;

use std::borrow::Cow;
use std::net::IpAddr;

use crate::health::Health;
use crate::model::{DynRecord, Model, Policy, Region, RegionId, WhenAllDown};

/// Address family of the question (A or AAAA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A records.
    V4,
    /// AAAA records.
    V6,
}

/// Who is asking: the ECS subnet when the query carried one, else the source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address the decision is made for (ECS address, already masked, or source).
    pub addr: IpAddr,
    /// The ECS source prefix length, when the address came from ECS.
    pub source_prefix: Option<u8>,
}

/// A policy's ordering of the candidate regions for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking<'a> {
    /// Best first.
    pub order: Cow<'a, [RegionId]>,
    /// How many leading bits of the client address the ranking depended on (the RFC 7871
    /// scope prefix); 0 when it does not depend on the client at all.
    pub scope: u8,
}

/// Which region(s) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The addresses of one region.
    Region(RegionId),
    /// The addresses of every ranked region (`when_all_down = "all"`).
    All,
    /// No answer (no region has addresses of the family, or `when_all_down = "nodata"`).
    Nothing,
}

/// The outcome for one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The policy's ranking.
    pub ranking: Ranking<'a>,
    /// What answers.
    pub pick: Pick,
    /// True when no candidate was usable and `when_all_down` applied.
    pub all_down: bool,
}

/// Ranks `rec`'s candidates for `client` according to its policy.
pub fn rank<'a>(_model: &'a Model, rec: &'a DynRecord, _client: &Client) -> Ranking<'a> {
    match &rec.policy {
        Policy::Failover => Ranking {
            order: failover::rank(rec),
            scope: 0,
        },
        // Geo, latency and weighted need GeoIP and their own rankers (next milestone);
        // until then they rank like failover, and `serve` warns about it at startup.
        Policy::Geo(_) | Policy::Latency | Policy::Weighted { .. } => Ranking {
            order: failover::rank(rec),
            scope: 0,
        },
    }
}

/// Ranks, filters by health and applies `when_all_down`.
pub fn select<'a>(
    model: &'a Model,
    health: &Health,
    rec: &'a DynRecord,
    client: &Client,
    family: Family,
) -> Decision<'a> {
    let ranking = rank(model, rec, client);
    let serves = |id: &RegionId| has_family(model.region(*id), family);
    if let Some(&id) = ranking
        .order
        .iter()
        .find(|id| health.usable(**id) && serves(id))
    {
        return Decision {
            ranking,
            pick: Pick::Region(id),
            all_down: false,
        };
    }
    // Nothing usable has this family. If some candidate is usable (just without this
    // family), the region set is fine and the answer is simply empty.
    let any_usable = ranking.order.iter().any(|id| health.usable(*id));
    let pick = if any_usable {
        Pick::Nothing
    } else {
        match rec.when_all_down {
            // Fail open: serve as if every region were up.
            WhenAllDown::First => match ranking.order.iter().find(|id| serves(id)) {
                Some(&id) => Pick::Region(id),
                None => Pick::Nothing,
            },
            WhenAllDown::All if ranking.order.iter().any(serves) => Pick::All,
            WhenAllDown::All | WhenAllDown::Nodata => Pick::Nothing,
        }
    };
    Decision {
        ranking,
        pick,
        all_down: !any_usable,
    }
}

/// True when the region has at least one address of the family.
pub fn has_family(region: &Region, family: Family) -> bool {
    match family {
        Family::V4 => !region.v4.is_empty(),
        Family::V6 => !region.v6.is_empty(),
    }
}

/// The region's addresses of the family, in config order.
pub fn addresses(region: &Region, family: Family) -> impl Iterator<Item = IpAddr> + '_ {
    let v4 = region.v4.iter().map(|a| IpAddr::V4(*a));
    let v6 = region.v6.iter().map(|a| IpAddr::V6(*a));
    let (v4n, v6n) = match family {
        Family::V4 => (usize::MAX, 0),
        Family::V6 => (0, usize::MAX),
    };
    v4.take(v4n).chain(v6.take(v6n))
}

#[cfg(test)]
mod tests;
