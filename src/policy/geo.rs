//! The geo policy: the most specific rule for the client's location gives an ordered
//! list of regions — `cidr` (longest prefix), then `subdivision`, `country`, `continent`,
//! `default` — and the record's other candidates follow in `regions` order.

use super::{Client, Order, Ranking, Rtts, Rule, cidr_scope, then_rest};
use crate::geo::Location;
use crate::model::{DynRecord, GeoRules};

/// Ranks `rec`'s regions for a client at `loc`.
pub fn rank(rules: &GeoRules, rec: &DynRecord, client: &Client, loc: &Location) -> Ranking {
    let addr = client.addr;
    let by_location =
        !(rules.subdivision.is_empty() && rules.country.is_empty() && rules.continent.is_empty());
    // The answer holds for the whole database network the client is in (when any rule
    // looks at the location at all), unless a cidr rule draws a finer line.
    let geo_base = if by_location { loc.prefix() } else { 0 };
    let cidr = rules
        .cidr
        .iter()
        .filter(|(net, _)| net.contains(&addr))
        .max_by_key(|(net, _)| net.prefix_len());
    let (list, rule, base) = if let Some((net, list)) = cidr {
        (Some(list), Rule::Cidr(*net), net.prefix_len())
    } else if let Some((code, list)) = loc
        .subdivision
        .and_then(|c| rules.subdivision.get(c.as_str()).map(|l| (c, l)))
    {
        (Some(list), Rule::Subdivision(code), geo_base)
    } else if let Some((code, list)) = loc
        .country
        .and_then(|c| rules.country.get(c.as_str()).map(|l| (c, l)))
    {
        (Some(list), Rule::Country(code), geo_base)
    } else if let Some((code, list)) = loc
        .continent
        .and_then(|c| rules.continent.get(c.as_str()).map(|l| (c, l)))
    {
        (Some(list), Rule::Continent(code), geo_base)
    } else if let Some(list) = &rules.default {
        (Some(list), Rule::Default, geo_base)
    } else {
        (None, Rule::RecordOrder, geo_base)
    };
    let order = match list {
        Some(list) => then_rest(list, &rec.regions),
        None => Order::from_slice(&rec.regions),
    };
    Ranking {
        order,
        scope: cidr_scope(addr, rules.cidr.iter().map(|(n, _)| n), base),
        rule,
        rtt: Rtts::new(),
    }
}
