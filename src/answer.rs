//! Builds the response to one request from a snapshot: header flags, the zone lookup, the
//! policy's answer for dynamic names, negative answers, EDNS and ECS, and the wire
//! encoding with truncation for UDP.
//!
//! [`answer`] produces a [`Reply`] (plain data borrowing the snapshot); the transports
//! encode it with [`encode`], within the UDP payload size or 65535 bytes over TCP.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder};
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use smallvec::SmallVec;

use crate::geo::Location;
use crate::model::{Policy, RecordId, RegionId};
use crate::policy::{self, Client, Decision, Family, Pick};
use crate::snapshot::Snapshot;
use crate::zone::{DynamicStep, Rcode, Resolution};

/// The UDP payload size we offer and accept (the DNS Flag Day 2020 value): large enough
/// for every answer we give, small enough to avoid IP fragmentation.
pub const EDNS_UDP_PAYLOAD: u16 = 1232;

/// A response, before encoding.
#[derive(Debug)]
pub struct Reply<'s> {
    /// Header flags and RCODE.
    pub metadata: Metadata,
    /// The OPT record to send, when the request had one.
    pub edns: Option<Edns>,
    /// Answer section.
    pub answers: Vec<Cow<'s, Record>>,
    /// Authority section.
    pub authority: Vec<Cow<'s, Record>>,
    /// Additional section (without the OPT record).
    pub additionals: Vec<Cow<'s, Record>>,
    /// The ECS scope the answer depended on, when the request carried ECS.
    pub ecs_scope: Option<u8>,
    /// The region that answered a dynamic name, if any (for the query log).
    pub picked: Option<RegionId>,
    /// Echo the question section (false for FORMERR on a question count other than 1:
    /// there is no one question to echo, and 64 of them may not even fit).
    pub echo_question: bool,
    /// How a dynamic name was decided; only filled by [`explain`].
    pub trace: Option<Trace>,
}

/// The policy's decision for a dynamic name, for `explain`.
#[derive(Debug)]
pub struct Trace {
    /// The dynamic record.
    pub record: RecordId,
    /// The client the decision was made for.
    pub client: Client,
    /// Its GeoIP location (empty when the policy does not use it or there is no DB).
    pub location: Location,
    /// The family decided for (ANY tries A, then AAAA).
    pub family: Family,
    /// Ranking, pick and whether every candidate was down.
    pub decision: Decision,
}

impl<'s> Reply<'s> {
    fn empty(metadata: Metadata, edns: Option<Edns>) -> Self {
        Reply {
            metadata,
            edns,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            ecs_scope: None,
            picked: None,
            echo_question: true,
            trace: None,
        }
    }

    fn with_rcode(mut self, rcode: ResponseCode) -> Self {
        self.metadata.response_code = rcode;
        self
    }
}

/// Answers `request` from `snap`. `rnd` rotates multi-address answers and draws
/// non-sticky weighted choices.
pub fn answer<'s>(request: &Request, snap: &'s Snapshot, rnd: u64) -> Reply<'s> {
    respond(request, snap, rnd, false)
}

/// Like [`answer`], and also records how a dynamic name was decided in [`Reply::trace`].
pub fn explain<'s>(request: &Request, snap: &'s Snapshot, rnd: u64) -> Reply<'s> {
    respond(request, snap, rnd, true)
}

fn respond<'s>(request: &Request, snap: &'s Snapshot, rnd: u64, trace: bool) -> Reply<'s> {
    let metadata = Metadata::response_from_request(&request.metadata);

    // RFC 6891 §7: a request with OPT gets OPT back; we offer our payload size, never
    // more than the client's, and copy DO (RFC 3225 §3).
    let mut ecs_in = None;
    let edns = request.edns.as_ref().map(|req| {
        let mut e = Edns::new();
        e.set_max_payload(req.max_payload().clamp(512, EDNS_UDP_PAYLOAD));
        e.set_version(0);
        e.set_dnssec_ok(req.flags().dnssec_ok);
        if let Some(EdnsOption::Subnet(cs)) = req.option(EdnsCode::Subnet) {
            ecs_in = Some(*cs);
        }
        e
    });
    let reply = Reply::empty(metadata, edns);
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        // RFC 6891 §6.1.3: unknown version -> BADVERS, version 0 in our OPT.
        return reply.with_rcode(ResponseCode::BADVERS);
    }
    if request.metadata.op_code != OpCode::Query {
        return reply.with_rcode(ResponseCode::NotImp);
    }
    let queries = request.queries.queries();
    let [query] = queries else {
        // RFC 9619: QDCOUNT must be 1.
        let mut reply = reply.with_rcode(ResponseCode::FormErr);
        reply.echo_question = false;
        return reply;
    };
    let query = query.original();
    let qtype = query.query_type();
    if query.query_class() != DNSClass::IN {
        // We hold IN data only (no CHAOS version.bind and the like).
        return reply.with_rcode(ResponseCode::Refused);
    }
    match qtype {
        // OPT is a pseudo-type that cannot be asked for.
        RecordType::OPT => return reply.with_rcode(ResponseCode::FormErr),
        // No zone transfers are offered.
        RecordType::AXFR | RecordType::IXFR => return reply.with_rcode(ResponseCode::Refused),
        _ => {}
    }
    let Some(res) = snap.zones.resolve(query.name(), qtype) else {
        // Not authoritative, and no recursion (RA stays 0).
        return reply.with_rcode(ResponseCode::Refused);
    };

    let client = client_of(request, ecs_in.as_ref());
    let mut reply = fill(reply, res, snap, &client, rnd, trace);
    if let (Some(e), Some(cs)) = (reply.edns.as_mut(), ecs_in) {
        // RFC 7871 §7.2.1: echo FAMILY, SOURCE PREFIX-LENGTH and ADDRESS; SCOPE says what
        // the answer depended on. A SOURCE of 0 means "do not use my subnet": scope 0.
        let addr = mask(cs.addr(), cs.source_prefix());
        let scope =
            crate::policy::ecs_scope(addr, cs.source_prefix(), reply.ecs_scope.unwrap_or(0));
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            addr,
            cs.source_prefix(),
            scope,
        )));
        reply.ecs_scope = Some(scope);
    }
    reply
}

/// Copies a zone resolution into the reply and answers its dynamic step, if any.
fn fill<'s>(
    mut reply: Reply<'s>,
    res: Resolution<'s>,
    snap: &'s Snapshot,
    client: &Client,
    rnd: u64,
    trace: bool,
) -> Reply<'s> {
    // RFC 1034 §4.3.1 / RFC 1035 §4.1.1: AA for data from our zones, not for referrals.
    reply.metadata.authoritative = res.authoritative;
    if res.rcode == Rcode::NxDomain {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    reply.answers = res.answers;
    reply.authority = res.authority;
    reply.additionals = res.additionals;
    if let Some(step) = res.dynamic {
        let before = reply.answers.len();
        let d = dynamic_answer(&step, snap, client, rnd, trace, &mut reply.answers);
        reply.ecs_scope = Some(d.scope);
        reply.picked = d.picked;
        reply.trace = d.trace.map(|t| *t);
        if reply.answers.len() == before {
            // RFC 2308 §2.2: NODATA is NOERROR, empty answer, SOA in authority.
            reply.authority.push(Cow::Borrowed(res.zone.negative_soa()));
        }
    }
    reply
}

/// Appends the policy's records for a dynamic name; returns the ECS scope and, when
/// asked, the trace of the decision.
fn dynamic_answer<'s>(
    step: &DynamicStep,
    snap: &Snapshot,
    client: &Client,
    rnd: u64,
    trace: bool,
    out: &mut Vec<Cow<'s, Record>>,
) -> Dynamic {
    let ttl = snap.model.records[step.record.index()].ttl;
    dynamic_addresses(step.record, step.qtype, snap, client, rnd, trace, |a| {
        let data = match a {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        out.push(Cow::Owned(Record::from_rdata(
            step.owner.clone(),
            ttl,
            data,
        )));
    })
}

/// Decides a dynamic name for `client` and hands each address of the answer, in answer
/// order, to `emit` (the general path makes records of them, the wire fast path writes
/// them straight into the reply). Counts the answer unless `trace` (an `explain`).
/// Allocates nothing for records of up to 16 regions and 8 addresses per answer.
pub fn dynamic_addresses(
    record: RecordId,
    qtype: RecordType,
    snap: &Snapshot,
    client: &Client,
    rnd: u64,
    trace: bool,
    mut emit: impl FnMut(IpAddr),
) -> Dynamic {
    let model = &snap.model;
    let rec = &model.records[record.index()];
    // A geo record with a compiled map needs no GeoIP lookup (but `explain` shows the
    // location); otherwise one per query, and only for policies that use it.
    let map = match (&rec.policy, snap.geo_map(record)) {
        (Policy::Geo(rules), Some(map)) => Some((&**rules, map)),
        _ => None,
    };
    let location = match (
        &snap.geo,
        rec.policy.needs_location() && (map.is_none() || trace),
    ) {
        (Some(db), true) => db.locate(client.addr),
        _ => Location::default(),
    };
    let families: &[Family] = match qtype {
        RecordType::A => &[Family::V4],
        RecordType::AAAA => &[Family::V6],
        // RFC 8482: one RRset is enough for ANY; prefer A, else AAAA.
        _ => &[Family::V4, Family::V6],
    };
    let mut scope = 0;
    let mut last = None;
    let mut picked = None;
    for &family in families {
        let decision = match map {
            Some((rules, map)) => policy::choose(
                model,
                &snap.health,
                rec,
                map.rank(rules, client.addr),
                family,
            ),
            None => policy::select(model, &snap.health, rec, client, &location, family, rnd),
        };
        scope = scope.max(decision.ranking.scope);
        let addrs = picked_addresses(&decision, snap, family, rnd);
        addrs.iter().copied().for_each(&mut emit);
        if !addrs.is_empty() {
            picked = match decision.pick {
                Pick::Region(id) => Some(id),
                Pick::All => decision.ranking.order.first().copied(),
                Pick::Nothing => None,
            };
        }
        if trace {
            last = Some(Box::new(Trace {
                record,
                client: *client,
                location,
                family,
                decision,
            }));
        }
        if !addrs.is_empty() {
            break;
        }
    }
    if !trace {
        // `explain` asks hypothetical questions: only real answers are counted.
        snap.answers.count(record, picked.map(RegionId::index));
    }
    Dynamic {
        scope,
        picked,
        trace: last,
    }
}

/// What the policy decided for one dynamic answer.
pub struct Dynamic {
    /// The ECS scope the answer depends on.
    pub scope: u8,
    /// The region answering (the first one for `when_all_down = "all"`).
    pub picked: Option<RegionId>,
    /// How it was decided, for `explain`.
    pub trace: Option<Box<Trace>>,
}

/// The picked addresses, rotated by `rnd`.
fn picked_addresses(
    decision: &Decision,
    snap: &Snapshot,
    family: Family,
    rnd: u64,
) -> SmallVec<[IpAddr; 8]> {
    let model = &snap.model;
    // Only up addresses, unless every candidate is down and we fail open.
    let up = |id: RegionId, i: usize| decision.all_down || snap.health.address_up(id, i);
    let mut addrs: SmallVec<[IpAddr; 8]> = SmallVec::new();
    match decision.pick {
        // The hot case, written out: health indexes IPv4 addresses first, then IPv6.
        Pick::Region(id) => {
            let region = model.region(id);
            match family {
                Family::V4 => {
                    for (i, a) in region.v4.iter().enumerate() {
                        if up(id, i) {
                            addrs.push(IpAddr::V4(*a));
                        }
                    }
                }
                Family::V6 => {
                    let first = region.v4.len();
                    for (i, a) in region.v6.iter().enumerate() {
                        if up(id, first + i) {
                            addrs.push(IpAddr::V6(*a));
                        }
                    }
                }
            }
        }
        Pick::All => {
            for id in decision.ranking.order.iter() {
                for (_, a) in policy::addresses(model.region(*id), family) {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
        }
        Pick::Nothing => {}
    }
    if addrs.len() > 1 {
        // Rotate so that clients which take the first address spread over all of them.
        // (`rnd` is also the weighted draw; the high bits keep the two independent.)
        let n = addrs.len() as u64;
        addrs.rotate_left(((rnd >> 32) % n) as usize);
    }
    addrs
}

/// The client the decision is for: the ECS subnet when given with a non-zero source
/// prefix (RFC 7871 §7.1.1), else the packet's source address.
fn client_of(request: &Request, ecs: Option<&ClientSubnet>) -> Client {
    match ecs {
        Some(cs) if cs.source_prefix() > 0 => {
            Client::from_ecs(mask(cs.addr(), cs.source_prefix()), cs.source_prefix())
        }
        _ => Client {
            addr: request.src().ip().to_canonical(),
            source_prefix: None,
        },
    }
}

/// Zeroes the bits after `prefix`. hickory accepts ECS addresses with bits set past the
/// source prefix; RFC 7871 §6 says they must be zero, so we never look them up.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(prefix.min(32));
            let m = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let bits = u32::from(prefix.min(128));
            let m = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// The largest UDP response this request allows: the client's EDNS payload (at most
/// ours), or 512 without EDNS (RFC 1035 §4.2.1).
pub fn udp_limit(request: &Request) -> u16 {
    match &request.edns {
        Some(e) => e.max_payload().clamp(512, EDNS_UDP_PAYLOAD),
        None => 512,
    }
}

/// Encodes `reply` for UDP into `out`, within `max_size` bytes. When the answer does not
/// fit, the additional section is dropped first (it is optional unless it is glue of a
/// referral); if it still does not fit, the reply is sent with TC=1 and no records, so the
/// client retries over TCP (RFC 2181 §9, RFC 7766 §5).
pub fn encode(request: &Request, reply: &Reply<'_>, max_size: u16, out: &mut Vec<u8>) {
    if emit(request, reply, true, true, max_size, out) == Some(false) {
        return;
    }
    let referral = !reply.metadata.authoritative && !reply.authority.is_empty();
    if !reply.additionals.is_empty()
        && !referral
        && emit(request, reply, true, false, max_size, out) == Some(false)
    {
        return;
    }
    if emit(request, reply, false, false, max_size, out).is_none() {
        // Even the question does not fit (or cannot be written): a bare header with
        // TC=1 still tells the client what happened.
        bare_header(reply, out);
    }
}

/// The reply's header alone, TC=1 and no sections.
fn bare_header(reply: &Reply<'_>, out: &mut Vec<u8>) {
    out.clear();
    let mut metadata = reply.metadata;
    metadata.truncation = true;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    if header.emit(&mut BinEncoder::new(out)).is_err() {
        out.clear();
    }
}

/// Encodes the reply's header, question and OPT only, with TC=1, within `max_size`:
/// what a rate-limited client gets on a "slip", so that a real client retries over TCP.
/// When even that does not fit (many questions, say), the header alone.
pub fn encode_truncated(request: &Request, reply: &Reply<'_>, max_size: u16, out: &mut Vec<u8>) {
    if emit(request, reply, false, false, max_size, out).is_none() {
        bare_header(reply, out);
    }
}

/// The response class used by rate limiting (as Knot and BIND classify them), so that a
/// flood of one kind does not use up another kind's budget.
pub fn rrl_kind(reply: &Reply<'_>) -> crate::rrl::Kind {
    use crate::rrl::Kind;
    match reply.metadata.response_code {
        ResponseCode::NoError if !reply.answers.is_empty() => Kind::Answer,
        ResponseCode::NoError if !reply.metadata.authoritative && !reply.authority.is_empty() => {
            Kind::Referral
        }
        ResponseCode::NoError => Kind::NoData,
        ResponseCode::NXDomain => Kind::NxDomain,
        _ => Kind::Error,
    }
}

/// Encodes the chosen sections; `Some(truncated)`, or `None` when encoding failed.
fn emit(
    request: &Request,
    reply: &Reply<'_>,
    records: bool,
    additional: bool,
    max_size: u16,
    out: &mut Vec<u8>,
) -> Option<bool> {
    out.clear();
    let mut metadata = reply.metadata;
    metadata.truncation = !records;
    let section =
        |s: &'_ [Cow<'_, Record>], keep: bool| -> usize { if keep { s.len() } else { 0 } };
    let answers = &reply.answers[..section(&reply.answers, records)];
    let authority = &reply.authority[..section(&reply.authority, records)];
    let additionals = &reply.additionals[..section(&reply.additionals, additional)];
    // Reading zero questions from nothing is the public way to make an empty section.
    let Ok(no_questions) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
        return None;
    };
    let mut builder = if reply.echo_question {
        MessageResponseBuilder::from_message_request(request)
    } else {
        MessageResponseBuilder::new(&no_questions, None)
    };
    if let Some(e) = &reply.edns {
        builder.edns(e);
    }
    let response = builder.build(
        metadata,
        answers.iter().map(|r| r.as_ref()),
        authority.iter().map(|r| r.as_ref()),
        std::iter::empty(),
        additionals.iter().map(|r| r.as_ref()),
    );
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(max_size);
    let header = response.destructive_emit(&mut encoder).ok()?;
    Some(records && header.truncation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_zeroes_bits_past_the_prefix() {
        let m = |a: &str, p| mask(a.parse().unwrap(), p).to_string();
        assert_eq!(m("203.0.113.77", 24), "203.0.113.0");
        assert_eq!(m("203.0.113.77", 20), "203.0.112.0");
        assert_eq!(m("203.0.113.77", 0), "0.0.0.0");
        assert_eq!(m("203.0.113.77", 32), "203.0.113.77");
        assert_eq!(m("2001:db8:abcd:1234::1", 48), "2001:db8:abcd::");
        assert_eq!(m("2001:db8::1", 200), "2001:db8::1");
    }
}
