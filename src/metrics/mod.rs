//! Counters in atomics, and their Prometheus text exposition.
//!
//! The query path only does relaxed `fetch_add`s on counters laid out at startup (per
//! transport × rcode × qtype, [`queries`]) or at config load (per dynamic record ×
//! region, [`answers`]), sharded per thread ([`cells`]): no lock, no allocation, no map
//! lookup. They live in the [`Runtime`], not in the snapshot, so reloads never reset
//! them. Everything else (region states, probe results) is read when `/metrics` is
//! scraped.

pub mod answers;
pub mod cells;
pub mod queries;

use std::fmt::Write as _;

pub use answers::AnswerCounters;
pub use queries::QueryCounters;

use crate::health::Monitor;
use crate::health::monitor::TargetStats;
use crate::health::votes::Peers;
use crate::model::RegionId;
use crate::runtime::Runtime;
use crate::snapshot::Snapshot;

/// The whole `/metrics` page: build info, query and answer counters, rate limiting,
/// region states from `snap`, and probe results from the health owner's `monitor`.
pub fn exposition(snap: &Snapshot, rt: &Runtime, monitor: Option<&Monitor>) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "gslbd_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    let _ = writeln!(
        out,
        "gslbd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    rt.queries.render(&mut out);
    rt.answers().render(&mut out);
    if let Some(rrl) = rt.rrl() {
        let help = "UDP responses over server.rate_limit, by action (since start, or since server.rate_limit last changed).";
        family(&mut out, "gslbd_rate_limited_total", "counter", help);
        let drops = rrl.limited() - rrl.slipped();
        let _ = writeln!(out, "gslbd_rate_limited_total{{action=\"drop\"}} {drops}");
        let _ = writeln!(
            out,
            "gslbd_rate_limited_total{{action=\"slip\"}} {}",
            rrl.slipped()
        );
    }
    rt.dnstap.render(&mut out);
    family(
        &mut out,
        "gslbd_region_up",
        "gauge",
        "1 while probes say the region is up (or it has no probe).",
    );
    for (i, r) in snap.model.regions.iter().enumerate() {
        let up = snap.health.region(RegionId(i as u16)).is_none_or(|h| h.up);
        let _ = writeln!(
            out,
            "gslbd_region_up{{region=\"{}\"}} {}",
            label(&r.name),
            u8::from(up)
        );
    }
    family(
        &mut out,
        "gslbd_region_drained",
        "gauge",
        "1 while an operator has drained the region.",
    );
    for (i, r) in snap.model.regions.iter().enumerate() {
        let d = snap
            .health
            .region(RegionId(i as u16))
            .is_some_and(|h| h.drained);
        let _ = writeln!(
            out,
            "gslbd_region_drained{{region=\"{}\"}} {}",
            label(&r.name),
            u8::from(d)
        );
    }
    if let Some(m) = monitor {
        family(
            &mut out,
            "gslbd_probe_up",
            "gauge",
            "1 while the probe target is up.",
        );
        for t in m.targets() {
            let _ = writeln!(
                out,
                "gslbd_probe_up{{target=\"{}\"}} {}",
                label(&t.spec.to_string()),
                u8::from(t.state.up)
            );
        }
        family(
            &mut out,
            "gslbd_probe_results_total",
            "counter",
            "Probe results by target and kind.",
        );
        for t in m.targets() {
            for (k, kind) in TargetStats::KINDS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gslbd_probe_results_total{{target=\"{}\",result=\"{kind}\"}} {}",
                    label(&t.spec.to_string()),
                    t.stats.results[k]
                );
            }
        }
        family(
            &mut out,
            "gslbd_probe_duration_seconds",
            "summary",
            "Time each probe took (bounded by its timeout).",
        );
        for t in m.targets() {
            let l = label(&t.spec.to_string());
            let _ = writeln!(
                out,
                "gslbd_probe_duration_seconds_sum{{target=\"{l}\"}} {}",
                t.stats.duration_sum
            );
            let _ = writeln!(
                out,
                "gslbd_probe_duration_seconds_count{{target=\"{l}\"}} {}",
                t.stats.count
            );
        }
        if let Some(peers) = m.peers() {
            cluster(&mut out, m, peers);
        }
    }
    if let Some(signing) = &snap.signing {
        dnssec(&mut out, signing, snap.dyn_sigs.len());
    }
    out
}

/// With `[dnssec]`: the signatures' validity and renewal, and signing on first use.
fn dnssec(out: &mut String, signing: &crate::snapshot::Signing, dynamic: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let e = &signing.epoch;
    for (name, help, value) in [
        (
            "gslbd_dnssec_signed_timestamp_seconds",
            "When the signatures served were made (they are renewed halfway through their validity).",
            e.signed_at,
        ),
        (
            "gslbd_dnssec_expiration_timestamp_seconds",
            "When the signatures served expire (RRSIG expiration).",
            u64::from(e.expiration),
        ),
        (
            "gslbd_dnssec_dynamic_answers",
            "Dynamic answers signed in advance for the current health.",
            dynamic as u64,
        ),
    ] {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let totals = &crate::dnssec::fresh::TOTALS;
    family(
        out,
        "gslbd_dnssec_fresh_signatures_total",
        "counter",
        "Answers signed on first use (denials of names that do not exist, wildcard answers), by result: made, cached (served from the cache), capped (over the signing cap: SERVFAIL).",
    );
    for (i, result) in ["made", "capped", "cached"].iter().enumerate() {
        let _ = writeln!(
            out,
            "gslbd_dnssec_fresh_signatures_total{{result=\"{result}\"}} {}",
            totals[i].load(Relaxed)
        );
    }
}

/// With `[cluster]`: each peer's freshness, and each target's votes and decided state.
fn cluster(out: &mut String, m: &Monitor, peers: &Peers) {
    family(
        out,
        "gslbd_peer_up",
        "gauge",
        "1 while the peer's probe view is fresh (pulled within three cluster intervals).",
    );
    for p in &peers.peers {
        let _ = writeln!(
            out,
            "gslbd_peer_up{{peer=\"{}\"}} {}",
            label(&p.url),
            u8::from(peers.fresh(p))
        );
    }
    family(
        out,
        "gslbd_cluster_deciding_alone",
        "gauge",
        "1 while too few peer views are fresh for the quorum and health follows this instance's own probes.",
    );
    let _ = writeln!(
        out,
        "gslbd_cluster_deciding_alone {}",
        u8::from(m.deciding_alone())
    );
    family(
        out,
        "gslbd_probe_votes",
        "gauge",
        "Fresh views (this instance's own included) of each probe target, by vote.",
    );
    for t in m.targets() {
        let l = label(&t.spec.to_string());
        let up = t.tally.views - t.tally.down;
        let _ = writeln!(out, "gslbd_probe_votes{{target=\"{l}\",vote=\"up\"}} {up}");
        let _ = writeln!(
            out,
            "gslbd_probe_votes{{target=\"{l}\",vote=\"down\"}} {}",
            t.tally.down
        );
    }
    family(
        out,
        "gslbd_probe_decided_up",
        "gauge",
        "1 while the probe target counts as up for answers (by quorum with [cluster]).",
    );
    for t in m.targets() {
        let _ = writeln!(
            out,
            "gslbd_probe_decided_up{{target=\"{}\"}} {}",
            label(&t.spec.to_string()),
            u8::from(t.decided)
        );
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
