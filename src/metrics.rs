//! Counters in atomics, and their Prometheus text exposition.
//!
//! The query path only does relaxed `fetch_add`s on counters laid out at startup (per
//! transport × rcode × qtype) or at config load (per dynamic record × region): no lock,
//! no allocation, no map lookup. Everything else (region states, probe results) is read
//! from the health owner when `/metrics` is scraped.
//!
//! Query-path counters are sharded ([`Cells`]): each thread adds to its own copy, in its
//! own cache lines, and a scrape sums the copies. With one shared copy every UDP worker
//! on every core would write the same line for the same answer (`udp`/`NOERROR`/`A`,
//! `www`/`eu`), and the line would bounce between cores on each query: 4.5 ns a count
//! alone, 34 ns beside one other counting thread on this 2-core VM (`cargo bench --bench
//! query_path -- counters`), and worse with more cores.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::model::{Model, RecordId};

/// Transports a query can arrive on.
pub const TRANSPORTS: [&str; 2] = ["udp", "tcp"];
/// RCODEs counted by name; anything else is `other`.
pub const RCODES: [(u16, &str); 7] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (16, "BADVERS"),
];
/// Query types counted by name; anything else is `other`.
pub const QTYPES: [(u16, &str); 16] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (2, "NS"),
    (6, "SOA"),
    (15, "MX"),
    (16, "TXT"),
    (33, "SRV"),
    (12, "PTR"),
    (257, "CAA"),
    (65, "HTTPS"),
    (64, "SVCB"),
    (43, "DS"),
    (48, "DNSKEY"),
    (255, "ANY"),
    (252, "AXFR"),
];
const R: usize = RCODES.len() + 1;
const Q: usize = QTYPES.len() + 1;

/// Counters a cache line holds.
const PER_LINE: usize = 8;
/// Most shards a set of cells has.
const MAX_SHARDS: usize = 64;
/// Memory a set of cells may take for all its shards; a large config gets fewer shards.
const MAX_BYTES: usize = 4 << 20;

/// Two cache lines: the adjacent-line prefetcher fetches pairs, so a shard ending in one
/// line of a pair would still share it with the next shard.
#[derive(Debug)]
#[repr(align(128))]
struct Line([AtomicU64; PER_LINE * 2]);

impl Line {
    fn zero() -> Line {
        Line([const { AtomicU64::new(0) }; PER_LINE * 2])
    }
}

/// `len` counters, one copy per shard; a thread adds to the copy of its shard
/// ([`thread_shard`]), reads sum the copies.
#[derive(Debug)]
pub struct Cells {
    len: usize,
    /// Lines per shard.
    stride: usize,
    /// A power of two.
    shards: usize,
    lines: Box<[Line]>,
}

impl Cells {
    /// `len` zeroed counters with one shard per core (a power of two, at most
    /// [`MAX_SHARDS`]), fewer when that would pass [`MAX_BYTES`].
    pub fn new(len: usize) -> Cells {
        Cells::with_shards(len, shard_count())
    }

    /// `len` zeroed counters in up to `shards` shards (rounded down to a power of two).
    fn with_shards(len: usize, shards: usize) -> Cells {
        let stride = len.div_ceil(PER_LINE * 2).max(1);
        let fit = (MAX_BYTES / (stride * size_of::<Line>())).max(1);
        let shards = prev_power_of_two(shards.min(fit));
        Cells {
            len,
            stride,
            shards,
            lines: (0..stride * shards).map(|_| Line::zero()).collect(),
        }
    }

    fn cell(&self, shard: usize, i: usize) -> &AtomicU64 {
        let n = (shard & (self.shards - 1)) * self.stride * PER_LINE * 2 + i;
        &self.lines[n / (PER_LINE * 2)].0[n % (PER_LINE * 2)]
    }

    /// Adds one to counter `i` (ignored past the end).
    pub fn add(&self, i: usize) {
        if i < self.len {
            self.cell(thread_shard(), i).fetch_add(1, Relaxed);
        }
    }

    /// Counter `i`: the sum of its copies.
    pub fn get(&self, i: usize) -> u64 {
        if i >= self.len {
            return 0;
        }
        (0..self.shards)
            .map(|s| self.cell(s, i).load(Relaxed))
            .sum()
    }

    /// Sets counter `i` to `v` (for carrying totals over to new cells, before use).
    fn set(&self, i: usize, v: u64) {
        if i < self.len {
            for s in 0..self.shards {
                self.cell(s, i).store(if s == 0 { v } else { 0 }, Relaxed);
            }
        }
    }

    /// How many counters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

/// Shards per set of cells: the number of cores rounded up to a power of two, at most
/// [`MAX_SHARDS`].
fn shard_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// This thread's shard number: threads are numbered in the order they first count, so
/// the UDP workers, which count from their first query on, get shards of their own.
pub fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        let mut v = s.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Relaxed);
            s.set(v);
        }
        v
    })
}

/// Queries answered, by transport, rcode and qtype. One per process: survives reloads.
#[derive(Debug)]
pub struct QueryCounters {
    cells: Cells,
    /// Reloads that took effect.
    pub reloads_ok: AtomicU64,
    /// Reloads refused because the new config, zones or GeoIP DB had errors.
    pub reloads_failed: AtomicU64,
    /// UDP datagrams dropped without an answer (too short, QR=1, port 0).
    pub dropped: AtomicU64,
    /// TCP connections closed at once because `tcp.max_connections` were open.
    pub tcp_refused: AtomicU64,
}

impl Default for QueryCounters {
    fn default() -> Self {
        QueryCounters {
            cells: Cells::new(TRANSPORTS.len() * R * Q),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            tcp_refused: AtomicU64::new(0),
        }
    }
}

impl QueryCounters {
    /// Counts one answered query. `tcp` selects the transport.
    pub fn count(&self, tcp: bool, rcode: u16, qtype: u16) {
        let r = RCODES
            .iter()
            .position(|(c, _)| *c == rcode)
            .unwrap_or(RCODES.len());
        let q = QTYPES
            .iter()
            .position(|(c, _)| *c == qtype)
            .unwrap_or(QTYPES.len());
        self.cells.add((usize::from(tcp) * R + r) * Q + q);
    }

    /// Total of every cell (for tests and summaries).
    pub fn total(&self) -> u64 {
        (0..self.cells.len()).map(|i| self.cells.get(i)).sum()
    }

    /// Appends the `gslbd_queries_total` family and the reload counters.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "gslbd_queries_total",
            "counter",
            "DNS queries answered, by transport, response code and query type.",
        );
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for r in 0..R {
                let rcode = RCODES.get(r).map_or("other", |x| x.1);
                for q in 0..Q {
                    let v = self.cells.get((t * R + r) * Q + q);
                    if v > 0 {
                        let qtype = QTYPES.get(q).map_or("other", |x| x.1);
                        let _ = writeln!(
                            out,
                            "gslbd_queries_total{{transport=\"{transport}\",rcode=\"{rcode}\",qtype=\"{qtype}\"}} {v}"
                        );
                    }
                }
            }
        }
        family(
            out,
            "gslbd_udp_dropped_total",
            "counter",
            "UDP datagrams dropped without an answer (shorter than a header, QR=1, source port 0).",
        );
        let _ = writeln!(
            out,
            "gslbd_udp_dropped_total {}",
            self.dropped.load(Relaxed)
        );
        family(
            out,
            "gslbd_reloads_total",
            "counter",
            "Reloads of config, zones and GeoIP DB, by result.",
        );
        let _ = writeln!(
            out,
            "gslbd_reloads_total{{result=\"ok\"}} {}",
            self.reloads_ok.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "gslbd_reloads_total{{result=\"failed\"}} {}",
            self.reloads_failed.load(Relaxed)
        );
    }
}

/// Answers of each dynamic record by region: the traffic share an operator watches
/// during an outage. Laid out per model; a reload carries totals over by name.
#[derive(Debug)]
pub struct AnswerCounters {
    records: Vec<String>,
    regions: Vec<String>,
    /// records × (regions + 1); the last column counts answers with no address.
    cells: Cells,
}

impl AnswerCounters {
    /// Zeroed counters for `model`'s records and regions.
    pub fn new(model: &Model) -> AnswerCounters {
        let records: Vec<String> = model
            .records
            .iter()
            .map(|r| r.name.trim_end_matches('.').to_string())
            .collect();
        let regions: Vec<String> = model.regions.iter().map(|r| r.name.clone()).collect();
        let cells = Cells::new(records.len() * (regions.len() + 1));
        AnswerCounters {
            records,
            regions,
            cells,
        }
    }

    /// Counters for `model` that continue `old`'s totals where record and region names match.
    pub fn carried_over(model: &Model, old: &AnswerCounters) -> AnswerCounters {
        let new = AnswerCounters::new(model);
        for (ri, rec) in new.records.iter().enumerate() {
            let Some(oi) = old.records.iter().position(|r| r == rec) else {
                continue;
            };
            for col in 0..=new.regions.len() {
                let old_col = match new.regions.get(col) {
                    Some(name) => old.regions.iter().position(|r| r == name),
                    None => Some(old.regions.len()),
                };
                if let Some(oc) = old_col {
                    let v = old.cells.get(oi * (old.regions.len() + 1) + oc);
                    new.cells.set(ri * (new.regions.len() + 1) + col, v);
                }
            }
        }
        new
    }

    /// Counts one answer of `record` from region index `region` (`None`: no address).
    pub fn count(&self, record: RecordId, region: Option<usize>) {
        let width = self.regions.len() + 1;
        let col = region.unwrap_or(self.regions.len()).min(self.regions.len());
        self.cells.add(record.index() * width + col);
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
        self.cells.get(r * (self.regions.len() + 1) + c)
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
                let v = self.cells.get(ri * width + col);
                let _ = writeln!(
                    out,
                    "gslbd_answers_total{{record=\"{rec}\",region=\"{region}\"}} {v}"
                );
            }
        }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn counts_from_many_threads_all_add_up() {
        let cells = Cells::with_shards(100, 4);
        assert_eq!(cells.shards, 4);
        std::thread::scope(|s| {
            for t in 0..8 {
                let cells = &cells;
                s.spawn(move || {
                    for n in 0..10_000 {
                        cells.add((t * 7 + n) % 100);
                    }
                });
            }
        });
        assert_eq!((0..100).map(|i| cells.get(i)).sum::<u64>(), 80_000);
        assert_eq!(cells.get(3), 800);
        cells.add(100);
        assert_eq!(cells.get(100), 0, "past the end: ignored");
        cells.set(3, 5);
        assert_eq!(cells.get(3), 5);
    }

    #[test]
    fn each_shard_has_cache_lines_of_its_own() {
        for len in [1, 15, 16, 17, 272, 1000] {
            let cells = Cells::with_shards(len, 8);
            assert_eq!(cells.shards, 8);
            let addr = |s: usize, i: usize| std::ptr::from_ref(cells.cell(s, i)) as usize;
            for s in 0..8 {
                assert_eq!(
                    addr(s, 0) % 128,
                    0,
                    "len {len}: shard {s} starts a line pair"
                );
                assert!(addr(s, len - 1) - addr(s, 0) < cells.stride * 128);
                if s > 0 {
                    assert!(
                        addr(s, 0) > addr(s - 1, len - 1),
                        "len {len}: shards in order"
                    );
                }
            }
        }
        assert_ne!(
            std::thread::spawn(thread_shard).join().unwrap(),
            std::thread::spawn(thread_shard).join().unwrap(),
            "two threads, two shards"
        );
    }

    #[test]
    fn a_large_config_gets_fewer_shards() {
        // 1M counters are 8 MiB a copy: one copy only.
        let big = Cells::with_shards(1 << 20, 64);
        assert_eq!(big.shards, 1);
        let mid = Cells::with_shards(100_000, 64);
        assert!(mid.shards * mid.stride * 128 <= MAX_BYTES, "{}", mid.shards);
        assert_eq!(mid.shards, 4);
        assert_eq!(Cells::with_shards(10, 3).shards, 2, "a power of two");
    }

    #[test]
    fn query_counters_render_only_seen_cells() {
        let q = QueryCounters::default();
        q.count(false, 0, 1);
        q.count(false, 0, 1);
        q.count(true, 3, 28);
        q.count(false, 9, 999);
        let mut s = String::new();
        q.render(&mut s);
        assert!(
            s.contains("gslbd_queries_total{transport=\"udp\",rcode=\"NOERROR\",qtype=\"A\"} 2\n"),
            "{s}"
        );
        assert!(s.contains(
            "gslbd_queries_total{transport=\"tcp\",rcode=\"NXDOMAIN\",qtype=\"AAAA\"} 1\n"
        ));
        assert!(s.contains("{transport=\"udp\",rcode=\"other\",qtype=\"other\"} 1\n"));
        assert_eq!(q.total(), 4);
        assert!(s.contains("# TYPE gslbd_queries_total counter"));
    }

    #[test]
    fn answer_counters_carry_over_by_name() {
        let text = |regions: &str| {
            format!(
                "{regions}[records.\"www.x\"]\npolicy = \"failover\"\n[records.\"db.x\"]\npolicy = \"failover\"\n"
            )
        };
        let ab =
            "[regions.a]\naddresses = [\"192.0.2.1\"]\n[regions.b]\naddresses = [\"192.0.2.2\"]\n";
        let ba =
            "[regions.c]\naddresses = [\"192.0.2.3\"]\n[regions.b]\naddresses = [\"192.0.2.2\"]\n";
        let m1 = crate::config::parse(&text(ab), Path::new("g.toml")).unwrap();
        let m2 = crate::config::parse(&text(ba), Path::new("g.toml")).unwrap();
        let a = AnswerCounters::new(&m1);
        a.count(RecordId(0), Some(1));
        a.count(RecordId(0), Some(1));
        a.count(RecordId(1), None);
        let b = AnswerCounters::carried_over(&m2, &a);
        assert_eq!(b.get("www.x", "b"), 2);
        assert_eq!(b.get("www.x", "c"), 0);
        let mut s = String::new();
        b.render(&mut s);
        assert!(
            s.contains("gslbd_answers_total{record=\"db.x\",region=\"none\"} 1\n"),
            "{s}"
        );
    }
}
