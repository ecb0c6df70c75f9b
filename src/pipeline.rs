//! The response pipeline: what both query paths share.
//!
//! ```text
//! fast::query::parse ─┐                      ┌─ fast: prebuilt sections, decided addresses
//!                     ├─► Query (this file) ─┤                                           ├─► Body ─► finish
//! hickory decode ─────┘                      └─ general: answer::answer + encoded records┘
//! ```
//!
//! Each path decides *what* to answer and writes the question and the answer sections
//! into the reply buffer, after 12 bytes left for the header; it describes what it wrote
//! in a [`Body`]. [`finish`] then does everything else, for every reply the server sends:
//! the payload limit and truncation (RFC 2181 §9), the rate limiter's verdict, the OPT
//! record with the ECS echo (RFC 6891, RFC 7871), the header, and the counting of the
//! query and of the dynamic answer once the reply is really sent.

use std::net::{IpAddr, Ipv6Addr};

use crate::model::{RecordId, RegionId};
use crate::policy::{Client, ecs_scope};
use crate::rrl::{Kind, Verdict};
use crate::runtime::View;

/// The UDP payload size we offer and accept (the DNS Flag Day 2020 value): large enough
/// for every answer we give, small enough to avoid IP fragmentation.
pub const EDNS_UDP_PAYLOAD: u16 = 1232;

const QR: u16 = 0x8000;
const OPCODE: u16 = 0x7800;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;

/// What the reply needs to know of a query, whichever parser read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Message ID.
    pub id: u16,
    /// The request's flag word (second header word): OPCODE, RD and CD are echoed.
    pub flags: u16,
    /// QTYPE of the one question, 0 when there is none (for counting).
    pub qtype: u16,
    /// The OPT record, when the query had one that was read.
    pub edns: Option<Edns>,
    /// Over TCP: no payload limit, no rate limiting.
    pub tcp: bool,
}

/// What the OPT record of a query says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The client's UDP payload size.
    pub payload: u16,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The CO bit (RFC 9824 §4, Compact Answers OK): a DO=1 client that takes NXDOMAIN
    /// with a compact-denial proof.
    pub compact_ok: bool,
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

impl Query {
    /// The client a decision is for: the ECS subnet when its source prefix is not 0
    /// (RFC 7871 §7.1.1), else the packet's source address.
    pub fn client(&self, src: IpAddr) -> Client {
        match self.edns.and_then(|e| e.ecs) {
            Some(ecs) if ecs.source > 0 => Client::from_ecs(ecs.addr, ecs.source),
            _ => Client {
                addr: src.to_canonical(),
                source_prefix: None,
            },
        }
    }

    /// The largest reply allowed: 65535 over TCP; over UDP the client's EDNS payload (at
    /// most ours), or 512 without EDNS (RFC 1035 §4.2.1).
    pub fn limit(&self) -> usize {
        if self.tcp {
            return usize::from(u16::MAX);
        }
        self.edns
            .map_or(512, |e| e.payload.clamp(512, EDNS_UDP_PAYLOAD))
            .into()
    }
}

/// What a path wrote into the reply buffer after the header, and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    /// RCODE, with the extended bits (BADVERS is 16).
    pub rcode: u16,
    /// AA: data from our zones (RFC 1035 §4.1.1), not a referral.
    pub authoritative: bool,
    /// ANCOUNT, NSCOUNT and ARCOUNT (without OPT).
    pub counts: [u16; 3],
    /// Where the question ends and the sections start (12 when no question is echoed).
    pub sections_at: usize,
    /// Where the additional section starts.
    pub additional_at: usize,
    /// The additional section is referral glue: without it the referral is useless, so
    /// it is never dropped alone.
    pub glue: bool,
    /// The response class the rate limiter counts it under.
    pub kind: Kind,
    /// Echo the query's ECS option with this decision scope (`None`: no echo).
    pub ecs_scope: Option<u8>,
    /// The dynamic answer to count once the reply is sent: record, region (`None`: no
    /// address).
    pub answer: Option<(RecordId, Option<RegionId>)>,
}

impl Body {
    /// A reply with no records and `rcode` (after the question, when one was written).
    pub fn empty(rcode: u16, sections_at: usize) -> Body {
        Body {
            rcode,
            authoritative: false,
            counts: [0; 3],
            sections_at,
            additional_at: sections_at,
            glue: false,
            kind: Kind::Error,
            ecs_scope: None,
            answer: None,
        }
    }
}

/// What [`finish`] did with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Sent whole (perhaps without its optional additional section).
    Whole,
    /// Sent with TC=1 and no records: it did not fit.
    Truncated,
    /// Over the rate limit: sent with TC=1 and no records, so a real client retries over TCP.
    Slipped,
    /// Over the rate limit: nothing to send (`out` is empty).
    Dropped,
}

impl Sent {
    /// True when the reply went out as answered (whole or truncated for size).
    pub fn answered(self) -> bool {
        matches!(self, Sent::Whole | Sent::Truncated)
    }
}

/// Finishes the reply in `out`, which holds 12 bytes for the header, then the question
/// and sections as `body` describes: truncates it to the query's limit, asks the rate
/// limiter (UDP), appends the OPT record, writes the header, and counts it.
pub fn finish(
    q: &Query,
    body: &Body,
    view: &View<'_>,
    src: IpAddr,
    now_ms: impl FnOnce() -> u64,
    out: &mut Vec<u8>,
) -> Sent {
    let limit = q.limit();
    let opt = opt_len(q.edns.as_ref(), body.ecs_scope.is_some());
    let mut counts = body.counts;
    let mut sent = Sent::Whole;
    if out.len() + opt > limit {
        if counts[2] > 0 && !body.glue && body.additional_at + opt <= limit {
            // The additional section is optional: drop it first (RFC 2181 §9).
            out.truncate(body.additional_at);
            counts[2] = 0;
        } else {
            // TC=1 with the question and OPT only, so the client retries over TCP
            // (RFC 2181 §9, RFC 7766 §5).
            out.truncate(body.sections_at);
            counts = [0; 3];
            sent = Sent::Truncated;
        }
    }
    // Response rate limiting applies to UDP only: over TCP the source address is
    // verified by the handshake, so it cannot be a spoofed amplification victim.
    let verdict = match view.rrl() {
        Some(rrl) if !q.tcp => rrl.check(src, body.kind, now_ms()),
        _ => Verdict::Send,
    };
    match verdict {
        Verdict::Send => {}
        Verdict::Slip => {
            out.truncate(body.sections_at);
            counts = [0; 3];
            sent = Sent::Slipped;
        }
        Verdict::Drop => {
            out.clear();
            return Sent::Dropped;
        }
    }
    if let Some(e) = &q.edns {
        write_opt(e, body.rcode, body.ecs_scope, out);
    }
    let mut flags = QR | (q.flags & (OPCODE | RD | CD)) | (body.rcode & 0xF);
    if body.authoritative {
        flags |= AA;
    }
    if matches!(sent, Sent::Truncated | Sent::Slipped) {
        flags |= TC;
    }
    let qdcount = u16::from(body.sections_at > 12);
    let arcount = counts[2] + u16::from(q.edns.is_some());
    let header = &mut out[..12];
    header[0..2].copy_from_slice(&q.id.to_be_bytes());
    header[2..4].copy_from_slice(&flags.to_be_bytes());
    header[4..6].copy_from_slice(&qdcount.to_be_bytes());
    header[6..8].copy_from_slice(&counts[0].to_be_bytes());
    header[8..10].copy_from_slice(&counts[1].to_be_bytes());
    header[10..12].copy_from_slice(&arcount.to_be_bytes());
    // Counted once sent: a slipped reply is counted by the limiter, not as answered,
    // and an answer cut for size is not an answer (the client asks again over TCP).
    if sent.answered() {
        view.queries().count(q.tcp, body.rcode, q.qtype);
    }
    if let (Sent::Whole, Some((record, region))) = (sent, body.answer) {
        view.count_answer(record, region);
    }
    sent
}

/// The size of the OPT record [`write_opt`] writes.
fn opt_len(edns: Option<&Edns>, echo_ecs: bool) -> usize {
    match edns {
        None => 0,
        Some(e) => {
            let ecs = e.ecs.filter(|_| echo_ecs);
            11 + ecs.map_or(0, |c| 8 + address_bytes(&c))
        }
    }
}

/// The bytes of ADDRESS an ECS option of `ecs` carries.
fn address_bytes(ecs: &Ecs) -> usize {
    let max = if ecs.addr.is_ipv4() { 4 } else { 16 };
    usize::from(ecs.source).div_ceil(8).min(max)
}

/// Our OPT record (RFC 6891): our payload size (never above the client's), the upper
/// bits of the RCODE, version 0, DO copied (RFC 3225 §3), and when `scope` is given the
/// client's subnet echoed with the answer's scope (RFC 7871 §7.2.1: FAMILY, SOURCE
/// PREFIX-LENGTH and ADDRESS as sent; SCOPE 0 when the client sent source 0).
fn write_opt(e: &Edns, rcode: u16, scope: Option<u8>, out: &mut Vec<u8>) {
    // Written into one buffer, then appended once: owner, TYPE, CLASS (payload),
    // TTL (extended RCODE, version, DO), RDLENGTH, and the ECS option.
    let mut buf = [0u8; 11 + 8 + 16];
    buf[2] = 41;
    buf[3..5].copy_from_slice(&e.payload.clamp(512, EDNS_UDP_PAYLOAD).to_be_bytes());
    buf[5] = (rcode >> 4) as u8;
    if e.dnssec_ok {
        buf[7] = 0x80;
        // CO is echoed to a DO=1 query that set it (RFC 9824 §4).
        if e.compact_ok {
            buf[7] |= 0x40;
        }
    }
    let (Some(ecs), Some(scope)) = (e.ecs, scope) else {
        out.extend_from_slice(&buf[..11]);
        return;
    };
    let n = address_bytes(&ecs);
    buf[9..11].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    buf[12] = 8;
    buf[13..15].copy_from_slice(&((4 + n) as u16).to_be_bytes());
    let (family, addr) = match ecs.addr {
        IpAddr::V4(a) => (1, Ipv6Addr::from(u128::from(u32::from(a)) << 96).octets()),
        IpAddr::V6(a) => (2, a.octets()),
    };
    buf[16] = family;
    buf[17] = ecs.source;
    buf[18] = ecs_scope(ecs.addr, ecs.source, scope);
    buf[19..19 + n].copy_from_slice(&addr[..n]);
    out.extend_from_slice(&buf[..19 + n]);
}
