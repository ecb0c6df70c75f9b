//! The everyday queries of the example deployment (`gslb.toml`, `zones/`): static data,
//! apex records, dynamic names (one in mixed case), NODATA and NXDOMAIN. Shared with
//! `#[path]`: src/fast/tests.rs checks that each takes the fast path, tests/alloc.rs that
//! none allocates.

use hickory_proto::rr::RecordType;

pub const EVERYDAY: [(&str, RecordType); 13] = [
    ("static.gslb.example.com", RecordType::A),
    ("static.gslb.example.com", RecordType::AAAA),
    ("gslb.example.com", RecordType::SOA),
    ("gslb.example.com", RecordType::NS),
    ("gslb.example.com", RecordType::MX),
    ("www.gslb.example.com", RecordType::A),
    ("WwW.GsLb.ExAmPlE.CoM", RecordType::AAAA),
    ("api.gslb.example.com", RecordType::A),
    ("edge.gslb.example.com", RecordType::A),
    ("db.gslb.example.com", RecordType::A),
    ("www.gslb.example.com", RecordType::TXT),
    ("nope.gslb.example.com", RecordType::A),
    ("a.b.nope.gslb.example.com", RecordType::A),
];
