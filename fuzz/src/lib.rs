//! Shared code of gslbd's fuzz targets: the fixtures they run against and the reply
//! invariants (also used by `tests/it/fuzzish.rs` in the normal test suite).

pub mod compare;
pub mod fixture;
pub mod invariants;
pub mod targets;

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// A query for `name`/`rtype` with ID `id`, with EDNS(0) of `payload` when given.
pub fn query_bytes(id: u16, name: &Name, rtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), rtype));
    if let Some(p) = payload {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.set_edns(e);
    }
    m.to_vec().expect("encode query")
}

/// Sends `datagram` through `gslbd::server::answer_datagram` on `state` and panics,
/// with both messages in hex, when the reply breaks an invariant. `may_drop`: the state
/// rate-limits, so no reply at all is also fine.
pub fn answer_and_check(
    datagram: &[u8],
    src: SocketAddr,
    state: &gslbd::Shared,
    may_drop: bool,
    out: &mut Vec<u8>,
) {
    gslbd::server::answer_datagram(datagram, src, state, out);
    if let Err(e) = invariants::check_reply(datagram, out, may_drop) {
        panic!(
            "invariant broken: {e}\nsource: {src}\nquery ({} bytes): {}\nreply ({} bytes): {}",
            datagram.len(),
            hex(datagram),
            out.len(),
            hex(out)
        );
    }
}

/// Lower-case hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
