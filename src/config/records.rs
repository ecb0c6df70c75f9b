//! Validates `[records."NAME"]`: the name, the policy and its keys, the candidate
//! regions, and the weights of a weighted record.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::check::{Ctx, RegionNames, span_or};
use super::geo;
use super::keypath::join;
use super::raw::{Entries, Int, RawRecord, Str};
use super::server::ttl_value;
use super::syntax;
use crate::model::{Defaults, DynRecord, Policy, Pos, RegionId, WhenAllDown};

const POLICIES: &str = "geo, latency, weighted, failover";
const WHEN_ALL_DOWN: &str = "first, all, nodata";

/// Every record, in file order.
pub(crate) fn records(
    cx: &mut Ctx<'_>,
    raw: &Entries<RawRecord>,
    names: &RegionNames,
    defaults: &Defaults,
) -> Vec<DynRecord> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, Pos> = HashMap::with_capacity(raw.0.len());
    for (name, rec) in &raw.0 {
        let key = join("records", name.get_ref());
        let normal = match syntax::dns_name(name.get_ref()) {
            Ok(n) => Some(n),
            Err(msg) => {
                cx.error(&name.span(), &key, msg);
                None
            }
        };
        let pos = cx.pos(&name.span());
        if let Some(n) = &normal {
            if let Some(first) = seen.get(n) {
                let msg = format!(
                    "record {n} is already defined at line {} (names are compared ignoring case and the trailing dot)",
                    first.line
                );
                cx.error(&name.span(), &key, msg);
            } else {
                seen.insert(n.clone(), pos);
            }
        }
        let record = one(cx, rec, &key, &name.span(), names, defaults);
        if let (Some(name), Some(record)) = (normal, record) {
            out.push(DynRecord {
                name,
                pos,
                ..record
            });
        }
    }
    out
}

/// One record; `name` and `pos` are filled in by the caller.
fn one(
    cx: &mut Ctx<'_>,
    raw: &RawRecord,
    key: &str,
    span: &Range<usize>,
    names: &RegionNames,
    defaults: &Defaults,
) -> Option<DynRecord> {
    let mut ok = true;
    let policy = policy_name(cx, raw, key, span);
    let ttl = match &raw.ttl {
        Some(t) => ttl_value(cx, t, &join(key, "ttl")),
        None => Some(defaults.ttl),
    };
    let fallback_ttl = match &raw.fallback_ttl {
        Some(t) => ttl_value(cx, t, &join(key, "fallback_ttl")),
        None => Some(defaults.fallback_ttl),
    };
    let when_all_down = match &raw.when_all_down {
        None => Some(WhenAllDown::default()),
        Some(w) => when_all_down(cx, w, &join(key, "when_all_down")),
    };
    // Keys of another policy are mistakes, not options to ignore.
    if let Some(policy) = policy {
        let spans = [
            ("geo", "geo", raw.geo.as_ref().map(Spanned::span)),
            (
                "weights",
                "weighted",
                raw.weights.as_ref().map(Spanned::span),
            ),
            ("sticky", "weighted", raw.sticky.as_ref().map(Spanned::span)),
        ];
        for (k, owner, at) in spans {
            if let Some(at) = at.filter(|_| policy != owner) {
                let msg = format!("{k} only applies to policy \"{owner}\"");
                cx.error(&at, &join(key, k), msg);
                ok = false;
            }
        }
    }

    // `None`: not given; `Some(None)`: given but wrong (already reported).
    let rkey = join(key, "regions");
    let explicit = raw
        .regions
        .as_ref()
        .map(|l| cx.region_list(l, &rkey, names, None));
    let weights = match (policy, &raw.weights) {
        (Some("weighted"), None) => {
            let msg =
                "policy \"weighted\" needs weights, e.g. weights = { us-east = 3, eu-west = 1 }";
            cx.error(span, key, msg);
            None
        }
        (Some("weighted"), Some(w)) => weight_table(
            cx,
            w,
            &join(key, "weights"),
            names,
            explicit.clone().flatten().as_deref(),
        ),
        _ => None,
    };
    let candidates = match explicit {
        Some(ids) => ids,
        None if policy == Some("weighted") => weights
            .as_ref()
            .map(|w| w.iter().map(|&(id, _)| id).collect()),
        None => Some(
            (0..names.0.len())
                .filter_map(|i| u16::try_from(i).ok().map(RegionId))
                .collect(),
        ),
    };
    if candidates.as_ref().is_some_and(Vec::is_empty) {
        let msg = "has no candidate regions: no [regions.NAME] is defined";
        cx.error(span, key, msg);
        ok = false;
    }

    let policy = match policy? {
        "geo" => match &raw.geo {
            None => Some(Policy::Geo(Default::default())),
            Some(g) => geo::rules(
                cx,
                g.get_ref(),
                &join(key, "geo"),
                names,
                // Geo lists may name any defined region, not only the candidates: the
                // contract's own example sends US-CA to a region outside `regions`.
                None,
            )
            .map(|rules| Policy::Geo(Box::new(rules))),
        },
        "latency" => Some(Policy::Latency),
        "failover" => Some(Policy::Failover),
        _ => {
            let weights = weights?;
            let regions = candidates.as_deref()?;
            parallel_weights(cx, &weights, regions, raw, key, names)
        }
    };
    if !ok {
        return None;
    }
    let mut policy = policy?;
    let regions = candidates?;
    if let Policy::Geo(rules) = &mut policy {
        rules.compile(&regions);
    }
    Some(DynRecord {
        name: String::new(),
        pos: Pos::default(),
        policy,
        ttl: ttl?,
        fallback_ttl: fallback_ttl?,
        regions,
        when_all_down: when_all_down?,
    })
}

/// The policy's name, when given and known.
fn policy_name(
    cx: &mut Ctx<'_>,
    raw: &RawRecord,
    key: &str,
    span: &Range<usize>,
) -> Option<&'static str> {
    let Some(p) = &raw.policy else {
        let msg = format!("missing key \"policy\" (one of {POLICIES})");
        cx.error(span, key, msg);
        return None;
    };
    match p.get_ref().as_str() {
        "geo" => Some("geo"),
        "latency" => Some("latency"),
        "weighted" => Some("weighted"),
        "failover" => Some("failover"),
        other => {
            let msg = format!("unknown policy \"{other}\" (expected one of {POLICIES})");
            cx.error(&p.span(), &join(key, "policy"), msg);
            None
        }
    }
}

fn when_all_down(cx: &mut Ctx<'_>, value: &Str, key: &str) -> Option<WhenAllDown> {
    match value.get_ref().as_str() {
        "first" => Some(WhenAllDown::First),
        "all" => Some(WhenAllDown::All),
        "nodata" => Some(WhenAllDown::Nodata),
        other => {
            let msg = format!("unknown value \"{other}\" (expected one of {WHEN_ALL_DOWN})");
            cx.error(&value.span(), key, msg);
            None
        }
    }
}

/// `weights = { region = int, ... }` in file order; `among` is the explicit `regions`.
fn weight_table(
    cx: &mut Ctx<'_>,
    raw: &Spanned<Entries<Int>>,
    key: &str,
    names: &RegionNames,
    among: Option<&[RegionId]>,
) -> Option<Vec<(RegionId, u32)>> {
    let entries = &raw.get_ref().0;
    if entries.is_empty() {
        cx.error(
            &raw.span(),
            key,
            "must give the weight of at least one region",
        );
        return None;
    }
    let mut ok = true;
    let mut out = Vec::new();
    for (region, weight) in entries {
        let id = cx.region(region, key, names, among);
        let w = cx.int(
            weight,
            &join(key, region.get_ref()),
            0..=1_000_000,
            "0 = standby",
        );
        match (id, w) {
            (Some(id), Some(w)) => out.push((id, w)),
            _ => ok = false,
        }
    }
    if ok && out.iter().all(|&(_, w)| w == 0) {
        cx.error(
            &raw.span(),
            key,
            "at least one weight must be greater than 0",
        );
        ok = false;
    }
    ok.then_some(out)
}

/// The weights in the order of the record's regions, each of which needs one.
fn parallel_weights(
    cx: &mut Ctx<'_>,
    weights: &[(RegionId, u32)],
    regions: &[RegionId],
    raw: &RawRecord,
    key: &str,
    names: &RegionNames,
) -> Option<Policy> {
    let mut out = Vec::with_capacity(regions.len());
    for &id in regions {
        match weights.iter().find(|&&(w, _)| w == id) {
            Some(&(_, w)) => out.push(w),
            None => {
                let at = span_or(raw.weights.as_ref(), &(0..0));
                let msg = format!(
                    "region \"{}\" of this record's regions has no weight",
                    names.name(id)
                );
                cx.error(&at, &join(key, "weights"), msg);
            }
        }
    }
    // No zero-sum check here: weights are a subset of the regions, so weight_table's
    // "at least one above 0" already covers them.
    if out.len() != regions.len() {
        return None;
    }
    Some(Policy::Weighted {
        weights: out,
        sticky: raw.sticky.as_ref().is_some_and(|s| *s.get_ref()),
    })
}
