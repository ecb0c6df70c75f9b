//! Reading the everyday query straight from the wire, borrowing the datagram: one
//! question of class IN whose name has no compression pointer, and at most an OPT
//! record (EDNS version 0) with at most one Client Subnet option. Anything else —
//! including everything malformed — is `None`, and the general path decides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::answer::mask;

/// The longest name in wire format (RFC 1035 §3.1).
const MAX_NAME: usize = 255;

/// A query the fast path can answer.
#[derive(Debug)]
pub struct Query<'m> {
    /// Message ID.
    pub id: u16,
    /// The request's flag bits (second header word).
    pub flags: u16,
    /// The question as sent: name (letter case kept), type and class.
    pub question: &'m [u8],
    /// QTYPE.
    pub qtype: u16,
    key: [u8; MAX_NAME],
    key_len: usize,
    /// The OPT record, when present.
    pub edns: Option<Edns>,
}

/// What the OPT record of a query says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The client's UDP payload size.
    pub payload: u16,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The Client Subnet option.
    pub ecs: Option<Ecs>,
}

/// An EDNS Client Subnet option (RFC 7871) of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// SOURCE PREFIX-LENGTH.
    pub source: u8,
    /// ADDRESS, with the bits past the source prefix cleared; its family is FAMILY.
    pub addr: IpAddr,
}

impl Query<'_> {
    /// The question name in lower case, wire format: the key of
    /// [`crate::zone::wire::WireIndex`].
    pub fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

/// Parses `msg` when it is an everyday query (see the module doc).
pub fn parse(msg: &[u8]) -> Option<Query<'_>> {
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    // QR=0 (a query) and OPCODE=QUERY.
    if flags & 0xF800 != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (
        u16_at(msg, 4)?,
        u16_at(msg, 6)?,
        u16_at(msg, 8)?,
        u16_at(msg, 10)?,
    );
    if qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    // The name: copied as a whole, then lower-cased in place (one pass, vectorised).
    let mut key = [0u8; MAX_NAME];
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
    let key_slot = key.get_mut(..name.len())?;
    key_slot.copy_from_slice(name);
    key_slot.make_ascii_lowercase();
    let key_len = at - 12;
    let qtype = u16_at(msg, at)?;
    let qclass = u16_at(msg, at + 2)?;
    // Meta and pseudo types (ANY, AXFR, IXFR, OPT, TSIG...) have rules of their own.
    if qclass != 1 || qtype == 0 || qtype == 41 || (128..=255).contains(&qtype) {
        return None;
    }
    let question = msg.get(12..at + 4)?;
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
        key_len,
        edns,
    })
}

/// Reads the OPT record at `at`; returns it and where it ends.
fn opt(msg: &[u8], at: usize) -> Option<(Edns, usize)> {
    // Root owner, TYPE OPT.
    if *msg.get(at)? != 0 || u16_at(msg, at + 1)? != 41 {
        return None;
    }
    let payload = u16_at(msg, at + 3)?;
    let ext_rcode = *msg.get(at + 5)?;
    let version = *msg.get(at + 6)?;
    let flags = u16_at(msg, at + 7)?;
    // Version > 0 gets BADVERS from the general path.
    if ext_rcode != 0 || version != 0 {
        return None;
    }
    let rdlen = usize::from(u16_at(msg, at + 9)?);
    let start = at + 11;
    let end = start + rdlen;
    let rdata = msg.get(start..end)?;
    let mut ecs = None;
    let mut o = 0;
    while o < rdata.len() {
        let code = u16_at(rdata, o)?;
        let len = usize::from(u16_at(rdata, o + 2)?);
        let data = rdata.get(o + 4..o + 4 + len)?;
        match code {
            // A second ECS is ambiguous; leave it to the general path.
            8 if ecs.is_none() => ecs = Some(client_subnet(data)?),
            8 => return None,
            // NSID is decoded (and could be refused) by the general path; other
            // options (COOKIE, padding, ...) are ignored there, and here.
            3 => return None,
            _ => {}
        }
        o += 4 + len;
    }
    Some((
        Edns {
            payload,
            dnssec_ok: flags & 0x8000 != 0,
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
    Some(Ecs {
        source,
        addr: mask(ip, source),
    })
}
