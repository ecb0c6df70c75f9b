//! The geo policy: the most specific rule for the client's location gives an ordered
//! list of regions — `cidr` (longest prefix), then `subdivision`, `country`, `continent`,
//! `default` — and the record's other candidates follow in `regions` order.

use super::{Client, Order, Ranking, Rtts, Rule, cidr_scope};
use crate::geo::{Code, Location};
use crate::model::GeoRules;

/// Ranks `rec`'s regions for a client at `loc`, from the rules' prebuilt rankings
/// ([`GeoRules::compile`]).
pub fn rank(rules: &GeoRules, client: &Client, loc: &Location) -> Ranking {
    let addr = client.addr;
    let c = &rules.compiled;
    let by_location = !(c.subdivision.is_empty() && c.country.is_empty() && c.continent.is_empty());
    // The answer holds for the whole database network the client is in (when any rule
    // looks at the location at all), unless a cidr rule draws a finer line.
    let geo_base = if by_location { loc.prefix() } else { 0 };
    let cidr = rules
        .cidr
        .iter()
        .zip(&c.cidr)
        .filter(|((net, _), _)| net.contains(&addr))
        .max_by_key(|((net, _), _)| net.prefix_len());
    let lookup =
        |table, code: Option<Code>| code.and_then(|code| Some((code, c.find(table, code)?)));
    let (order, rule, base) = if let Some(((net, _), &i)) = cidr {
        (c.order(i), Rule::Cidr(*net), net.prefix_len())
    } else if let Some((code, order)) = lookup(&c.subdivision, loc.subdivision) {
        (order, Rule::Subdivision(code), geo_base)
    } else if let Some((code, order)) = lookup(&c.country, loc.country) {
        (order, Rule::Country(code), geo_base)
    } else if let Some((code, order)) = lookup(&c.continent, loc.continent) {
        (order, Rule::Continent(code), geo_base)
    } else if rules.default.is_some() {
        (c.order(c.fallback), Rule::Default, geo_base)
    } else {
        (c.order(c.fallback), Rule::RecordOrder, geo_base)
    };
    Ranking {
        order: Order::from_slice(order),
        scope: cidr_scope(addr, rules.cidr.iter().map(|(n, _)| n), base),
        rule,
        rtt: Rtts::new(),
    }
}
