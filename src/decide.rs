//! Deciding a dynamic name: for one record, query type and client, which region answers
//! and with which of its addresses. The result is a plain value ([`Choice`]) with no side
//! effects: both query paths write it into their reply, [`crate::pipeline::finish`]
//! counts it once the reply is sent, and `explain` renders it with the [`Trace`] of how
//! it was reached ([`decide_traced`]), so the two can never disagree.

use std::net::IpAddr;

use hickory_proto::rr::RecordType;
use smallvec::SmallVec;

use crate::geo::Location;
use crate::model::{Policy, RecordId, RegionId};
use crate::policy::{self, Client, Decision, Family, Pick};
use crate::snapshot::Snapshot;

/// The answer to a dynamic name.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The dynamic record.
    pub record: RecordId,
    /// The family answered (for ANY, the first that has addresses, else the last tried).
    pub family: Family,
    /// The region answering (the ranking's first for `when_all_down = "all"`); `None`
    /// when no address is answered.
    pub region: Option<RegionId>,
    /// The addresses to answer, in config order: the up ones, or all of them when every
    /// candidate is down and the record fails open.
    pub addrs: SmallVec<[IpAddr; 8]>,
    /// The ECS scope the answer depends on (RFC 7871 §7.2.1).
    pub scope: u8,
    /// Every candidate was down and `when_all_down` applied.
    pub all_down: bool,
    /// TTL of the answer: the record's, capped at its `fallback_ttl` when the region is
    /// not the client's first choice because that one is down (`fallback_from`).
    pub ttl: u32,
    /// The client's first choice, when it is down (or drained) and another region
    /// answers instead.
    pub fallback_from: Option<RegionId>,
    /// The region answers by name: a CNAME to its `cname`, no addresses.
    pub cname: bool,
}

impl Choice {
    /// The addresses in answer order: rotated by `rnd`, so that clients which take the
    /// first address spread over all of them. (`rnd` is also the weighted draw; its high
    /// bits keep the two independent.)
    pub fn rotated(&self, rnd: u64) -> impl Iterator<Item = IpAddr> + '_ {
        let n = self.addrs.len();
        let k = if n > 1 {
            ((rnd >> 32) % n as u64) as usize
        } else {
            0
        };
        (0..n).map(move |i| self.addrs[(i + k) % n])
    }
}

/// How a dynamic name was decided, for `explain`.
#[derive(Debug)]
pub struct Trace {
    /// The client the decision was made for.
    pub client: Client,
    /// Its GeoIP location (empty when the policy does not use it or there is no DB).
    pub location: Location,
    /// Ranking, pick and whether every candidate was down, for the family answered.
    pub decision: Decision,
}

/// Decides `record` for a query of `qtype` from `client`. `rnd` draws non-sticky weighted
/// choices. Allocates nothing for records of up to 16 regions and 8 addresses.
pub fn decide(
    record: RecordId,
    qtype: RecordType,
    snap: &Snapshot,
    client: &Client,
    rnd: u64,
) -> Choice {
    decide_with::<false>(record, qtype, snap, client, rnd, |_, _| {})
}

/// Like [`decide`], and also how: the location and the policy's ranking.
pub fn decide_traced(
    record: RecordId,
    qtype: RecordType,
    snap: &Snapshot,
    client: &Client,
    rnd: u64,
) -> (Choice, Trace) {
    let mut trace = None;
    let choice = decide_with::<true>(record, qtype, snap, client, rnd, |location, decision| {
        trace = Some((*location, decision.clone()));
    });
    let (location, decision) = trace.expect("every decision tries one family at least");
    let trace = Trace {
        client: *client,
        location,
        decision,
    };
    (choice, trace)
}

/// The decision; `seen` gets each family's location and ranking as it is tried.
/// `TRACE` looks the client up in GeoIP even where a compiled tree makes it unneeded.
fn decide_with<const TRACE: bool>(
    record: RecordId,
    qtype: RecordType,
    snap: &Snapshot,
    client: &Client,
    rnd: u64,
    mut seen: impl FnMut(&Location, &Decision),
) -> Choice {
    let model = &snap.model;
    let rec = &model.records[record.index()];
    // A geo record with a compiled map needs no GeoIP lookup (but `explain` shows the
    // location); otherwise one per query, and only for policies that use it.
    let map = match (&rec.policy, snap.geo_map(record)) {
        (Policy::Geo(rules), Some(map)) => Some((&**rules, map)),
        _ => None,
    };
    let location = match (
        &snap.geo,
        rec.policy.needs_location() && (map.is_none() || TRACE),
    ) {
        (Some(db), true) => db.locate(client.addr),
        _ => Location::default(),
    };
    let families: &[Family] = match qtype {
        RecordType::A => &[Family::V4],
        RecordType::AAAA => &[Family::V6],
        // RFC 8482: one RRset is enough for ANY; prefer A, else AAAA.
        _ => &[Family::V4, Family::V6],
    };
    let mut choice = Choice {
        record,
        family: families[0],
        region: None,
        addrs: SmallVec::new(),
        scope: 0,
        all_down: false,
        ttl: rec.ttl,
        fallback_from: None,
        cname: false,
    };
    for &family in families {
        let decision = match map {
            Some((rules, map)) => policy::choose(
                model,
                &snap.health,
                rec,
                map.rank(rules, client.addr),
                family,
            ),
            None => policy::select(model, &snap.health, rec, client, &location, family, rnd),
        };
        seen(&location, &decision);
        choice.family = family;
        choice.scope = choice.scope.max(decision.ranking.scope);
        choice.all_down = decision.all_down;
        let picked = match decision.pick {
            Pick::Region(id) => Some(id),
            // A name has one CNAME: with a CNAME region first, "all" answers it alone.
            Pick::All => decision.ranking.order.first().copied(),
            Pick::Nothing => None,
        };
        choice.cname = picked.is_some_and(|id| model.region(id).is_cname());
        choice.addrs = if choice.cname {
            SmallVec::new()
        } else {
            picked_addresses(&decision, snap, family)
        };
        if choice.cname || !choice.addrs.is_empty() {
            choice.region = picked;
            // The first choice was passed over for its health, not for lacking
            // addresses of this family: a failover answer, kept short so resolvers come
            // back soon after it recovers.
            let first = decision.ranking.order.first().copied();
            if let Some(first) = first.filter(|f| Some(*f) != choice.region) {
                if policy::has_family(model.region(first), family) {
                    choice.fallback_from = Some(first);
                    choice.ttl = rec.ttl.min(rec.fallback_ttl);
                }
            }
            break;
        }
    }
    if !choice.cname && !matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::ANY) {
        // Another type at a name whose record may answer by CNAME: only a CNAME answers
        // it; an address region leaves it without data.
        choice.addrs.clear();
        choice.region = None;
        choice.fallback_from = None;
        choice.ttl = rec.ttl;
    }
    choice
}

/// The picked region's addresses of `family` that are up (all of them when failing open).
fn picked_addresses(decision: &Decision, snap: &Snapshot, family: Family) -> SmallVec<[IpAddr; 8]> {
    let model = &snap.model;
    // Only up addresses, unless every candidate is down and we fail open.
    let up = |id: RegionId, i: usize| decision.all_down || snap.health.address_up(id, i);
    let mut addrs: SmallVec<[IpAddr; 8]> = SmallVec::new();
    match decision.pick {
        // The hot case, written out: health indexes IPv4 addresses first, then IPv6.
        Pick::Region(id) => {
            let region = model.region(id);
            match family {
                Family::V4 => {
                    for (i, a) in region.v4.iter().enumerate() {
                        if up(id, i) {
                            addrs.push(IpAddr::V4(*a));
                        }
                    }
                }
                Family::V6 => {
                    let first = region.v4.len();
                    for (i, a) in region.v6.iter().enumerate() {
                        if up(id, first + i) {
                            addrs.push(IpAddr::V6(*a));
                        }
                    }
                }
            }
        }
        Pick::All => {
            for id in decision.ranking.order.iter() {
                for (_, a) in policy::addresses(model.region(*id), family) {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
        }
        Pick::Nothing => {}
    }
    addrs
}
