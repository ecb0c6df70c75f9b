//! The geo policy: the most specific rule for the client's location gives an ordered
//! list of regions — `cidr` (longest prefix), then `subdivision`, `country`, `continent`,
//! `default` — and the record's other candidates follow in `regions` order.

use std::net::IpAddr;

use super::{Client, Order, Ranking, Rtts, Rule, cidr_scope};
use crate::geo::{Code, Location};
use crate::model::GeoRules;

/// Which rule decides: an index into the rules' `cidr` list or into one of the compiled
/// code tables, or the fallback (`default`, else the record's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `cidr[i]`.
    Cidr(u16),
    /// `compiled.subdivision[i]`.
    Subdivision(u16),
    /// `compiled.country[i]`.
    Country(u16),
    /// `compiled.continent[i]`.
    Continent(u16),
    /// No rule matched.
    Fallback,
}

/// True when some rule looks at the client's location (not only at its address).
pub fn by_location(rules: &GeoRules) -> bool {
    let c = &rules.compiled;
    !(c.subdivision.is_empty() && c.country.is_empty() && c.continent.is_empty())
}

/// The rule for a client at `loc`; `cidr` rules are looked at only for `addr`.
pub fn outcome(rules: &GeoRules, addr: Option<IpAddr>, loc: &Location) -> Outcome {
    let c = &rules.compiled;
    // An IPv4-mapped address is its IPv4 address, as for the GeoIP lookup.
    let cidr = addr.map(|a| a.to_canonical()).and_then(|addr| {
        rules
            .cidr
            .iter()
            .enumerate()
            .filter(|(_, (net, _))| net.contains(&addr))
            .max_by_key(|(_, (net, _))| net.prefix_len())
    });
    let find = |table: &[(Code, u16)], code: Option<Code>| {
        let code = code?;
        table.binary_search_by(|(c, _)| c.cmp(&code)).ok()
    };
    let index = |i: usize| u16::try_from(i).unwrap_or(u16::MAX);
    if let Some((i, _)) = cidr {
        Outcome::Cidr(index(i))
    } else if let Some(i) = find(&c.subdivision, loc.subdivision) {
        Outcome::Subdivision(index(i))
    } else if let Some(i) = find(&c.country, loc.country) {
        Outcome::Country(index(i))
    } else if let Some(i) = find(&c.continent, loc.continent) {
        Outcome::Continent(index(i))
    } else {
        Outcome::Fallback
    }
}

/// The ranking an outcome stands for, with the given ECS scope.
pub fn ranking(rules: &GeoRules, o: Outcome, scope: u8) -> Ranking {
    let c = &rules.compiled;
    let coded = |table: &[(Code, u16)], i: u16| {
        let (code, order) = table.get(usize::from(i)).copied().unwrap_or_default();
        (code, c.order(order))
    };
    let (order, rule) = match o {
        Outcome::Cidr(i) => {
            let net = rules.cidr.get(usize::from(i)).map(|(n, _)| *n);
            let order = c.cidr.get(usize::from(i)).map_or(&[][..], |&o| c.order(o));
            match net {
                Some(net) => (order, Rule::Cidr(net)),
                None => (c.order(c.fallback), Rule::RecordOrder),
            }
        }
        Outcome::Subdivision(i) => {
            let (code, order) = coded(&c.subdivision, i);
            (order, Rule::Subdivision(code))
        }
        Outcome::Country(i) => {
            let (code, order) = coded(&c.country, i);
            (order, Rule::Country(code))
        }
        Outcome::Continent(i) => {
            let (code, order) = coded(&c.continent, i);
            (order, Rule::Continent(code))
        }
        Outcome::Fallback if rules.default.is_some() => (c.order(c.fallback), Rule::Default),
        Outcome::Fallback => (c.order(c.fallback), Rule::RecordOrder),
    };
    Ranking {
        order: Order::from_slice(order),
        scope,
        rule,
        rtt: Rtts::new(),
    }
}

/// Ranks `rec`'s regions for a client at `loc`, from the rules' prebuilt rankings
/// ([`GeoRules::compile`]). Records with a compiled map ([`super::geomap`]) are ranked
/// by it instead, with the same outcome and a scope that may be shorter.
pub fn rank(rules: &GeoRules, client: &Client, loc: &Location) -> Ranking {
    let addr = client.addr;
    // The answer holds for the whole database network the client is in (when any rule
    // looks at the location at all), unless a cidr rule draws a finer line.
    let geo_base = if by_location(rules) { loc.prefix() } else { 0 };
    let o = outcome(rules, Some(addr), loc);
    let base = match o {
        Outcome::Cidr(i) => rules
            .cidr
            .get(usize::from(i))
            .map_or(0, |(n, _)| n.prefix_len()),
        _ => geo_base,
    };
    ranking(
        rules,
        o,
        cidr_scope(addr, rules.cidr.iter().map(|(n, _)| n), base),
    )
}
