//! The latency policy: the region with the lowest estimated round-trip time from the
//! client wins.
//!
//! The estimate for each candidate region comes from the most specific `[latency]` row
//! for the client (`cidr` by longest prefix, then `country`, then `continent`); for a
//! region that row does not list, from the great-circle distance between the client's
//! GeoIP coordinates and the region's `location`, at [`KM_PER_MS`] kilometres per
//! millisecond of RTT. The region's live probe penalty (its current RTT above its own
//! recent best) is added, so a slowing region loses traffic before it fails. Regions
//! with no estimate follow in `regions` order; ties keep `regions` order.

use super::{Client, Order, Ranking, Rtt, RttSource, Rtts, Rule, cidr_scope};
use crate::geo::{Code, Location};
use crate::health::Health;
use crate::model::{Coords, DynRecord, Model, RegionId};

/// Light in fibre covers about 200 km per millisecond; there and back makes 100 km of
/// great-circle distance per millisecond of RTT. Real paths are longer, but the ranking
/// only needs the order, and measured `[latency]` rows override the estimate.
pub const KM_PER_MS: f64 = 100.0;

/// Which `[latency]` row applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// `cidr."NET"`.
    Cidr(ipnet::IpNet),
    /// `country.XX`.
    Country(Code),
    /// `continent.XX`.
    Continent(Code),
    /// No row: distances only.
    None,
}

/// Ranks `rec`'s regions by estimated RTT for a client at `loc`.
pub fn rank(
    model: &Model,
    health: &Health,
    rec: &DynRecord,
    client: &Client,
    loc: &Location,
) -> Ranking {
    let table = &model.latency;
    let cidr = table
        .cidr
        .iter()
        .filter(|(net, _)| net.contains(&client.addr))
        .max_by_key(|(net, _)| net.prefix_len());
    let (row, values): (Row, &[(RegionId, f64)]) = if let Some((net, v)) = cidr {
        (Row::Cidr(*net), v)
    } else if let Some((c, v)) = loc
        .country
        .and_then(|c| table.country.get(c.as_str()).map(|v| (c, v)))
    {
        (Row::Country(c), v)
    } else if let Some((c, v)) = loc
        .continent
        .and_then(|c| table.continent.get(c.as_str()).map(|v| (c, v)))
    {
        (Row::Continent(c), v)
    } else {
        (Row::None, &[])
    };

    let mut used_location = matches!(row, Row::Country(_) | Row::Continent(_));
    let mut rtt = Rtts::new();
    for &id in &rec.regions {
        let measured = values
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, ms)| (*ms, RttSource::Table));
        let estimated = || {
            let (from, to) = (loc.coords?, model.region(id).location?);
            Some((distance_km(from, to) / KM_PER_MS, RttSource::Distance))
        };
        if let Some((ms, source)) = measured.or_else(estimated) {
            used_location |= source == RttSource::Distance;
            let penalty = health.rtt_penalty_ms(id);
            rtt.push(Rtt {
                region: id,
                ms: ms + penalty,
                source,
                penalty,
            });
        }
    }
    // Stable sort: equal estimates keep the configured order.
    rtt.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    let mut order: Order = rtt.iter().map(|r| r.region).collect();
    order.extend(
        rec.regions
            .iter()
            .filter(|id| !rtt.iter().any(|r| r.region == **id))
            .copied(),
    );

    let mut base = if used_location { loc.prefix() } else { 0 };
    if let Row::Cidr(net) = row {
        base = base.max(net.prefix_len());
    }
    Ranking {
        order,
        scope: cidr_scope(client.addr, table.cidr.iter().map(|(n, _)| n), base),
        rule: Rule::Latency(row),
        rtt,
    }
}

/// Great-circle distance in km (haversine, mean Earth radius 6371 km).
pub fn distance_km(a: Coords, b: Coords) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.min(1.0).sqrt().asin()
}
