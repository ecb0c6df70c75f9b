//! The general query path: every message the fast path leaves (malformed or unusual
//! queries, CNAMEs, delegations, wildcards, refusals, sampled query-log entries) is
//! decoded by hickory-proto, answered by [`answer::answer`], its question and records
//! encoded after the header, and finished by [`pipeline::finish`] like every reply.

use std::borrow::Cow;
use std::net::SocketAddr;

use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use tracing::info;

use crate::answer::{self, Reply, mask};
use crate::pipeline::{self, Body, Ecs, Edns, Query};
use crate::runtime::View;

/// Answers `msg` from `src` into `out` (left empty when nothing is to be sent). `log`
/// writes the query to the query log once its reply is sent.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    msg: &[u8],
    src: SocketAddr,
    view: &View<'_>,
    tcp: bool,
    rnd: u64,
    log: bool,
    now_ms: impl FnOnce() -> u64,
    out: &mut Vec<u8>,
) {
    out.clear();
    let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
    let request = match Request::from_bytes(msg.to_vec(), src, protocol) {
        // The reply would echo the question; a pointer into the header would then point
        // into *our* header and name something else (or nothing parsable). The first
        // name of a message has nothing before it to point to, so such a question is
        // malformed: FORMERR, without echoing it.
        Ok(_) if question_points_into_header(msg) => {
            return formerr(msg, src, view, tcp, None, now_ms, out);
        }
        Ok(request) => request,
        // With our OPT when it is a malformed ECS option that hickory could not read.
        Err(_) => return formerr(msg, src, view, tcp, crate::ecs::rejected(msg), now_ms, out),
    };
    if request.metadata.message_type == MessageType::Response {
        view.queries()
            .dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return; // never answer answers (reflection loops)
    }
    let mut q = describe(&request, tcp);
    // RFC 7871 §6, §7.2.1: a malformed ECS option is FORMERR, with our OPT (src/ecs.rs).
    let reply = match crate::ecs::rejected(msg) {
        Some(edns) => {
            q.edns = Some(edns);
            Reply::with_rcode(ResponseCode::FormErr, request.queries.queries().len() == 1)
        }
        None => answer::answer(&request, &q, view, rnd),
    };
    let body = write(&request, &reply, out);
    let sent = pipeline::finish(&q, &body, view, src.ip(), now_ms, out);
    if log && sent.answered() {
        log_query(&request, &reply, view, tcp);
    }
}

/// The pipeline's description of a decoded request.
pub fn describe(request: &Request, tcp: bool) -> Query {
    let m = &request.metadata;
    // The flag bits we echo: OPCODE, RD and CD.
    let flags = u16::from(u8::from(m.op_code)) << 11
        | if m.recursion_desired { 0x0100 } else { 0 }
        | if m.checking_disabled { 0x0010 } else { 0 };
    let qtype = match request.queries.queries() {
        [one] => u16::from(one.query_type()),
        _ => 0,
    };
    let edns = request.edns.as_ref().map(|e| Edns {
        payload: e.max_payload(),
        dnssec_ok: e.flags().dnssec_ok,
        compact_ok: e.flags().z & 0x4000 != 0,
        ecs: match e.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(cs)) => Some(Ecs {
                source: cs.source_prefix(),
                addr: mask(cs.addr(), cs.source_prefix()),
            }),
            _ => None,
        },
    });
    Query {
        id: m.id,
        flags,
        qtype,
        edns,
        tcp,
    }
}

/// Writes the header space, the question and `reply`'s records into `out`, compressing
/// names against each other and the question, and describes them.
pub fn write(request: &Request, reply: &Reply<'_>, out: &mut Vec<u8>) -> Body {
    out.clear();
    out.resize(12, 0);
    let rcode = u16::from(reply.rcode);
    let mut enc = BinEncoder::with_offset(out, 12);
    if reply.echo_question {
        let written = request
            .queries
            .queries()
            .iter()
            .try_for_each(|q| q.original().emit(&mut enc));
        if written.is_err() {
            drop(enc);
            out.truncate(12);
            return Body::empty(rcode, 12);
        }
    }
    let sections_at = enc.offset();
    let section = |enc: &mut BinEncoder<'_>, records: &[Cow<'_, Record>]| {
        records.iter().try_for_each(|r| r.emit(enc))
    };
    let written =
        section(&mut enc, &reply.answers).and_then(|()| section(&mut enc, &reply.authority));
    let additional_at = enc.offset();
    let written = written.and_then(|()| section(&mut enc, &reply.additionals));
    drop(enc);
    if written.is_err() {
        // Only an answer over 64 KiB gets here: no transport can carry it.
        out.truncate(sections_at);
        return Body::empty(u16::from(ResponseCode::ServFail), sections_at);
    }
    let count = |s: &[_]| s.len() as u16;
    Body {
        rcode,
        authoritative: reply.authoritative,
        counts: [
            count(&reply.answers),
            count(&reply.authority),
            count(&reply.additionals),
        ],
        sections_at,
        additional_at,
        glue: reply.is_referral(),
        kind: reply.rrl_kind(),
        ecs_scope: reply.ecs_scope,
        answer: reply.choice.as_ref().map(|c| (c.record, c.region)),
    }
}

/// FORMERR for a query whose header parsed but whose body did not (with `edns`, the OPT
/// record to answer with); silence (counted as dropped) for anything shorter than a
/// header or claiming to be a response (RFC 1035 §4.1.1).
fn formerr(
    msg: &[u8],
    src: SocketAddr,
    view: &View<'_>,
    tcp: bool,
    edns: Option<Edns>,
    now_ms: impl FnOnce() -> u64,
    out: &mut Vec<u8>,
) {
    let header = match msg.get(..12) {
        Some(h) if h[2] & 0x80 == 0 => h,
        _ => {
            view.queries()
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.clear();
            return;
        }
    };
    let q = Query {
        id: u16::from_be_bytes([header[0], header[1]]),
        flags: u16::from_be_bytes([header[2], header[3]]),
        qtype: 0,
        edns,
        tcp,
    };
    out.clear();
    out.resize(12, 0);
    let body = Body::empty(u16::from(ResponseCode::FormErr), 12);
    pipeline::finish(&q, &body, view, src.ip(), now_ms, out);
}

/// Writes a sent reply to the query log (`server.query_log`).
fn log_query(request: &Request, reply: &Reply<'_>, view: &View<'_>, tcp: bool) {
    let query = request.queries.queries().first().map(|q| q.original());
    let ecs = match request
        .edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Subnet))
    {
        Some(EdnsOption::Subnet(cs)) => format!("{}/{}", cs.addr(), cs.source_prefix()),
        _ => "-".into(),
    };
    let region = reply
        .choice
        .as_ref()
        .and_then(|c| c.region)
        .map_or("-", |id| view.model.region(id).name.as_str());
    let answer: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    info!(
        target: "gslbd::query",
        client = %request.src(),
        ecs = %ecs,
        transport = if tcp { "tcp" } else { "udp" },
        name = %query.map(|q| q.name().to_string()).unwrap_or_default(),
        qtype = %query.map(|q| q.query_type().to_string()).unwrap_or_default(),
        rcode = %crate::metrics::queries::rcode_name(reply.rcode.into()),
        region = %region,
        answer = %answer.join(" "),
        "query"
    );
}

/// True when a name in the question section reaches the 12-byte header through a
/// compression pointer (found by fuzzing: hickory accepts any backward pointer).
pub fn question_points_into_header(msg: &[u8]) -> bool {
    let qdcount = match msg.get(4..6) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => return false,
    };
    let mut pos = 12;
    for _ in 0..qdcount {
        // Walk this name; `pos` ends up after it (past a pointer, or the root label).
        let mut at = pos;
        let mut next = None;
        for _ in 0..128 {
            let Some(&len) = msg.get(at) else {
                return false;
            };
            if len & 0xC0 == 0xC0 {
                let Some(&low) = msg.get(at + 1) else {
                    return false;
                };
                let target = usize::from(len & 0x3F) << 8 | usize::from(low);
                if target < 12 {
                    return true;
                }
                next.get_or_insert(at + 2);
                at = target;
            } else if len == 0 {
                next.get_or_insert(at + 1);
                break;
            } else {
                at += 1 + usize::from(len);
            }
        }
        let Some(end) = next else { return false };
        pos = end + 4; // type and class
    }
    false
}
