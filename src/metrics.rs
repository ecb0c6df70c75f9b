//! Counters in atomics, and their Prometheus text exposition.
//!
//! The query path only does relaxed `fetch_add`s on counters laid out at startup (per
//! transport × rcode × qtype) or at config load (per dynamic record × region): no lock,
//! no allocation, no map lookup. Everything else (region states, probe results) is read
//! from the health owner when `/metrics` is scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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

/// Queries answered, by transport, rcode and qtype. One per process: survives reloads.
#[derive(Debug)]
pub struct QueryCounters {
    cells: Vec<AtomicU64>,
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
            cells: (0..TRANSPORTS.len() * R * Q)
                .map(|_| AtomicU64::new(0))
                .collect(),
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
        let i = (usize::from(tcp) * R + r) * Q + q;
        self.cells[i].fetch_add(1, Relaxed);
    }

    /// Total of every cell (for tests and summaries).
    pub fn total(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Relaxed)).sum()
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
                    let v = self.cells[(t * R + r) * Q + q].load(Relaxed);
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
    cells: Vec<AtomicU64>,
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
        let cells = (0..records.len() * (regions.len() + 1))
            .map(|_| AtomicU64::new(0))
            .collect();
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
                    let v = old.cells[oi * (old.regions.len() + 1) + oc].load(Relaxed);
                    new.cells[ri * (new.regions.len() + 1) + col].store(v, Relaxed);
                }
            }
        }
        new
    }

    /// Counts one answer of `record` from region index `region` (`None`: no address).
    pub fn count(&self, record: RecordId, region: Option<usize>) {
        let width = self.regions.len() + 1;
        let col = region.unwrap_or(self.regions.len()).min(self.regions.len());
        if let Some(c) = self.cells.get(record.index() * width + col) {
            c.fetch_add(1, Relaxed);
        }
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
        self.cells[r * (self.regions.len() + 1) + c].load(Relaxed)
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
                let v = self.cells[ri * width + col].load(Relaxed);
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
