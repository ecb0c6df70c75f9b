//! The query fast path: the everyday query answered from the wire, without decoding it
//! into hickory-proto's message types and without allocating.
//!
//! [`query::parse`] accepts one question of class IN (no compression pointer) with at
//! most an OPT record carrying at most a Client Subnet;
//! [`WireIndex`](crate::zone::wire::WireIndex) has every plain name's answer sections
//! prebuilt; dynamic names are decided by [`crate::decide`], as on the general path, and
//! their records written straight into the reply. This path only chooses *what* to
//! answer: [`pipeline::finish`] frames, limits and counts the reply, as for every other.
//! Whatever it does not handle (malformed or unusual queries, CNAMEs, delegations,
//! wildcards, REFUSED) returns `false` before anything is written or counted, and the
//! caller answers through the general path. Tests check that both paths give the same
//! replies.

pub mod query;

use std::net::{IpAddr, SocketAddr};

use hickory_proto::rr::RecordType;

use crate::decide::decide;
use crate::pipeline::{self, Body};
use crate::rrl::Kind;
use crate::runtime::View;
use crate::zone::wire::{Lookup, Template};

const NXDOMAIN: u16 = 3;

/// Answers `msg` into `out` when it is an everyday query; `false` (with nothing counted
/// or sent) leaves it to the general path. `now_ms` is the rate limiter's clock.
pub fn answer(
    msg: &[u8],
    src: SocketAddr,
    view: &View<'_>,
    tcp: bool,
    rnd: u64,
    now_ms: impl FnOnce() -> u64,
    out: &mut Vec<u8>,
) -> bool {
    let mut name = [0; query::MAX_NAME];
    let Some(q) = query::parse(msg, &mut name) else {
        return false;
    };
    let found = view.zones.wire().lookup(q.key(), q.qtype);
    if let Lookup::General = found {
        return false;
    }
    // With [dnssec], a DO=1 query gets the signed twin of each answer.
    let dnssec = view.signing.is_some() && q.edns.is_some_and(|e| e.dnssec_ok);
    let head = q.head(tcp);
    out.clear();
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(q.question);
    let at = out.len();
    let body = match found {
        Lookup::Static(t) => match pick(t, dnssec) {
            Some(t) => copy(t, Kind::Answer, out),
            None => return false,
        },
        Lookup::NoData(t) => match pick(t, dnssec) {
            Some(t) => copy(t, Kind::NoData, out),
            None => return false,
        },
        // Compact denial is signed per name: the general path does it.
        Lookup::NxDomain(_) if dnssec => return false,
        Lookup::NxDomain(nx) => {
            // The apex is the question name's tail: point at it.
            let apex_at = 12 + q.key().len() - nx.apex_len;
            out.extend_from_slice(&(0xC000 | apex_at as u16).to_be_bytes());
            out.extend_from_slice(&nx.tail);
            Body {
                rcode: NXDOMAIN,
                counts: [0, 1, 0],
                additional_at: out.len(),
                kind: Kind::NxDomain,
                ..static_body(at)
            }
        }
        Lookup::Dynamic(record, nodata) => {
            let choice = decide(
                record,
                RecordType::from(q.qtype),
                view,
                &head.client(src.ip()),
                rnd,
            );
            let target = choice.region.and_then(|r| view.zones.cname_target(r));
            // The answer's precomputed signatures; none made yet: the general path.
            let sigs = match (dnssec, choice.addrs.is_empty() && !choice.cname) {
                (true, false) => match view.dyn_sigs.get(&choice) {
                    Some(s) => Some(s),
                    None => return false,
                },
                _ => None,
            };
            let mut body = if choice.cname {
                match target {
                    // A target inside our zones is followed: the general path does that.
                    Some(t) if !t.ours || q.qtype == 5 => {
                        write_cname(&t.wire, choice.ttl, out);
                        Body {
                            counts: [1, 0, 0],
                            additional_at: out.len(),
                            ..static_body(at)
                        }
                    }
                    _ => return false,
                }
            } else if choice.addrs.is_empty() {
                match pick(nodata, dnssec) {
                    Some(t) => copy(t, Kind::NoData, out),
                    None => return false,
                }
            } else {
                choice
                    .rotated(rnd)
                    .for_each(|a| write_address(a, choice.ttl, out));
                Body {
                    counts: [choice.addrs.len() as u16, 0, 0],
                    additional_at: out.len(),
                    ..static_body(at)
                }
            };
            if let Some(s) = sigs {
                out.extend_from_slice(&s.wire);
                body.counts[0] += s.count();
                body.additional_at = out.len();
            }
            body.ecs_scope = Some(choice.scope);
            body.answer = Some((record, choice.region));
            body
        }
        Lookup::General => return false,
    };
    pipeline::finish(&head, &body, view, src.ip(), now_ms, out);
    true
}

/// The template to copy: its signed twin for a DO=1 query to a signed zone (`None` when
/// there is none: the general path answers).
fn pick(t: Template<'_>, dnssec: bool) -> Option<Template<'_>> {
    if dnssec { t.signed() } else { Some(t) }
}

/// An authoritative NOERROR answer from our zones, sections starting at `at`.
fn static_body(at: usize) -> Body {
    Body {
        rcode: 0,
        authoritative: true,
        counts: [0; 3],
        sections_at: at,
        additional_at: at,
        glue: false,
        kind: Kind::Answer,
        ecs_scope: Some(0),
        answer: None,
    }
}

/// Appends a template's sections.
fn copy(t: Template<'_>, kind: Kind, out: &mut Vec<u8>) -> Body {
    let at = out.len();
    out.extend_from_slice(t.body);
    Body {
        counts: t.counts,
        additional_at: at + t.additional_at,
        kind,
        ..static_body(at)
    }
}

/// The CNAME record of a `cname` region, owned by the question name (a pointer to offset
/// 12), its target uncompressed.
fn write_cname(target: &[u8], ttl: u32, out: &mut Vec<u8>) {
    let t = ttl.to_be_bytes();
    let len = (target.len() as u16).to_be_bytes();
    out.extend_from_slice(&[
        0xC0, 0x0C, 0, 5, 0, 1, t[0], t[1], t[2], t[3], len[0], len[1],
    ]);
    out.extend_from_slice(target);
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

#[cfg(test)]
mod tests;
