//! Queries answered, by transport, rcode and qtype, and the process-wide event counters
//! (reloads, dropped datagrams, refused TCP connections). One set per process, in the
//! [`Runtime`](crate::runtime::Runtime): it never changes layout, so reloads leave it alone.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::cells::Cells;
use super::family;

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

/// An RCODE as dig and the metrics name it (`NOERROR`, `NXDOMAIN`), for log lines; one
/// not in [`RCODES`] is `RCODE` and its number.
pub fn rcode_name(rcode: u16) -> std::borrow::Cow<'static, str> {
    match RCODES.iter().find(|(c, _)| *c == rcode) {
        Some((_, name)) => (*name).into(),
        None => format!("RCODE{rcode}").into(),
    }
}
const Q: usize = QTYPES.len() + 1;

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
    /// TCP connections closed at once: their client network held `tcp.max_per_client`,
    /// or `tcp.max_connections` were open and none was idle.
    pub tcp_refused: AtomicU64,
    /// Idle TCP connections closed to make room for a new one (`tcp.max_connections`).
    pub tcp_idle_closed: AtomicU64,
}

impl Default for QueryCounters {
    fn default() -> Self {
        QueryCounters {
            cells: Cells::new(TRANSPORTS.len() * R * Q),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            tcp_refused: AtomicU64::new(0),
            tcp_idle_closed: AtomicU64::new(0),
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
            "gslbd_tcp_refused_total",
            "counter",
            "TCP connections closed at once: their client network held server.tcp.max_per_client, or server.tcp.max_connections were open and none was idle.",
        );
        let _ = writeln!(
            out,
            "gslbd_tcp_refused_total {}",
            self.tcp_refused.load(Relaxed)
        );
        family(
            out,
            "gslbd_tcp_idle_closed_total",
            "counter",
            "Idle TCP connections closed to make room for a new one when server.tcp.max_connections were open.",
        );
        let _ = writeln!(
            out,
            "gslbd_tcp_idle_closed_total {}",
            self.tcp_idle_closed.load(Relaxed)
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

#[cfg(test)]
mod tests {
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
        assert!(s.contains("gslbd_tcp_refused_total 0\n"), "{s}");
        assert!(s.contains("gslbd_tcp_idle_closed_total 0\n"), "{s}");
    }
}
