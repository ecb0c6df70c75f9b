//! Answers of each dynamic record by region: the traffic share an operator watches during
//! an outage.
//!
//! The cells are laid out for one config (records × regions, indexed by id, so counting
//! is one add) and tied to that config's [`Model`] by pointer. A reload lays out new
//! cells for the new model, starting from the old totals matched by name, and keeps the
//! old cells beside them until the next reload: a query still answering from the old
//! snapshot in the instant of the swap counts there ([`AnswerCounters::count`]), and
//! what it adds still shows in the new totals. Nothing is lost, nothing counted twice.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::cells::Cells;
use super::family;
use crate::model::{Model, RecordId, RegionId};

/// Answers by dynamic record and region, for one model.
#[derive(Debug)]
pub struct AnswerCounters {
    /// The config these cells are laid out for.
    model: Arc<Model>,
    records: Vec<String>,
    regions: Vec<String>,
    /// records × (regions + 1); the last column counts answers with no address.
    cells: Cells,
    /// Totals carried over from the previous layout, per cell.
    base: Box<[u64]>,
    /// The previous layout, while queries may still count into it.
    prev: ArcSwapOption<Previous>,
}

/// The answer totals at one moment ([`AnswerCounters::totals`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerTotals {
    /// The dynamic names, without the trailing dot.
    pub records: Vec<String>,
    /// The regions; each row has one more column, `none` (no address).
    pub regions: Vec<String>,
    /// records × (regions + 1).
    cells: Vec<u64>,
}

impl AnswerTotals {
    /// The answers of record `record` (an index into `records`) from region column `col`
    /// (an index into `regions`, or `regions.len()` for none).
    pub fn get(&self, record: usize, col: usize) -> u64 {
        let width = self.regions.len() + 1;
        if col >= width {
            return 0;
        }
        self.cells.get(record * width + col).copied().unwrap_or(0)
    }

    /// The answers of `record` from `region` by name (`none`: no address); 0 when either
    /// is unknown (not configured when these totals were read).
    pub fn by_name(&self, record: &str, region: &str) -> u64 {
        let Some(r) = self.records.iter().position(|x| x == record) else {
            return 0;
        };
        let col = match region {
            "none" => self.regions.len(),
            _ => match self.regions.iter().position(|x| x == region) {
                Some(c) => c,
                None => return 0,
            },
        };
        self.get(r, col)
    }
}

/// The layout before the last reload, and how its cells map onto this one.
#[derive(Debug)]
struct Previous {
    counters: Arc<AnswerCounters>,
    /// For each cell of the new layout, the old cell of the same record and region.
    map: Box<[Option<usize>]>,
    /// The old cells' own counts when the new layout took over (already in `base`).
    at: Box<[u64]>,
}

impl AnswerCounters {
    /// Zeroed counters for `model`'s records and regions.
    pub fn new(model: Arc<Model>) -> AnswerCounters {
        let records: Vec<String> = model
            .records
            .iter()
            .map(|r| r.name.trim_end_matches('.').to_string())
            .collect();
        let regions: Vec<String> = model.regions.iter().map(|r| r.name.clone()).collect();
        let len = records.len() * (regions.len() + 1);
        AnswerCounters {
            model,
            records,
            regions,
            cells: Cells::new(len),
            base: vec![0; len].into_boxed_slice(),
            prev: ArcSwapOption::empty(),
        }
    }

    /// Counters for `model` that continue `old`'s totals where record and region names
    /// match, and take the counts of queries still answering from `old`'s model.
    pub fn carried_over(model: Arc<Model>, old: &Arc<AnswerCounters>) -> AnswerCounters {
        let mut new = AnswerCounters::new(model);
        let width = new.regions.len() + 1;
        // By name, through hash maps: a config of many records and regions carries over
        // in time linear in its cells.
        let index = |names: &[String]| -> HashMap<String, usize> {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect()
        };
        let (old_records, old_regions) = (index(&old.records), index(&old.regions));
        let columns: Vec<Option<usize>> = new
            .regions
            .iter()
            .map(|r| old_regions.get(r).copied())
            .chain([Some(old.regions.len())])
            .collect();
        let map: Box<[Option<usize>]> = new
            .records
            .iter()
            .flat_map(|r| {
                let row = old_records.get(r).copied();
                columns
                    .iter()
                    .map(move |c| Some(row? * (old.regions.len() + 1) + (*c)?))
            })
            .collect();
        debug_assert_eq!(map.len(), new.records.len() * width);
        let at: Box<[u64]> = map
            .iter()
            .map(|o| o.map_or(0, |o| old.cells.get(o)))
            .collect();
        new.base = map.iter().map(|o| o.map_or(0, |o| old.total(o))).collect();
        // Two layouts back, nothing counts any more: its totals are in `base` now.
        old.prev.store(None);
        new.prev.store(Some(Arc::new(Previous {
            counters: old.clone(),
            map,
            at,
        })));
        new
    }

    /// True when these cells are laid out for `model`.
    pub fn is_for(&self, model: &Arc<Model>) -> bool {
        Arc::ptr_eq(&self.model, model)
    }

    /// Counts one answer of `record` from `region` (`None`: no address), for a query
    /// answered from `model`: into these cells, or the previous layout's when the query
    /// was answered from the config before the last reload.
    pub fn count(&self, model: &Arc<Model>, record: RecordId, region: Option<RegionId>) {
        if self.is_for(model) {
            self.add(record, region);
        } else if let Some(p) = &*self.prev.load() {
            if p.counters.is_for(model) {
                p.counters.add(record, region);
            }
        }
    }

    fn add(&self, record: RecordId, region: Option<RegionId>) {
        let width = self.regions.len() + 1;
        let col = region.map_or(self.regions.len(), RegionId::index);
        self.cells
            .add(record.index() * width + col.min(self.regions.len()));
    }

    /// The total of cell `i`: carried over, counted here, and counted in the previous
    /// layout since this one took over.
    fn total(&self, i: usize) -> u64 {
        let late = self.prev.load().as_ref().map_or(0, |p| {
            p.map[i].map_or(0, |o| p.counters.cells.get(o).saturating_sub(p.at[i]))
        });
        self.base[i] + self.cells.get(i) + late
    }

    /// The count for (record, region name), for tests.
    pub fn get(&self, record: &str, region: &str) -> u64 {
        let (Some(r), Some(c)) = (
            self.records
                .iter()
                .position(|x| x == record.trim_end_matches('.')),
            self.regions.iter().position(|x| x == region),
        ) else {
            return 0;
        };
        self.total(r * (self.regions.len() + 1) + c)
    }

    /// Every total by record and region name (`none` last), read off the query path: the
    /// status page samples these to show each name's traffic share.
    pub fn totals(&self) -> AnswerTotals {
        let width = self.regions.len() + 1;
        AnswerTotals {
            records: self.records.clone(),
            regions: self.regions.clone(),
            cells: (0..self.records.len() * width)
                .map(|i| self.total(i))
                .collect(),
        }
    }

    /// Appends the `gslbd_answers_total` family.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "gslbd_answers_total",
            "counter",
            "Answers to A/AAAA queries of each dynamic name, by the region that answered (\"none\": no address).",
        );
        let width = self.regions.len() + 1;
        for (ri, rec) in self.records.iter().enumerate() {
            for col in 0..width {
                let region = self.regions.get(col).map_or("none", String::as_str);
                let v = self.total(ri * width + col);
                let _ = writeln!(
                    out,
                    "gslbd_answers_total{{record=\"{rec}\",region=\"{region}\"}} {v}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn model(regions: &str) -> Arc<Model> {
        let text = format!(
            "{regions}[records.\"www.x\"]\npolicy = \"failover\"\n[records.\"db.x\"]\npolicy = \"failover\"\n"
        );
        Arc::new(crate::config::parse(&text, Path::new("g.toml")).unwrap())
    }

    #[test]
    fn answer_counters_carry_over_by_name() {
        let m1 = model(
            "[regions.a]\naddresses = [\"192.0.2.1\"]\n[regions.b]\naddresses = [\"192.0.2.2\"]\n",
        );
        let m2 = model(
            "[regions.c]\naddresses = [\"192.0.2.3\"]\n[regions.b]\naddresses = [\"192.0.2.2\"]\n",
        );
        let a = Arc::new(AnswerCounters::new(m1.clone()));
        a.count(&m1, RecordId(0), Some(RegionId(1)));
        a.count(&m1, RecordId(0), Some(RegionId(1)));
        a.count(&m1, RecordId(1), None);
        let b = Arc::new(AnswerCounters::carried_over(m2.clone(), &a));
        assert_eq!(b.get("www.x", "b"), 2);
        assert_eq!(b.get("www.x", "c"), 0);
        // A query still answering from the old config counts in the old layout, and the
        // new totals show it.
        b.count(&m1, RecordId(0), Some(RegionId(1)));
        b.count(&m2, RecordId(0), Some(RegionId(1)));
        assert_eq!(b.get("www.x", "b"), 4);
        let mut s = String::new();
        b.render(&mut s);
        assert!(
            s.contains("gslbd_answers_total{record=\"db.x\",region=\"none\"} 1\n"),
            "{s}"
        );
        // A third layout takes every total along, and drops the first.
        let c = AnswerCounters::carried_over(m1.clone(), &b);
        assert_eq!(c.get("www.x", "b"), 4);
        assert!(b.prev.load().is_none(), "two layouts back is let go");
        c.count(&m2, RecordId(0), Some(RegionId(1)));
        assert_eq!(c.get("www.x", "b"), 5);
        c.count(&m1, RecordId(0), Some(RegionId(0)));
        assert_eq!(c.get("www.x", "a"), 1);
        let t = c.totals();
        assert_eq!(t.by_name("www.x", "b"), 5);
        assert_eq!(t.by_name("www.x", "a"), 1);
        assert_eq!(t.by_name("db.x", "none"), 1);
        assert_eq!(t.by_name("db.x", "zz"), 0);
        assert_eq!(t.get(1, t.regions.len()), 1);
    }
}
