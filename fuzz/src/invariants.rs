//! What every UDP reply of `gslbd::server::answer_datagram` must satisfy, whatever the
//! datagram was. One definition for two users: the `request` fuzz target
//! (`fuzz/fuzz_targets/request.rs`) and the property test of the normal suite
//! (`tests/it/fuzzish.rs`, which includes this file with `#[path]`). So it uses only std
//! and hickory-proto, and names no gslbd item: the limits below are the documented
//! behaviour (README, "DNS behaviour"), written out, not read back from the code under test.
//!
//! The checks, for a datagram `query` and the bytes `reply` sent back (empty: nothing sent):
//!
//! - never more than 65535 bytes; nothing at all for a datagram shorter than a header or
//!   with QR=1 (no reflection loops); an answer to everything else (unless response rate
//!   limiting is on);
//! - the reply parses with hickory-proto, has QR=1, the query's ID, OPCODE, RD and CD,
//!   RA=0, and AA only with NOERROR or NXDOMAIN;
//! - its size is within the UDP limit: when the query parses (hickory-proto), its EDNS
//!   payload clamped to 512..=1232, or 512 without EDNS; when it does not, 1232;
//! - TC=1 replies carry no records (the question and OPT only);
//! - when the query parses: the question is echoed exactly (letter case included), OPT
//!   comes back iff the query had one (version 0, payload 512..=1232 and never above the
//!   client's, DO copied), the RCODE is BADVERS / NOTIMP / FORMERR / REFUSED as
//!   documented for EDNS version, opcode, QDCOUNT, class and AXFR/IXFR/OPT, answer records
//!   are of the asked type or CNAMEs, and an ECS option is echoed (family, source prefix
//!   and address as sent) with a scope that fits the family, 0 when the source is 0;
//! - an ECS option that RFC 7871 §6 rejects (a family other than 1 and 2, a prefix longer
//!   than the family, more or fewer ADDRESS octets than the prefix needs, bits set past
//!   the prefix) gets FORMERR, after BADVERS and before everything else, with OPT but
//!   without ECS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, RecordType};

/// Without EDNS a UDP reply fits 512 bytes (RFC 1035 §4.2.1).
pub const PLAIN_UDP_LIMIT: usize = 512;
/// The largest UDP payload gslbd offers or uses (README: EDNS(0)).
pub const EDNS_UDP_LIMIT: u16 = 1232;

/// `Err(what is wrong)` when `reply` is not an acceptable reply to `query`. `may_drop`:
/// response rate limiting is on, so sending nothing is also acceptable.
pub fn check_reply(query: &[u8], reply: &[u8], may_drop: bool) -> Result<(), String> {
    macro_rules! ensure {
        ($cond:expr, $($msg:tt)+) => {
            if !$cond {
                return Err(format!($($msg)+));
            }
        };
    }
    ensure!(reply.len() <= 65535, "reply of {} bytes", reply.len());
    if query.len() < 12 {
        ensure!(
            reply.is_empty(),
            "a {}-byte datagram was answered",
            query.len()
        );
        return Ok(());
    }
    if query[2] & 0x80 != 0 {
        ensure!(reply.is_empty(), "a response (QR=1) was answered");
        return Ok(());
    }
    if reply.is_empty() && may_drop {
        return Ok(());
    }
    ensure!(
        !reply.is_empty(),
        "a query with a header and QR=0 got no reply"
    );
    ensure!(reply.len() >= 12, "a reply of {} bytes", reply.len());

    // Header bits, straight from the bytes.
    ensure!(
        reply[..2] == query[..2],
        "reply ID differs from the query's"
    );
    ensure!(reply[2] & 0x80 != 0, "reply has QR=0");
    ensure!(reply[2] & 0x78 == query[2] & 0x78, "OPCODE not copied");
    ensure!(reply[2] & 0x01 == query[2] & 0x01, "RD not copied");
    ensure!(reply[3] & 0x10 == query[3] & 0x10, "CD not copied");
    ensure!(reply[3] & 0x80 == 0, "RA set (gslbd never recurses)");

    let resp = Message::from_vec(reply).map_err(|e| format!("reply does not parse: {e}"))?;
    let meta = &resp.metadata;
    ensure!(
        meta.message_type == MessageType::Response,
        "reply is not a response"
    );
    let rcode = meta.response_code;
    ensure!(
        !meta.authoritative || matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain),
        "AA set with {rcode}"
    );
    if meta.truncation {
        ensure!(
            resp.answers.is_empty() && resp.authorities.is_empty() && resp.additionals.is_empty(),
            "TC=1 reply carries records ({} answer, {} authority, {} additional)",
            resp.answers.len(),
            resp.authorities.len(),
            resp.additionals.len()
        );
    }

    // A question that points into the header is malformed (nothing precedes the first
    // name) and gets a bare FORMERR, without the question or OPT: echoing its bytes
    // would make the pointer name something else in the reply.
    if gslbd::general::question_points_into_header(query) {
        ensure!(
            rcode == ResponseCode::FormErr && resp.queries.is_empty(),
            "a question pointing into the header got {rcode} with {} question(s)",
            resp.queries.len()
        );
        return Ok(());
    }

    let Ok(q) = Message::from_vec(query) else {
        // hickory cannot read the query: whatever gslbd made of it, never above what any
        // client may be sent.
        ensure!(
            reply.len() <= usize::from(EDNS_UDP_LIMIT),
            "reply of {} bytes to an unparsable query (limit {EDNS_UDP_LIMIT})",
            reply.len()
        );
        return Ok(());
    };

    let limit = q.edns.as_ref().map_or(PLAIN_UDP_LIMIT, |e| {
        usize::from(
            e.max_payload()
                .clamp(PLAIN_UDP_LIMIT as u16, EDNS_UDP_LIMIT),
        )
    });
    ensure!(
        reply.len() <= limit,
        "reply of {} bytes over the UDP limit {limit} (query EDNS payload {:?})",
        reply.len(),
        q.edns.as_ref().map(|e| e.max_payload())
    );

    // A question count other than 1 is FORMERR (RFC 9619), without echoing the
    // questions: there is no one question to echo, and many may not even fit. (An
    // unknown opcode is checked first and gets NOTIMP, and an EDNS version above 0
    // before that gets BADVERS, code 16, which hickory decodes as BADSIG.) Either way:
    // no answer, and the questions echoed whole or not at all.
    if q.queries.len() != 1 {
        ensure!(
            (matches!(rcode, ResponseCode::FormErr | ResponseCode::NotImp)
                || u16::from(rcode) == 16)
                && resp.answers.is_empty()
                && (resp.queries.is_empty() || resp.queries == q.queries),
            "{} questions got {rcode} with {} echoed",
            q.queries.len(),
            resp.queries.len()
        );
        return Ok(());
    }

    // The question, exactly as asked.
    ensure!(
        resp.queries.len() == q.queries.len(),
        "{} question(s) echoed for {}",
        resp.queries.len(),
        q.queries.len()
    );
    for (a, b) in resp.queries.iter().zip(&q.queries) {
        ensure!(
            a.name().to_ascii() == b.name().to_ascii()
                && a.query_type() == b.query_type()
                && a.query_class() == b.query_class(),
            "question {a} echoed for {b}"
        );
    }

    // EDNS (RFC 6891): OPT back iff OPT in.
    ensure!(
        resp.edns.is_some() == q.edns.is_some(),
        "query OPT: {}, reply OPT: {}",
        q.edns.is_some(),
        resp.edns.is_some()
    );
    if let (Some(qe), Some(re)) = (&q.edns, &resp.edns) {
        ensure!(re.version() == 0, "reply OPT version {}", re.version());
        let offered = re.max_payload();
        ensure!(
            (PLAIN_UDP_LIMIT as u16..=EDNS_UDP_LIMIT).contains(&offered)
                && offered <= qe.max_payload().max(PLAIN_UDP_LIMIT as u16),
            "reply OPT offers {offered} to a client offering {}",
            qe.max_payload()
        );
        ensure!(
            re.flags().dnssec_ok == qe.flags().dnssec_ok,
            "DO bit not copied"
        );
    }

    // The RCODE for what the README lists, in the server's order of checks.
    let opcode = (query[2] >> 3) & 0x0F;
    let expected = if q.edns.as_ref().is_some_and(|e| e.version() > 0) {
        Some(ResponseCode::BADVERS)
    } else if raw_ecs_options(query).iter().any(|o| !ecs_well_formed(o)) {
        Some(ResponseCode::FormErr)
    } else if opcode != 0 {
        Some(ResponseCode::NotImp)
    } else if q.queries.len() != 1 {
        Some(ResponseCode::FormErr)
    } else if q.queries[0].query_class() != DNSClass::IN {
        Some(ResponseCode::Refused)
    } else {
        match q.queries[0].query_type() {
            RecordType::OPT => Some(ResponseCode::FormErr),
            RecordType::AXFR | RecordType::IXFR => Some(ResponseCode::Refused),
            _ => None,
        }
    };
    match expected {
        // By value: 16 is both BADVERS and BADSIG, and hickory reads it as the latter.
        Some(want) => ensure!(
            u16::from(rcode) == u16::from(want),
            "RCODE {rcode}, expected {want}"
        ),
        None => ensure!(
            matches!(
                rcode,
                ResponseCode::NoError | ResponseCode::NXDomain | ResponseCode::Refused
            ),
            "RCODE {rcode} for a well-formed query"
        ),
    }

    // Answer records: the asked type, or the CNAMEs that led to it (ANY: anything).
    if let [question] = q.queries.as_slice() {
        let qtype = question.query_type();
        if qtype != RecordType::ANY {
            for r in &resp.answers {
                let t = r.record_type();
                ensure!(
                    t == qtype || t == RecordType::CNAME,
                    "{t} record in the answer to a {qtype} query"
                );
            }
        }
    }

    // ECS (RFC 7871): echoed with family, source prefix and address as sent (a query
    // with bits past the prefix got FORMERR above).
    let ecs_in = ecs(&q);
    let ecs_out = ecs(&resp);
    match (ecs_in, ecs_out) {
        (None, Some(_)) => return Err("ECS in the reply to a query without one".into()),
        (Some(_), None) => ensure!(
            !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain),
            "{rcode} reply to an ECS query without ECS"
        ),
        (Some(a), Some(b)) => {
            let max = if a.addr().is_ipv4() { 32 } else { 128 };
            ensure!(
                b.addr().is_ipv4() == a.addr().is_ipv4()
                    && b.source_prefix() == a.source_prefix()
                    && b.addr() == a.addr()
                    && masked(a.addr(), a.source_prefix()) == a.addr(),
                "ECS {}/{} echoed as {}/{}",
                a.addr(),
                a.source_prefix(),
                b.addr(),
                b.source_prefix()
            );
            ensure!(
                b.scope_prefix() <= max,
                "ECS scope /{} for {}",
                b.scope_prefix(),
                a.addr()
            );
            ensure!(
                a.source_prefix() != 0 || b.scope_prefix() == 0,
                "ECS source /0 answered with scope /{}",
                b.scope_prefix()
            );
        }
        (None, None) => {}
    }
    Ok(())
}

/// Bugs found and reported but not fixed yet, by the shape of the datagram that triggers
/// them: `Some(name)` when `query` is such a datagram. Callers may skip checking those
/// (the fuzz targets with `GSLBD_FUZZ_SKIP_KNOWN=1`, the property test always) so that
/// fuzzing goes on looking for other bugs; fixing one means deleting its arm here.
pub fn known_issue(_query: &[u8]) -> Option<&'static str> {
    // None open. (Fixed: a question pointing into the header got its bytes echoed, so
    // the pointer named something else in our reply; it now gets FORMERR without the
    // question — fuzz/regressions/request/question-pointer-into-header*.)
    None
}

/// The data of every ECS option (code 8) in the OPT record of `query`, read from its
/// bytes: hickory-proto ignores ADDRESS octets past those the prefix needs.
fn raw_ecs_options(query: &[u8]) -> Vec<Vec<u8>> {
    let word = |at: usize| -> Option<usize> {
        let b = query.get(at..at + 2)?;
        Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let name_end = |mut at: usize| -> Option<usize> {
        loop {
            let len = *query.get(at)?;
            if len == 0 {
                return Some(at + 1);
            }
            if len >= 0xC0 {
                return Some(at + 2);
            }
            at += 1 + usize::from(len);
        }
    };
    let walk = || -> Option<Vec<Vec<u8>>> {
        let mut at = 12;
        for _ in 0..word(4)? {
            at = name_end(at)? + 4;
        }
        for _ in 0..word(6)? + word(8)? + word(10)? {
            at = name_end(at)?;
            let (rtype, len) = (word(at)?, word(at + 8)?);
            let mut rdata = query.get(at + 10..at + 10 + len)?;
            at += 10 + len;
            if rtype != 41 {
                continue;
            }
            let mut found = Vec::new();
            while rdata.len() >= 4 {
                let (code, n) = (word_of(rdata, 0), word_of(rdata, 2));
                let Some(data) = rdata.get(4..4 + n) else {
                    break;
                };
                if code == 8 {
                    found.push(data.to_vec());
                }
                rdata = &rdata[4 + n..];
            }
            return Some(found);
        }
        Some(Vec::new())
    };
    walk().unwrap_or_default()
}

fn word_of(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// RFC 7871 §6: a known family, a prefix that fits it, exactly the ADDRESS octets the
/// prefix needs, no bits set past it. (SCOPE is not judged.)
fn ecs_well_formed(data: &[u8]) -> bool {
    if data.len() < 4 {
        return false;
    }
    let (family, source, addr) = (word_of(data, 0), usize::from(data[2]), &data[4..]);
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return false,
    };
    if source > max || addr.len() != source.div_ceil(8) {
        return false;
    }
    let spare = (8 - source % 8) % 8;
    addr.last()
        .is_none_or(|&b| u32::from(b) & ((1 << spare) - 1) == 0)
}

fn ecs(m: &Message) -> Option<ClientSubnet> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(cs) => Some(*cs),
        _ => None,
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & keep))
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & keep))
        }
    }
}
