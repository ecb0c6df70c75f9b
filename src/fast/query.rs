//! Reading the everyday query straight from the wire, borrowing the datagram: one
//! question of class IN whose name has no compression pointer, and at most an OPT
//! record (EDNS version 0) with at most one Client Subnet option. Anything else —
//! including everything malformed — is `None`, and the general path decides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::answer::mask;
use crate::pipeline::{self, Ecs, Edns};

/// The longest name in wire format (RFC 1035 §3.1).
pub const MAX_NAME: usize = 255;

/// Room for a lower-cased question name, lent to [`parse`] by the caller.
pub type NameBuf = [u8; MAX_NAME];

/// A query the fast path can answer.
#[derive(Debug)]
pub struct Query<'m, 'k> {
    /// Message ID.
    pub id: u16,
    /// The request's flag bits (second header word).
    pub flags: u16,
    /// The question as sent: name (letter case kept), type and class.
    pub question: &'m [u8],
    /// QTYPE.
    pub qtype: u16,
    key: &'k [u8],
    /// The OPT record, when present.
    pub edns: Option<Edns>,
}

impl Query<'_, '_> {
    /// What the reply pipeline needs of this query.
    pub fn head(&self, tcp: bool) -> pipeline::Query {
        pipeline::Query {
            id: self.id,
            flags: self.flags,
            qtype: self.qtype,
            edns: self.edns,
            tcp,
        }
    }

    /// The question name in lower case, wire format: the key of
    /// [`crate::zone::wire::WireIndex`].
    pub fn key(&self) -> &[u8] {
        self.key
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Parses `msg` when it is an everyday query (see the module doc); the lower-cased
/// name is written into `key`.
pub fn parse<'m, 'k>(msg: &'m [u8], key: &'k mut NameBuf) -> Option<Query<'m, 'k>> {
    let header: &[u8; 12] = msg.get(..12)?.try_into().ok()?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let (id, flags) = (word(0), word(2));
    // QR=0 (a query) and OPCODE=QUERY; one question, no answer or authority records, at
    // most one additional (the OPT).
    if flags & 0xF800 != 0 || word(4) != 1 || word(6) != 0 || word(8) != 0 || word(10) > 1 {
        return None;
    }
    let ar = word(10);
    // The name: its length found label by label, then copied and lower-cased in place
    // (one pass, vectorised).
    let mut at = 12;
    loop {
        let len = usize::from(*msg.get(at)?);
        // 0x40 and up: a compression pointer or an extended label type.
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name = msg.get(12..at)?;
    let key = key.get_mut(..name.len())?;
    key.copy_from_slice(name);
    key.make_ascii_lowercase();
    let question = msg.get(12..at + 4)?;
    let qtype = u16::from_be_bytes([question[name.len()], question[name.len() + 1]]);
    let qclass = u16::from_be_bytes([question[name.len() + 2], question[name.len() + 3]]);
    // Meta and pseudo types (ANY, AXFR, IXFR, OPT, TSIG...) have rules of their own.
    if qclass != 1 || qtype == 0 || qtype == 41 || (128..=255).contains(&qtype) {
        return None;
    }
    at += 4;
    let edns = if ar == 1 {
        let (edns, end) = opt(msg, at)?;
        at = end;
        Some(edns)
    } else {
        None
    };
    // Nothing may follow.
    if at != msg.len() {
        return None;
    }
    Some(Query {
        id,
        flags,
        question,
        qtype,
        key,
        edns,
    })
}

/// Reads the OPT record at `at`; returns it and where it ends.
fn opt(msg: &[u8], at: usize) -> Option<(Edns, usize)> {
    let rr: &[u8; 11] = msg.get(at..at + 11)?.try_into().ok()?;
    // Root owner, TYPE OPT; extended RCODE 0 and version 0 (a version above 0 gets
    // BADVERS from the general path).
    if rr[0] != 0 || rr[1..3] != [0, 41] || rr[5] != 0 || rr[6] != 0 {
        return None;
    }
    let payload = u16::from_be_bytes([rr[3], rr[4]]);
    let dnssec_ok = rr[7] & 0x80 != 0;
    let compact_ok = rr[7] & 0x40 != 0;
    let start = at + 11;
    let end = start + usize::from(u16::from_be_bytes([rr[9], rr[10]]));
    let mut rdata = msg.get(start..end)?;
    let mut ecs = None;
    while let Some(head) = rdata.get(..4) {
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = rdata.get(4..4 + len)?;
        match code {
            // A second ECS is ambiguous; leave it to the general path.
            8 if ecs.is_none() => ecs = Some(client_subnet(data)?),
            8 => return None,
            // NSID is decoded (and could be refused) by the general path; other
            // options (COOKIE, padding, ...) are ignored there, and here.
            3 => return None,
            _ => {}
        }
        rdata = &rdata[4 + len..];
    }
    // A truncated option header is malformed.
    if !rdata.is_empty() {
        return None;
    }
    Some((
        Edns {
            payload,
            dnssec_ok,
            compact_ok,
            ecs,
        },
        end,
    ))
}

/// An ECS option of exactly the right length with SCOPE 0 (RFC 7871 §6).
fn client_subnet(data: &[u8]) -> Option<Ecs> {
    let family = u16_at(data, 0)?;
    let source = *data.get(2)?;
    let scope = *data.get(3)?;
    let addr = data.get(4..)?;
    if scope != 0 || addr.len() != usize::from(source).div_ceil(8) {
        return None;
    }
    let ip = match family {
        1 if source <= 32 => {
            let mut o = [0u8; 4];
            o[..addr.len()].copy_from_slice(addr);
            IpAddr::V4(Ipv4Addr::from(o))
        }
        2 if source <= 128 => {
            let mut o = [0u8; 16];
            o[..addr.len()].copy_from_slice(addr);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    // Bits past the prefix: FORMERR (RFC 7871 §6), from the general path.
    (mask(ip, source) == ip).then_some(Ecs { source, addr: ip })
}
