//! What `GET /api/v1/status` reports for the status page beside the regions: the version,
//! when the config was loaded, each dynamic name's answers per region over the last
//! minute, and the last state changes.
//!
//! The traffic shares come from the answer counters, sampled every [`SAMPLE_EVERY`] by
//! the admin side ([`Traffic::sample`]) and kept for a minute: a report subtracts the
//! sample from a minute ago from the totals now. Nothing is added to the query path.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::health::changes::Changes;
use crate::metrics::answers::AnswerTotals;
use crate::model::Model;

/// How often the answer counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The window of the traffic shares.
pub const WINDOW: Duration = Duration::from_secs(60);

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusReport {
    /// gslbd's version.
    pub version: &'static str,
    /// When this process started serving (RFC 3339).
    pub started: String,
    /// When the config now served was loaded: at start, or by the last good reload.
    pub config_loaded: String,
    /// Answers per dynamic name and region over the last minute.
    pub traffic: TrafficReport,
    /// The last state changes, newest first.
    pub changes: Vec<ChangeReport>,
}

/// Answers over the last minute (or since the admin API started, if less).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrafficReport {
    /// The seconds the counts cover (up to 60, plus at most one sampling interval).
    pub window_s: f64,
    /// One entry per dynamic name, in config order.
    pub records: Vec<RecordTraffic>,
}

/// One dynamic name's answers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecordTraffic {
    /// The name, without the trailing dot.
    pub name: String,
    /// Its policy.
    pub policy: &'static str,
    /// Answers in the window: the sum of `regions`.
    pub answers: u64,
    /// Its candidate regions in config order, then any other region that answered
    /// (before a reload), then `none` (answers with no address) when there were some.
    pub regions: Vec<RegionTraffic>,
}

/// Answers of one name from one region.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegionTraffic {
    /// The region, or `none`.
    pub region: String,
    /// Answers in the window.
    pub answers: u64,
}

/// One state change.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangeReport {
    /// When (RFC 3339).
    pub at: String,
    /// `target`, `region`, `drain` or `cluster`.
    pub kind: &'static str,
    /// What changed: the target, the region.
    pub subject: String,
    /// The state before.
    pub from: &'static str,
    /// The state after.
    pub to: &'static str,
    /// Why.
    pub reason: String,
}

/// Samples of the answer totals over the last minute.
#[derive(Debug, Default)]
pub struct Traffic {
    samples: Mutex<VecDeque<(Instant, AnswerTotals)>>,
}

impl Traffic {
    /// Keeps `totals` as read at `now`, and drops what a report no longer needs: every
    /// sample but the newest that is at least [`WINDOW`] old.
    pub fn sample(&self, now: Instant, totals: AnswerTotals) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back((now, totals));
        while s.len() > 1 && now.saturating_duration_since(s[1].0) >= WINDOW {
            s.pop_front();
        }
    }

    /// The answers since the oldest sample kept (a minute ago, or fewer seconds just
    /// after start): `now_totals` minus it, by name, for the records of `model`.
    pub fn report(&self, now: Instant, now_totals: &AnswerTotals, model: &Model) -> TrafficReport {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let (window, base) = match s.front() {
            Some((at, base)) => (now.saturating_duration_since(*at), Some(base)),
            None => (Duration::ZERO, None),
        };
        let same_layout = base
            .is_some_and(|b| b.records == now_totals.records && b.regions == now_totals.regions);
        // A reload in the window changed the layout: match by name.
        let by_name: HashMap<(&str, &str), u64> = match base {
            Some(b) if !same_layout => b
                .records
                .iter()
                .enumerate()
                .flat_map(|(r, rec)| {
                    b.row(r).iter().map(move |&(c, total)| {
                        let reg = b.regions.get(c).map_or("none", String::as_str);
                        ((rec.as_str(), reg), total)
                    })
                })
                .collect(),
            _ => HashMap::new(),
        };
        let region_name = |c: usize| now_totals.regions.get(c).map_or("none", String::as_str);
        let delta = |r: usize, c: usize| {
            let then = match base {
                Some(b) if same_layout => b.get(r, c),
                Some(_) => by_name
                    .get(&(now_totals.records[r].as_str(), region_name(c)))
                    .copied()
                    .unwrap_or(0),
                None => now_totals.get(r, c),
            };
            now_totals.get(r, c).saturating_sub(then)
        };
        let rows: HashMap<&str, usize> = (now_totals.records.iter())
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let columns: HashMap<&str, usize> = (now_totals.regions.iter())
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let records = model
            .records
            .iter()
            .map(|rec| {
                let name = rec.name.trim_end_matches('.');
                let row = rows.get(name).copied();
                let mut regions: Vec<RegionTraffic> = Vec::new();
                if let Some(r) = row {
                    let mut cols: Vec<usize> = rec
                        .regions
                        .iter()
                        .filter_map(|id| columns.get(model.region(*id).name.as_str()).copied())
                        .collect();
                    let others = (now_totals.row(r).iter())
                        .map(|(c, _)| *c)
                        .filter(|c| !cols.contains(c) && delta(r, *c) > 0);
                    cols.extend(others.collect::<Vec<_>>());
                    regions = cols
                        .into_iter()
                        .map(|c| RegionTraffic {
                            region: region_name(c).to_string(),
                            answers: delta(r, c),
                        })
                        .collect();
                }
                RecordTraffic {
                    name: name.to_string(),
                    policy: rec.policy.name(),
                    answers: regions.iter().map(|r| r.answers).sum(),
                    regions,
                }
            })
            .collect();
        TrafficReport {
            window_s: (window.as_secs_f64() * 10.0).round() / 10.0,
            records,
        }
    }
}

/// The changes, newest first, for the report.
pub(super) fn changes(changes: &Changes) -> Vec<ChangeReport> {
    changes
        .newest_first()
        .map(|c| ChangeReport {
            at: rfc3339(c.at),
            kind: c.kind,
            subject: c.subject.clone(),
            from: c.from,
            to: c.to,
            reason: c.reason.clone(),
        })
        .collect()
}

pub(super) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::metrics::AnswerCounters;
    use crate::model::{RecordId, RegionId};

    fn model(text: &str) -> Arc<Model> {
        Arc::new(crate::config::parse(text, Path::new("g.toml")).unwrap_or_else(|e| panic!("{e}")))
    }

    const CONFIG: &str = "[regions.a]\naddresses = [\"192.0.2.1\"]\n[regions.b]\naddresses = [\"192.0.2.2\"]\n[regions.c]\naddresses = [\"192.0.2.3\"]\n[records.\"www.x\"]\npolicy = \"failover\"\nregions = [\"a\", \"b\"]\n[records.\"db.x\"]\npolicy = \"failover\"\nregions = [\"c\"]\n";

    fn shares(t: &TrafficReport, record: &str) -> Vec<(String, u64)> {
        let r = t.records.iter().find(|r| r.name == record).unwrap();
        assert_eq!(r.answers, r.regions.iter().map(|r| r.answers).sum::<u64>());
        r.regions
            .iter()
            .map(|r| (r.region.clone(), r.answers))
            .collect()
    }

    fn count(c: &AnswerCounters, m: &Arc<Model>, record: u32, region: Option<u16>, n: usize) {
        for _ in 0..n {
            c.count(m, RecordId(record), region.map(RegionId));
        }
    }

    #[test]
    fn shares_cover_the_last_minute_and_survive_a_reload() {
        let m = model(CONFIG);
        let c = Arc::new(AnswerCounters::new(m.clone()));
        let t = Traffic::default();
        let t0 = Instant::now();
        count(&c, &m, 0, Some(0), 7); // before the first sample: not in any window
        t.sample(t0, c.totals());
        count(&c, &m, 0, Some(0), 3);
        count(&c, &m, 0, Some(1), 1);
        count(&c, &m, 1, None, 2);
        let r = t.report(t0 + Duration::from_secs(20), &c.totals(), &m);
        assert_eq!(r.window_s, 20.0);
        // Candidates in order, then `none` because it answered.
        assert_eq!(shares(&r, "www.x"), [("a".into(), 3), ("b".into(), 1)]);
        assert_eq!(shares(&r, "db.x"), [("c".into(), 0), ("none".into(), 2)]);

        // Samples every 5 s: the window slides, keeping one sample a minute old.
        for i in 1..=14 {
            t.sample(t0 + SAMPLE_EVERY * i, c.totals());
            if i == 6 {
                count(&c, &m, 0, Some(1), 5); // at 30 s
            }
        }
        let now = t0 + SAMPLE_EVERY * 14; // 70 s
        assert_eq!(t.samples.lock().unwrap().len(), 13, "65 s back to 5 s");
        let r = t.report(now, &c.totals(), &m);
        assert_eq!(r.window_s, 60.0);
        assert_eq!(shares(&r, "www.x"), [("a".into(), 0), ("b".into(), 5)]);

        // A reload that drops region a and adds d: matched by name.
        let m2 = model(
            &CONFIG
                .replace("[regions.a]\naddresses = [\"192.0.2.1\"]\n", "")
                .replace("[\"a\", \"b\"]", "[\"d\", \"b\"]")
                .replace(
                    "[regions.c]",
                    "[regions.d]\naddresses = [\"192.0.2.4\"]\n[regions.c]",
                ),
        );
        let c2 = Arc::new(AnswerCounters::carried_over(m2.clone(), &c));
        count(&c2, &m2, 0, Some(1), 2); // d is region 1 in m2
        let r = t.report(now, &c2.totals(), &m2);
        assert_eq!(shares(&r, "www.x"), [("d".into(), 2), ("b".into(), 5)]);
    }
}
