//! Answers of each dynamic record by region: the traffic share an operator watches during
//! an outage.
//!
//! The cells are laid out for one config and tied to that config's [`Model`] by pointer:
//! one row per record, with a cell for each region that record can answer with (its
//! candidates, and for a geo record the regions its rules name) and one for answers with
//! no address. Memory follows what the config uses, not records × regions: 50,000
//! records of two regions each among 10,000 take 150,000 cells, not 500 million. A
//! reload lays out new cells for the new model, starting from the old totals matched by
//! name, and keeps the old cells beside them until the next reload: a query still
//! answering from the old snapshot in the instant of the swap counts there
//! ([`AnswerCounters::count`]), and what it adds still shows in the new totals. Nothing
//! is lost, nothing counted twice.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;

use super::cells::Cells;
use super::family;
use crate::model::{DynRecord, Model, Policy, RecordId, RegionId};

/// No cell of the previous layout (in [`Previous::map`]).
const NO_CELL: u32 = u32::MAX;

/// Answers by dynamic record and region, for one model.
#[derive(Debug)]
pub struct AnswerCounters {
    /// The config these cells are laid out for. Weak: the layout before a reload is kept
    /// until the next one, and must not keep that whole config alive; the allocation
    /// stays, so its address cannot be taken by another model.
    model: Weak<Model>,
    layout: Layout,
    cells: Cells,
    /// Totals carried over from the previous layout, per cell.
    base: Box<[u64]>,
    /// The previous layout, while queries may still count into it.
    prev: ArcSwapOption<Previous>,
}

/// Which cell counts what: record `r`'s regions are `cols[rows[r]..rows[r + 1]]`
/// (sorted), the cell of the one at `cols[p]` is `p + r`, and the record's last cell,
/// `rows[r + 1] + r`, counts its answers with no address.
#[derive(Debug)]
struct Layout {
    records: Vec<String>,
    regions: Vec<String>,
    rows: Box<[usize]>,
    cols: Box<[RegionId]>,
}

impl Layout {
    fn new(model: &Model) -> Layout {
        let mut rows = Vec::with_capacity(model.records.len() + 1);
        let mut cols = Vec::new();
        rows.push(0);
        for rec in &model.records {
            let start = cols.len();
            cols.extend(answering(rec));
            cols[start..].sort_unstable();
            let mut row = cols.split_off(start);
            row.dedup();
            cols.extend(row);
            rows.push(cols.len());
        }
        Layout {
            records: (model.records.iter())
                .map(|r| r.name.trim_end_matches('.').to_string())
                .collect(),
            regions: model.regions.iter().map(|r| r.name.clone()).collect(),
            rows: rows.into(),
            cols: cols.into(),
        }
    }

    /// Every cell: one per record and region it uses, plus one per record.
    fn len(&self) -> usize {
        self.cols.len() + self.records.len()
    }

    /// The regions of record `r`, in cell order (its no-address cell follows them).
    fn row(&self, r: usize) -> &[RegionId] {
        &self.cols[self.rows[r]..self.rows[r + 1]]
    }

    /// The cell of (`record`, `region`), `None` when that record cannot answer with that
    /// region.
    fn cell(&self, record: usize, region: Option<RegionId>) -> Option<usize> {
        let start = *self.rows.get(record)?;
        match region {
            None => Some(self.rows[record + 1] + record),
            Some(id) => Some(start + self.row(record).binary_search(&id).ok()? + record),
        }
    }
}

/// The regions `rec` may answer with: its candidates and, for a geo record, every region
/// its rules name (geo lists may name regions outside `regions`).
fn answering(rec: &DynRecord) -> impl Iterator<Item = RegionId> + '_ {
    let rules = match &rec.policy {
        Policy::Geo(rules) => Some(&**rules),
        _ => None,
    };
    let lists = rules.into_iter().flat_map(|g| {
        let coded = g.continent.values().chain(g.country.values());
        let coded = coded.chain(g.subdivision.values());
        let cidr = g.cidr.iter().map(|(_, l)| l);
        let orders = g.compiled.orders.iter().map(|o| &**o);
        (coded.chain(cidr).chain(g.default.iter()))
            .map(Vec::as_slice)
            .chain(orders)
    });
    rec.regions.iter().chain(lists.flatten()).copied()
}

/// The answer totals at one moment ([`AnswerCounters::totals`]), for the records and the
/// regions each can answer with (as the counters are laid out: linear in what the config
/// uses).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerTotals {
    /// The dynamic names, without the trailing dot.
    pub records: Vec<String>,
    /// The regions; column `regions.len()` is `none` (no address).
    pub regions: Vec<String>,
    /// Per record, (column, total) sorted by column, `none` last.
    rows: Vec<Vec<(usize, u64)>>,
}

impl AnswerTotals {
    /// The answers of record `record` (an index into `records`) from region column `col`
    /// (an index into `regions`, or `regions.len()` for none); 0 for a region the record
    /// cannot answer with.
    pub fn get(&self, record: usize, col: usize) -> u64 {
        let Some(row) = self.rows.get(record) else {
            return 0;
        };
        row.binary_search_by_key(&col, |(c, _)| *c)
            .map_or(0, |i| row[i].1)
    }

    /// The (column, total) cells of `record`: the regions it can answer with, then none.
    pub fn row(&self, record: usize) -> &[(usize, u64)] {
        self.rows.get(record).map_or(&[], Vec::as_slice)
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
    /// For each cell of the new layout, the old cell of the same record and region
    /// ([`NO_CELL`]: none).
    map: Box<[u32]>,
    /// The old cells' own counts when the new layout took over (already in `base`).
    at: Box<[u64]>,
}

impl Previous {
    fn old(&self, i: usize) -> Option<usize> {
        Some(self.map[i])
            .filter(|&o| o != NO_CELL)
            .map(|o| o as usize)
    }
}

impl AnswerCounters {
    /// Zeroed counters for `model`'s records and the regions each can answer with.
    pub fn new(model: Arc<Model>) -> AnswerCounters {
        let layout = Layout::new(&model);
        let len = layout.len();
        AnswerCounters {
            model: Arc::downgrade(&model),
            layout,
            cells: Cells::new(len),
            base: vec![0; len].into_boxed_slice(),
            prev: ArcSwapOption::empty(),
        }
    }

    /// Counters for `model` that continue `old`'s totals where record and region names
    /// match, and take the counts of queries still answering from `old`'s model.
    pub fn carried_over(model: Arc<Model>, old: &Arc<AnswerCounters>) -> AnswerCounters {
        let mut new = AnswerCounters::new(model);
        // By name, through hash maps: a config of many records and regions carries over
        // in time linear in its cells.
        let (was, now) = (&old.layout, &new.layout);
        let old_records: HashMap<&str, usize> = (was.records.iter())
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let old_regions: HashMap<&str, RegionId> = (was.regions.iter())
            .enumerate()
            .filter_map(|(i, n)| Some((n.as_str(), RegionId(u16::try_from(i).ok()?))))
            .collect();
        // The old region of each new region id, by name.
        let region_map: Vec<Option<RegionId>> = (now.regions.iter())
            .map(|n| old_regions.get(n.as_str()).copied())
            .collect();
        let mut map = Vec::with_capacity(now.len());
        for (r, name) in now.records.iter().enumerate() {
            let row = old_records.get(name.as_str()).copied();
            let cols = now.row(r).iter().map(|id| Some(*id)).chain([None]);
            map.extend(cols.map(|region| {
                let Some(row) = row else { return NO_CELL };
                let old_region = match region {
                    Some(id) => match region_map[id.index()] {
                        Some(old_id) => Some(old_id),
                        None => return NO_CELL,
                    },
                    None => None,
                };
                (was.cell(row, old_region))
                    .and_then(|o| u32::try_from(o).ok())
                    .unwrap_or(NO_CELL)
            }));
        }
        debug_assert_eq!(map.len(), now.len());
        let prev = Previous {
            counters: old.clone(),
            map: map.into(),
            at: Box::new([]),
        };
        let at: Box<[u64]> = (0..now.len())
            .map(|i| prev.old(i).map_or(0, |o| old.cells.get(o)))
            .collect();
        let before = old.prev.load();
        new.base = (0..now.len())
            .map(|i| {
                prev.old(i)
                    .map_or(0, |o| old.total_with(before.as_deref(), o))
            })
            .collect();
        drop(before);
        // Two layouts back, nothing counts any more: its totals are in `base` now.
        old.prev.store(None);
        new.prev.store(Some(Arc::new(Previous { at, ..prev })));
        new
    }

    /// True when these cells are laid out for `model`.
    pub fn is_for(&self, model: &Arc<Model>) -> bool {
        std::ptr::eq(self.model.as_ptr(), Arc::as_ptr(model))
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
        match self.layout.cell(record.index(), region) {
            Some(i) => self.cells.add(i),
            // Every region a record's policy can rank has a cell (`answering`).
            None => debug_assert!(false, "no cell for {record:?} {region:?}"),
        }
    }

    /// The total of cell `i`: carried over, counted here, and counted in the previous
    /// layout since this one took over.
    fn total(&self, i: usize) -> u64 {
        self.total_with(self.prev.load().as_deref(), i)
    }

    /// [`AnswerCounters::total`] with `prev` loaded once for many cells.
    fn total_with(&self, prev: Option<&Previous>, i: usize) -> u64 {
        let late = prev.map_or(0, |p| {
            p.old(i)
                .map_or(0, |o| p.counters.cells.get(o).saturating_sub(p.at[i]))
        });
        self.base[i] + self.cells.get(i) + late
    }

    /// The count for (record, region name), for tests.
    pub fn get(&self, record: &str, region: &str) -> u64 {
        let l = &self.layout;
        let r = l
            .records
            .iter()
            .position(|x| x == record.trim_end_matches('.'));
        let c = l.regions.iter().position(|x| x == region);
        let cell = match (r, c.and_then(|c| u16::try_from(c).ok())) {
            (Some(r), Some(c)) => l.cell(r, Some(RegionId(c))),
            _ => None,
        };
        cell.map_or(0, |i| self.total(i))
    }

    /// Every total by record and region name (`none` last), read off the query path: the
    /// status page samples these to show each name's traffic share.
    pub fn totals(&self) -> AnswerTotals {
        let (l, prev) = (&self.layout, self.prev.load());
        let none = l.regions.len();
        let rows = (0..l.records.len())
            .map(|ri| {
                let cols = l.row(ri).iter().map(|id| id.index()).chain([none]);
                cols.enumerate()
                    .map(|(k, c)| (c, self.total_with(prev.as_deref(), l.rows[ri] + ri + k)))
                    .collect()
            })
            .collect();
        AnswerTotals {
            records: l.records.clone(),
            regions: l.regions.clone(),
            rows,
        }
    }

    /// Appends the `gslbd_answers_total` family: one series per record and region it
    /// can answer with, and one for its answers with no address (`region="none"`).
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "gslbd_answers_total",
            "counter",
            "Answers to A/AAAA queries of each dynamic name, by the region that answered (\"none\": no address).",
        );
        let (l, prev) = (&self.layout, self.prev.load());
        for (ri, rec) in l.records.iter().enumerate() {
            let names = l.row(ri).iter().map(|id| l.regions[id.index()].as_str());
            for (k, region) in names.chain(["none"]).enumerate() {
                let v = self.total_with(prev.as_deref(), l.rows[ri] + ri + k);
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

    #[test]
    fn cells_follow_the_regions_each_record_uses() {
        // 1,000 regions; two records of two regions each, one of them geo with a rule
        // naming a region outside its candidates.
        let mut text = String::new();
        for i in 0..1000 {
            text += &format!("[regions.r{i}]\naddresses = [\"192.0.2.1\"]\n");
        }
        text += "[records.\"a.x\"]\npolicy = \"failover\"\nregions = [\"r7\", \"r3\"]\n";
        text += "[records.\"b.x\"]\npolicy = \"geo\"\nregions = [\"r1\", \"r2\"]\n";
        text += "[records.\"b.x\".geo]\ncontinent.EU = [\"r999\", \"r1\"]\n";
        let m = Arc::new(crate::config::parse(&text, Path::new("g.toml")).unwrap());
        let a = Arc::new(AnswerCounters::new(m.clone()));
        // a.x: r3, r7, none; b.x: r1, r2, r999, none. Not 2 × 1,001.
        assert_eq!(a.cells.len(), 7);
        // Kept until the reload after next, the counters must not keep a config alive.
        assert_eq!(Arc::strong_count(&m), 1);
        a.count(&m, RecordId(0), Some(RegionId(7)));
        a.count(&m, RecordId(1), Some(RegionId(999)));
        a.count(&m, RecordId(1), None);
        assert_eq!(a.get("a.x", "r7"), 1);
        assert_eq!(a.get("b.x", "r999"), 1);
        assert_eq!(a.get("b.x", "r1"), 0);
        let mut s = String::new();
        a.render(&mut s);
        let series: Vec<&str> = s.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                "gslbd_answers_total{record=\"a.x\",region=\"r3\"} 0",
                "gslbd_answers_total{record=\"a.x\",region=\"r7\"} 1",
                "gslbd_answers_total{record=\"a.x\",region=\"none\"} 0",
                "gslbd_answers_total{record=\"b.x\",region=\"r1\"} 0",
                "gslbd_answers_total{record=\"b.x\",region=\"r2\"} 0",
                "gslbd_answers_total{record=\"b.x\",region=\"r999\"} 1",
                "gslbd_answers_total{record=\"b.x\",region=\"none\"} 1",
            ]
        );
        // Carried over to a config where a.x lost r7 and gained r5.
        let text2 = text.replace("[\"r7\", \"r3\"]", "[\"r5\", \"r3\"]");
        let m2 = Arc::new(crate::config::parse(&text2, Path::new("g.toml")).unwrap());
        let b = AnswerCounters::carried_over(m2.clone(), &a);
        assert_eq!(b.cells.len(), 7);
        assert_eq!(b.get("a.x", "r7"), 0);
        assert_eq!(b.get("b.x", "r999"), 1);
        assert_eq!(b.get("b.x", "none"), 0, "\"none\" is no region name");
        a.count(&m, RecordId(1), Some(RegionId(999)));
        assert_eq!(
            b.get("b.x", "r999"),
            2,
            "late counts of the old config show"
        );
    }
}
