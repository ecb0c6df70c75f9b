//! The query fast path: the everyday query answered from the wire, without decoding it
//! into hickory-proto's message types and without allocating.
//!
//! [`query::parse`] accepts one question of class IN (no compression pointer) with at
//! most an OPT record carrying at most a Client Subnet; [`WireIndex`](crate::zone::wire::WireIndex) has every plain
//! name's answer sections prebuilt; dynamic names go through the same policy code as the
//! general path ([`crate::answer::dynamic_addresses`]) and their records are written
//! straight into the reply. Whatever this path does not handle — malformed or unusual
//! queries, CNAMEs, delegations, wildcards, REFUSED, replies that need truncating for
//! static data — returns `false` before anything is counted, and
//! the caller answers through the general path. Tests check that both paths give the
//! same replies.

pub mod query;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use hickory_proto::rr::RecordType;

use crate::answer::{EDNS_UDP_PAYLOAD, dynamic_addresses};
use crate::policy::Client;
use crate::rrl::{Kind, Verdict};
use crate::snapshot::Snapshot;
use crate::zone::wire::{Lookup, Template};
use query::Edns;

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;
const NXDOMAIN: u16 = 3;

/// Answers `msg` into `out` when it is an everyday query; `false` (with nothing counted
/// or sent) leaves it to the general path. `now_ms` is the rate limiter's clock.
pub fn answer(
    msg: &[u8],
    src: SocketAddr,
    snap: &Snapshot,
    tcp: bool,
    rnd: u64,
    now_ms: impl FnOnce() -> u64,
    out: &mut Vec<u8>,
) -> bool {
    let mut name = [0; query::MAX_NAME];
    let Some(q) = query::parse(msg, &mut name) else {
        return false;
    };
    let limit = if tcp {
        usize::from(u16::MAX)
    } else {
        q.edns
            .map_or(512, |e| e.payload.clamp(512, EDNS_UDP_PAYLOAD))
            .into()
    };
    let found = snap.zones.wire().lookup(q.key(), q.qtype);
    // Static replies that do not fit are truncated by the general path (it drops the
    // additional section first); decide before anything is counted.
    let fixed = match found {
        Lookup::Static(t) | Lookup::NoData(t) => Some(t.body.len()),
        Lookup::NxDomain(nx) => Some(2 + nx.tail.len()),
        Lookup::Dynamic(..) => Some(0),
        Lookup::General => None,
    };
    let Some(fixed) = fixed else {
        return false;
    };
    if 12 + q.question.len() + fixed + opt_len(q.edns.as_ref()) > limit {
        return false;
    }

    out.clear();
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(q.question);
    let mut scope = 0;
    let (rcode, counts, kind) = match found {
        Lookup::Static(t) => (0, copy(t, out), Kind::Answer),
        Lookup::NoData(t) => (0, copy(t, out), Kind::NoData),
        Lookup::NxDomain(nx) => {
            // The apex is the question name's tail: point at it.
            let apex_at = 12 + q.key().len() - nx.apex_len;
            out.extend_from_slice(&(0xC000 | apex_at as u16).to_be_bytes());
            out.extend_from_slice(&nx.tail);
            (NXDOMAIN, [0, 1, 0], Kind::NxDomain)
        }
        Lookup::Dynamic(record, nodata) => {
            let client = client(q.edns.as_ref(), src);
            let ttl = snap.model.records[record.index()].ttl;
            let mut n = 0u16;
            let d = dynamic_addresses(
                record,
                RecordType::from(q.qtype),
                snap,
                &client,
                rnd,
                false,
                |a| {
                    write_address(a, ttl, out);
                    n += 1;
                },
            );
            scope = d.scope;
            if n == 0 {
                (0, copy(nodata, out), Kind::NoData)
            } else {
                (0, [n, 0, 0], Kind::Answer)
            }
        }
        Lookup::General => return false,
    };
    let mut flags = QR | AA | (q.flags & (RD | CD)) | rcode;
    let mut counts = counts;
    if out.len() + opt_len(q.edns.as_ref()) > limit {
        // Only a dynamic answer with many addresses gets here: TC=1, question and OPT,
        // as the general path does (RFC 2181 §9).
        out.truncate(12 + q.question.len());
        flags |= TC;
        counts = [0, 0, 0];
    }
    let verdict = match (&snap.rrl, tcp) {
        (Some(rrl), false) => rrl.check(src.ip(), kind, now_ms()),
        _ => Verdict::Send,
    };
    match verdict {
        Verdict::Send => {}
        Verdict::Slip => {
            out.truncate(12 + q.question.len());
            flags |= TC;
            counts = [0, 0, 0];
        }
        Verdict::Drop => {
            out.clear();
            return true;
        }
    }
    if let Some(e) = &q.edns {
        write_opt(e, scope, out);
    }
    let arcount = counts[2] + u16::from(q.edns.is_some());
    let header = &mut out[..12];
    header[0..2].copy_from_slice(&q.id.to_be_bytes());
    header[2..4].copy_from_slice(&flags.to_be_bytes());
    header[4..6].copy_from_slice(&1u16.to_be_bytes());
    header[6..8].copy_from_slice(&counts[0].to_be_bytes());
    header[8..10].copy_from_slice(&counts[1].to_be_bytes());
    header[10..12].copy_from_slice(&arcount.to_be_bytes());
    if verdict == Verdict::Send {
        snap.queries.count(tcp, rcode, q.qtype);
    }
    true
}

/// The client a dynamic answer is for, as in the general path: the ECS subnet when its
/// source prefix is not 0, else the packet's source address.
fn client(edns: Option<&Edns>, src: SocketAddr) -> Client {
    match edns.and_then(|e| e.ecs) {
        Some(ecs) if ecs.source > 0 => Client::from_ecs(ecs.addr, ecs.source),
        _ => Client {
            addr: src.ip().to_canonical(),
            source_prefix: None,
        },
    }
}

fn copy(t: &Template, out: &mut Vec<u8>) -> [u16; 3] {
    out.extend_from_slice(&t.body);
    t.counts
}

/// One A or AAAA record owned by the question name (a pointer to offset 12).
fn write_address(a: IpAddr, ttl: u32, out: &mut Vec<u8>) {
    let t = ttl.to_be_bytes();
    match a {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            out.extend_from_slice(&[
                0xC0, 0x0C, 0, 1, 0, 1, t[0], t[1], t[2], t[3], 0, 4, o[0], o[1], o[2], o[3],
            ]);
        }
        IpAddr::V6(v6) => {
            out.extend_from_slice(&[0xC0, 0x0C, 0, 28, 0, 1, t[0], t[1], t[2], t[3], 0, 16]);
            out.extend_from_slice(&v6.octets());
        }
    }
}

/// The size of the OPT record [`write_opt`] writes.
fn opt_len(edns: Option<&Edns>) -> usize {
    match edns {
        None => 0,
        Some(e) => 11 + e.ecs.map_or(0, |c| 8 + usize::from(c.source).div_ceil(8)),
    }
}

/// Our OPT record (RFC 6891): our payload size (never above the client's), version 0,
/// DO copied (RFC 3225), and the client's subnet echoed with the answer's scope (RFC 7871
/// §7.2.1; scope 0 when the client sent source 0).
fn write_opt(e: &Edns, scope: u8, out: &mut Vec<u8>) {
    // Written into one buffer, then appended once: owner, TYPE, CLASS (payload),
    // TTL (extended RCODE, version, DO), RDLENGTH, and the ECS option.
    let mut buf = [0u8; 11 + 8 + 16];
    buf[2] = 41;
    buf[3..5].copy_from_slice(&e.payload.clamp(512, EDNS_UDP_PAYLOAD).to_be_bytes());
    if e.dnssec_ok {
        buf[7] = 0x80;
    }
    let Some(ecs) = e.ecs else {
        out.extend_from_slice(&buf[..11]);
        return;
    };
    let n = usize::from(ecs.source).div_ceil(8);
    buf[9..11].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    buf[12] = 8;
    buf[13..15].copy_from_slice(&((4 + n) as u16).to_be_bytes());
    let (family, addr) = match ecs.addr {
        IpAddr::V4(a) => (1, Ipv6Addr::from(u128::from(u32::from(a)) << 96).octets()),
        IpAddr::V6(a) => (2, a.octets()),
    };
    buf[16] = family;
    buf[17] = ecs.source;
    buf[18] = crate::policy::ecs_scope(ecs.addr, ecs.source, scope);
    let len = 19 + n;
    if let (Some(dst), Some(src)) = (buf.get_mut(19..len), addr.get(..n)) {
        dst.copy_from_slice(src);
    }
    out.extend_from_slice(buf.get(..len).unwrap_or(&buf));
}

#[cfg(test)]
mod tests;
