//! Choosing the region that answers a dynamic name, in three pure steps shared by every
//! policy (after gdnsd): the policy *ranks* the record's candidate regions for this
//! client, health *filters* the ranking (first usable region that has addresses of the
//! asked family), and when nothing is usable `when_all_down` decides. No I/O, no clock,
//! no randomness of its own: the caller passes everything in, so tests are tables.

pub mod failover;
pub mod geo;
pub mod geomap;
pub mod latency;
pub mod weighted;

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use smallvec::SmallVec;

use crate::geo::{Code, Location};
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

impl Client {
    /// The client of an ECS option (address already masked, source prefix above 0). An
    /// IPv4-mapped subnet (`::ffff:a.b.c.d/96+n`) is the IPv4 subnet `a.b.c.d/n`, as
    /// for the GeoIP lookup and the rules; [`ecs_scope`] turns its scope back.
    pub fn from_ecs(addr: IpAddr, source: u8) -> Client {
        match mapped(addr, source) {
            Some(v4) => Client {
                addr: IpAddr::V4(v4),
                source_prefix: Some(source - 96),
            },
            None => Client {
                addr,
                source_prefix: Some(source),
            },
        }
    }
}

/// The IPv4 address of an IPv4-mapped ECS subnet of at least /96.
fn mapped(addr: IpAddr, source: u8) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V6(a) if source >= 96 => a.to_ipv4_mapped(),
        _ => None,
    }
}

/// The SCOPE PREFIX-LENGTH to echo for an ECS option with `addr`/`source`, given the
/// decision's `scope`: 0 when the client asked for no subnet (source 0); for an
/// IPv4-mapped subnet the decision was made for the IPv4 address, so a scope above 0
/// moves into the mapped space (`96 +`).
pub fn ecs_scope(addr: IpAddr, source: u8, scope: u8) -> u8 {
    if source == 0 {
        0
    } else if scope > 0 && mapped(addr, source).is_some() {
        (96 + scope).min(128)
    } else {
        scope
    }
}

/// Regions in ranked order: inline up to 16, so ranking allocates nothing for any
/// realistic record (more candidates spill to the heap and still work).
pub type Order = SmallVec<[RegionId; 16]>;

/// The latency policy's estimates, inline up to 8 regions.
pub type Rtts = SmallVec<[Rtt; 8]>;

/// A policy's ordering of the candidate regions for one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Best first.
    pub order: Order,
    /// How many leading bits of the client address the ranking depended on (the RFC 7871
    /// scope prefix); 0 when it does not depend on the client at all.
    pub scope: u8,
    /// Why this order (for `explain`).
    pub rule: Rule,
    /// The latency policy's estimates, best first (empty for other policies).
    pub rtt: Rtts,
}

/// What decided a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Failover: the `regions` order.
    Failover,
    /// Geo: a `cidr` rule.
    Cidr(IpNet),
    /// Geo: a `subdivision` rule.
    Subdivision(Code),
    /// Geo: a `country` rule.
    Country(Code),
    /// Geo: a `continent` rule.
    Continent(Code),
    /// Geo: the `default` list.
    Default,
    /// Geo without a matching rule or default: the `regions` order.
    RecordOrder,
    /// Latency, with the `[latency]` row used.
    Latency(latency::Row),
    /// Weighted.
    Weighted {
        /// By client subnet rather than at random.
        sticky: bool,
    },
}

/// One region's RTT estimate in the latency policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rtt {
    /// The region.
    pub region: RegionId,
    /// Estimated RTT in ms, penalty included.
    pub ms: f64,
    /// Where the base estimate came from.
    pub source: RttSource,
    /// The live probe penalty included in `ms`.
    pub penalty: f64,
}

/// Where an RTT estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RttSource {
    /// A `[latency]` row.
    Table,
    /// Great-circle distance.
    Distance,
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
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The policy's ranking.
    pub ranking: Ranking,
    /// What answers.
    pub pick: Pick,
    /// True when no candidate was usable and `when_all_down` applied.
    pub all_down: bool,
}

impl Policy {
    /// True when the policy looks at the client's GeoIP location.
    pub fn needs_location(&self) -> bool {
        matches!(self, Policy::Geo(_) | Policy::Latency)
    }
}

/// Ranks `rec`'s candidates for `client` (at `loc`) according to its policy. `rnd` is
/// only used by non-sticky weighted records.
pub fn rank(
    model: &Model,
    health: &Health,
    rec: &DynRecord,
    client: &Client,
    loc: &Location,
    rnd: u64,
) -> Ranking {
    match &rec.policy {
        Policy::Failover => Ranking {
            order: failover::rank(rec),
            scope: 0,
            rule: Rule::Failover,
            rtt: Rtts::new(),
        },
        Policy::Geo(rules) => geo::rank(rules, client, loc),
        Policy::Latency => latency::rank(model, health, rec, client, loc),
        Policy::Weighted { weights, sticky } => weighted::rank(rec, weights, *sticky, client, rnd),
    }
}

/// Ranks, filters by health and applies `when_all_down`.
pub fn select(
    model: &Model,
    health: &Health,
    rec: &DynRecord,
    client: &Client,
    loc: &Location,
    family: Family,
    rnd: u64,
) -> Decision {
    choose(
        model,
        health,
        rec,
        rank(model, health, rec, client, loc, rnd),
        family,
    )
}

/// Filters `ranking` by health and applies `when_all_down` ([`select`] after ranking).
pub fn choose(
    model: &Model,
    health: &Health,
    rec: &DynRecord,
    ranking: Ranking,
    family: Family,
) -> Decision {
    let serves = |id: &RegionId| has_family(model.region(*id), family);
    let usable = |id: &&RegionId| health.serves(model.region(**id), **id, family);
    if let Some(&id) = ranking.order.iter().find(usable) {
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

/// The ECS scope of an answer that holds for the client's `/base` network, given that
/// `nets` (cidr rules or rows) may single out other networks: RFC 7871 §7.2.1 lets the
/// answer be cached for the whole scope, so the scope must be long enough that no rule
/// the client is *not* in overlaps it.
fn cidr_scope<'n>(client: IpAddr, nets: impl Iterator<Item = &'n IpNet>, base: u8) -> u8 {
    let mut scope = base;
    for net in nets {
        if net.contains(&client) {
            continue;
        }
        let common = match (client, net.network()) {
            (IpAddr::V4(c), IpAddr::V4(n)) => (u32::from(c) ^ u32::from(n)).leading_zeros(),
            (IpAddr::V6(c), IpAddr::V6(n)) => (u128::from(c) ^ u128::from(n)).leading_zeros(),
            _ => continue, // the other family never overlaps
        };
        // The first differing bit separates the client from this rule.
        let needed = (common as u8 + 1).min(net.prefix_len());
        scope = scope.max(needed);
    }
    scope
}

/// True when the region has at least one address of the family.
pub fn has_family(region: &Region, family: Family) -> bool {
    if region.is_cname() {
        // Answered by name: a CNAME serves A and AAAA queries alike.
        return true;
    }
    match family {
        Family::V4 => !region.v4.is_empty(),
        Family::V6 => !region.v6.is_empty(),
    }
}

/// The region's addresses of the family with their index (IPv4 first, then IPv6, as
/// in the health table), in config order.
pub fn addresses(region: &Region, family: Family) -> impl Iterator<Item = (usize, IpAddr)> + '_ {
    let v4 = region.v4.iter().map(|a| IpAddr::V4(*a));
    let v6 = region.v6.iter().map(|a| IpAddr::V6(*a));
    let indexed = v4.chain(v6).enumerate();
    let first = match family {
        Family::V4 => 0,
        Family::V6 => region.v4.len(),
    };
    let len = match family {
        Family::V4 => region.v4.len(),
        Family::V6 => region.v6.len(),
    };
    indexed.skip(first).take(len)
}

#[cfg(test)]
mod tests;
