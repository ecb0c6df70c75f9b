//! Whether two replies say the same: the differential check between the query fast path
//! and the general path. Shared by the `request` fuzz target, `tests/it/fuzzish.rs` and
//! the fast path's unit tests (both include this file with `#[path]`), so it uses only std
//! and hickory-proto.

use hickory_proto::op::Message;
use hickory_proto::rr::{DNSClass, Record, RecordType};

/// `Err(what differs)` unless two replies say the same: header, question, every record
/// with its TTL, and OPT; except that the first may fit where the second was truncated. Names compare in lower case (a reply may compress a name against
/// the question and so carry the client's letter case, RFC 4343); hickory's own `Record`
/// equality leaves out the TTL (RFC 2136), so records are compared field by field.
pub fn same_reply(a: &[u8], b: &[u8]) -> Result<(), String> {
    let a = Message::from_vec(a).map_err(|e| format!("first reply does not parse: {e}"))?;
    let b = Message::from_vec(b).map_err(|e| format!("second reply does not parse: {e}"))?;
    let rrs = |records: &[Record]| -> Vec<(String, RecordType, DNSClass, u32, String)> {
        records
            .iter()
            .map(|r| {
                let name = r.name.to_string().to_ascii_lowercase();
                let data = r.data.to_string().to_ascii_lowercase();
                (name, r.record_type(), r.dns_class, r.ttl, data)
            })
            .collect()
    };
    let differ = |what: &str, x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| {
        Err(format!("{what} differ:\n  {x:?}\n  {y:?}"))
    };
    if b.metadata.truncation && !a.metadata.truncation {
        // The first (fast path) reply compresses answer names against the question; the
        // second (general path) writes the first owner name in full, so near the UDP limit
        // it may have to truncate where the first fits. Both are right; the first must
        // agree on everything else the truncated one still says.
        let mut tc = a.metadata;
        tc.truncation = true;
        if tc != b.metadata {
            return differ("headers (but TC)", &a.metadata, &b.metadata);
        }
        if a.queries != b.queries || a.edns.is_some() != b.edns.is_some() {
            return differ("questions", &a.queries, &b.queries);
        }
        return Ok(());
    }
    if a.metadata != b.metadata {
        return differ("headers", &a.metadata, &b.metadata);
    }
    if a.queries != b.queries {
        return differ("questions", &a.queries, &b.queries);
    }
    for (what, x, y) in [
        ("answers", &a.answers, &b.answers),
        ("authorities", &a.authorities, &b.authorities),
        ("additionals", &a.additionals, &b.additionals),
    ] {
        if rrs(x) != rrs(y) {
            return differ(what, &rrs(x), &rrs(y));
        }
    }
    if a.edns != b.edns {
        return differ("OPT records", &a.edns, &b.edns);
    }
    Ok(())
}
