//! Validates the location-keyed tables: `[records."NAME".geo]` rules and `[latency]`
//! rows. Both key their entries by continent, country or network with the same rules.

use ipnet::IpNet;
use toml::Spanned;

use super::check::{Ctx, RegionNames};
use super::keypath::join;
use super::raw::{RawGeo, RawLatency, RawRtts, Str, StrList};
use super::syntax;
use crate::model::{GeoRules, LatencyTable, RegionId};

/// `[records."NAME".geo]`; `among` is the record's candidate regions, when known.
pub(crate) fn rules(
    cx: &mut Ctx<'_>,
    raw: &RawGeo,
    key: &str,
    names: &RegionNames,
    among: Option<&[RegionId]>,
) -> Option<GeoRules> {
    let mut ok = true;
    let mut list = |cx: &mut Ctx<'_>, l: &StrList, k: &str| {
        let ids = cx.region_list(l, k, names, among);
        ok &= ids.is_some();
        ids.unwrap_or_default()
    };
    let mut rules = GeoRules::default();
    let coded = [
        (
            &raw.continent,
            "continent",
            &mut rules.continent,
            syntax::continent as fn(&str) -> _,
        ),
        (&raw.country, "country", &mut rules.country, syntax::country),
        (
            &raw.subdivision,
            "subdivision",
            &mut rules.subdivision,
            syntax::subdivision,
        ),
    ];
    for (entries, table, map, check) in coded {
        let tkey = join(key, table);
        for (code, regions) in &entries.0 {
            let k = join(&tkey, code.get_ref());
            if let Err(msg) = check(code.get_ref()) {
                cx.error(&code.span(), &k, msg);
            }
            map.insert(code.get_ref().clone(), list(cx, regions, &k));
        }
    }
    let mut seen = Vec::new();
    for (net, regions) in &raw.cidr.0 {
        let k = join(&join(key, "cidr"), net.get_ref());
        let net = network(cx, net, &k, &mut seen);
        let ids = list(cx, regions, &k);
        if let Some(net) = net {
            rules.cidr.push((net, ids));
        }
    }
    if let Some(d) = &raw.default {
        rules.default = Some(list(cx, d, &join(key, "default")));
    }
    // A bad network key is reported but not pushed; make the whole rule set fail too.
    ok &= rules.cidr.len() == raw.cidr.0.len();
    ok.then_some(rules)
}

/// `[latency]`.
pub(crate) fn latency(cx: &mut Ctx<'_>, raw: &RawLatency, names: &RegionNames) -> LatencyTable {
    let mut table = LatencyTable::default();
    let coded = [
        (
            &raw.continent,
            "continent",
            &mut table.continent,
            syntax::continent as fn(&str) -> _,
        ),
        (&raw.country, "country", &mut table.country, syntax::country),
    ];
    for (entries, name, map, check) in coded {
        let tkey = join("latency", name);
        for (code, row) in &entries.0 {
            let k = join(&tkey, code.get_ref());
            if let Err(msg) = check(code.get_ref()) {
                cx.error(&code.span(), &k, msg);
            }
            map.insert(
                code.get_ref().clone(),
                rtts(cx, row, &k, names, &code.span()),
            );
        }
    }
    let mut seen = Vec::new();
    for (net, row) in &raw.cidr.0 {
        let k = join("latency.cidr", net.get_ref());
        let parsed = network(cx, net, &k, &mut seen);
        let row = rtts(cx, row, &k, names, &net.span());
        if let Some(parsed) = parsed {
            table.cidr.push((parsed, row));
        }
    }
    table
}

/// A network key: valid, host bits clear, not listed twice in the same table.
fn network(cx: &mut Ctx<'_>, text: &Str, key: &str, seen: &mut Vec<IpNet>) -> Option<IpNet> {
    match syntax::network(text.get_ref()) {
        Err(msg) => {
            cx.error(&text.span(), key, msg);
            None
        }
        Ok(net) if seen.contains(&net) => {
            cx.error(&text.span(), key, format!("network {net} is listed twice"));
            None
        }
        Ok(net) => {
            seen.push(net);
            Some(net)
        }
    }
}

/// One `[latency]` row: region = RTT in milliseconds.
fn rtts(
    cx: &mut Ctx<'_>,
    row: &RawRtts,
    key: &str,
    names: &RegionNames,
    span: &std::ops::Range<usize>,
) -> Vec<(RegionId, f64)> {
    if row.0.is_empty() {
        cx.error(
            span,
            key,
            "must give the RTT of at least one region, e.g. { us-east = 20 }",
        );
    }
    let mut out = Vec::new();
    for (region, rtt) in &row.0 {
        let id = cx.region(region, key, names, None);
        let ms = rtt_value(cx, rtt, &join(key, region.get_ref()));
        if let (Some(id), Some(ms)) = (id, ms) {
            out.push((id, ms));
        }
    }
    out
}

fn rtt_value(cx: &mut Ctx<'_>, rtt: &Spanned<f64>, key: &str) -> Option<f64> {
    let ms = *rtt.get_ref();
    if ms.is_finite() && ms >= 0.0 {
        Some(ms)
    } else {
        let msg = format!("must be a round-trip time in milliseconds, 0 or more, got {ms}");
        cx.error(&rtt.span(), key, msg);
        None
    }
}
