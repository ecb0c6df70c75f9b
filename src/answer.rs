//! The general path's answer: from a decoded request and a snapshot, the reply as
//! records ([`Reply`]): RCODE and AA, the zone lookup, the dynamic name's records from
//! [`crate::decide`], negative answers. No side effects: [`crate::general`] encodes it
//! and [`crate::pipeline::finish`] frames, limits and counts it.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::server::Request;

use crate::decide::{self, Choice, Trace};
use crate::pipeline::Query;
use crate::rrl::Kind;
use crate::snapshot::Snapshot;
use crate::zone::{DynamicStep, Rcode, Resolution};

/// A response, before encoding.
#[derive(Debug)]
pub struct Reply<'s> {
    /// RCODE (with the extended ones: BADVERS).
    pub rcode: ResponseCode,
    /// AA: data from our zones, not a referral.
    pub authoritative: bool,
    /// Answer section.
    pub answers: Vec<Cow<'s, Record>>,
    /// Authority section.
    pub authority: Vec<Cow<'s, Record>>,
    /// Additional section (without the OPT record).
    pub additionals: Vec<Cow<'s, Record>>,
    /// The ECS scope the answer depends on, when it came from our zones (a query with
    /// ECS gets it echoed); `None` for refusals and errors.
    pub ecs_scope: Option<u8>,
    /// The dynamic name's decision, when the name (or a CNAME chain) reached one.
    pub choice: Option<Choice>,
    /// How that decision was made; only filled by [`explain`].
    pub trace: Option<Trace>,
    /// Echo the question section: false when there is not exactly one question (RFC
    /// 9619: there is no one question to echo, and 64 of them may not even fit).
    pub echo_question: bool,
}

impl Reply<'_> {
    /// A reply of `rcode` alone, with the question echoed or not.
    pub fn with_rcode(rcode: ResponseCode, echo_question: bool) -> Self {
        Reply {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            ecs_scope: None,
            choice: None,
            trace: None,
            echo_question,
        }
    }

    /// True for a delegation: NS records in authority without AA (glue in additional).
    pub fn is_referral(&self) -> bool {
        self.rcode == ResponseCode::NoError && !self.authoritative && !self.authority.is_empty()
    }

    /// The response class used by rate limiting (as Knot and BIND classify them), so that
    /// a flood of one kind does not use up another kind's budget.
    pub fn rrl_kind(&self) -> Kind {
        match self.rcode {
            ResponseCode::NoError if !self.answers.is_empty() => Kind::Answer,
            ResponseCode::NoError if self.is_referral() => Kind::Referral,
            ResponseCode::NoError => Kind::NoData,
            ResponseCode::NXDomain => Kind::NxDomain,
            _ => Kind::Error,
        }
    }
}

/// Answers `request` (described by `q`, its EDNS already read) from `snap`. `rnd`
/// rotates multi-address answers and draws non-sticky weighted choices.
pub fn answer<'s>(request: &Request, q: &Query, snap: &'s Snapshot, rnd: u64) -> Reply<'s> {
    respond(request, q, snap, rnd, false)
}

/// Like [`answer`], and also records how a dynamic name was decided in [`Reply::trace`].
pub fn explain<'s>(request: &Request, q: &Query, snap: &'s Snapshot, rnd: u64) -> Reply<'s> {
    respond(request, q, snap, rnd, true)
}

fn respond<'s>(
    request: &Request,
    q: &Query,
    snap: &'s Snapshot,
    rnd: u64,
    trace: bool,
) -> Reply<'s> {
    let queries = request.queries.queries();
    let one = queries.len() == 1;
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        // RFC 6891 §6.1.3: unknown version -> BADVERS, version 0 in our OPT.
        return Reply::with_rcode(ResponseCode::BADVERS, one);
    }
    if request.metadata.op_code != OpCode::Query {
        return Reply::with_rcode(ResponseCode::NotImp, one);
    }
    let [query] = queries else {
        // RFC 9619: QDCOUNT must be 1.
        return Reply::with_rcode(ResponseCode::FormErr, false);
    };
    let query = query.original();
    let qtype = query.query_type();
    if query.query_class() != DNSClass::IN {
        // We hold IN data only (no CHAOS version.bind and the like).
        return Reply::with_rcode(ResponseCode::Refused, true);
    }
    match qtype {
        // OPT is a pseudo-type that cannot be asked for, nor is NXNAME (RFC 9824 §3.5).
        RecordType::OPT => return Reply::with_rcode(ResponseCode::FormErr, true),
        RecordType::Unknown(128) => return Reply::with_rcode(ResponseCode::FormErr, true),
        // No zone transfers are offered.
        RecordType::AXFR | RecordType::IXFR => {
            return Reply::with_rcode(ResponseCode::Refused, true);
        }
        _ => {}
    }
    let Some(res) = snap.zones.resolve(query.name(), qtype) else {
        // Not authoritative, and no recursion (RA stays 0).
        return Reply::with_rcode(ResponseCode::Refused, true);
    };
    let mut reply = fill(res, snap, q, request.src().ip(), rnd, trace);
    if let Some(e) = q.edns.filter(|e| e.dnssec_ok) {
        secure(&mut reply, query.name(), qtype, snap, e.compact_ok);
    }
    reply
}

/// With `[dnssec]`, for a DO=1 query: adds the RRSIGs and proofs ([`crate::dnssec::reply`]).
/// A name that does not exist is answered NOERROR with its NXNAME proof (RFC 9824
/// compact denial), NXDOMAIN when the query set CO (`compact_ok`); a signature over the
/// cap of signing on first use is SERVFAIL.
fn secure<'s>(
    reply: &mut Reply<'s>,
    qname: &Name,
    qtype: RecordType,
    snap: &'s Snapshot,
    compact_ok: bool,
) {
    let Some(signing) = &snap.signing else {
        return;
    };
    let choice = reply.choice.as_ref().and_then(|c| {
        let name = Name::from_ascii(&snap.model.records[c.record.index()].name).ok()?;
        Some((c.clone(), name))
    });
    let src = crate::dnssec::reply::Sources {
        zones: snap.zones.zones(),
        dynamic: &snap.dyn_sigs,
        fresh: Some(&signing.fresh),
        choice,
    };
    let nxdomain = reply.rcode == ResponseCode::NXDomain;
    let sections = crate::dnssec::reply::Sections {
        answers: &mut reply.answers,
        authority: &mut reply.authority,
        additionals: &mut reply.additionals,
    };
    match crate::dnssec::reply::secure(&src, qname, qtype, nxdomain, sections) {
        Ok(()) if nxdomain && !compact_ok => reply.rcode = ResponseCode::NoError,
        Ok(()) => {}
        Err(_) => {
            let echo = reply.echo_question;
            *reply = Reply::with_rcode(ResponseCode::ServFail, echo);
        }
    }
}

/// Makes a reply of a zone resolution, answering its dynamic step, if any.
fn fill<'s>(
    res: Resolution<'s>,
    snap: &'s Snapshot,
    q: &Query,
    src: IpAddr,
    rnd: u64,
    trace: bool,
) -> Reply<'s> {
    let mut reply = Reply::with_rcode(ResponseCode::NoError, true);
    // RFC 1034 §4.3.1 / RFC 1035 §4.1.1: AA for data from our zones, not for referrals.
    reply.authoritative = res.authoritative;
    if res.rcode == Rcode::NxDomain {
        reply.rcode = ResponseCode::NXDomain;
    }
    reply.answers = res.answers;
    reply.authority = res.authority;
    reply.additionals = res.additionals;
    reply.ecs_scope = Some(0);
    if let Some(step) = res.dynamic {
        let client = q.client(src);
        let (choice, how) = if trace {
            let (c, t) = decide::decide_traced(step.record, step.qtype, snap, &client, rnd);
            (c, Some(t))
        } else {
            (
                decide::decide(step.record, step.qtype, snap, &client, rnd),
                None,
            )
        };
        reply.ecs_scope = Some(choice.scope);
        let target = write_choice(&mut reply, &step, &choice, res.zone, snap, rnd);
        if let Some(target) = target.filter(|_| step.qtype != RecordType::CNAME) {
            chase(&mut reply, target, step.qtype, snap, &client, rnd);
        }
        reply.choice = Some(choice);
        reply.trace = how;
    }
    reply
}

/// After a CNAME region's CNAME: a target inside our zones is followed, as a static
/// CNAME is (RFC 1034 §4.3.2): its data, its negative answer, or its own dynamic name,
/// decided for the same client. A target elsewhere is for the resolver to chase.
fn chase<'s>(
    reply: &mut Reply<'s>,
    target: Name,
    qtype: RecordType,
    snap: &'s Snapshot,
    client: &crate::policy::Client,
    rnd: u64,
) {
    let mut next = Some(target);
    // A bound, as for static chains: a loop of CNAME regions ends here.
    for _ in 0..crate::zone::MAX_CNAME_CHAIN {
        let Some(name) = next.take() else { return };
        let Some(res) = snap.zones.resolve(&name, qtype) else {
            return;
        };
        if res.rcode == Rcode::NxDomain {
            // RFC 6604: the RCODE describes the last name of the chain.
            reply.rcode = ResponseCode::NXDomain;
        }
        let zone = res.zone;
        reply.answers.extend(res.answers);
        reply.authority.extend(res.authority);
        reply.additionals.extend(res.additionals);
        let Some(step) = res.dynamic else { return };
        let choice = decide::decide(step.record, step.qtype, snap, client, rnd);
        reply.ecs_scope = reply.ecs_scope.max(Some(choice.scope));
        next = write_choice(reply, &step, &choice, zone, snap, rnd);
    }
}

/// Appends a dynamic name's answer: the CNAME of a `cname` region (its target comes back,
/// for following), or the addresses, or NODATA (RFC 2308 §2.2: NOERROR, empty answer,
/// the zone's SOA in authority).
fn write_choice<'s>(
    reply: &mut Reply<'s>,
    step: &DynamicStep,
    choice: &Choice,
    zone: &'s crate::zone::Zone,
    snap: &'s Snapshot,
    rnd: u64,
) -> Option<Name> {
    let cname = choice
        .region
        .and_then(|id| snap.model.region(id).cname.as_ref());
    if let (Some(target), true) = (cname, choice.cname) {
        reply.answers.push(Cow::Owned(Record::from_rdata(
            step.owner.clone(),
            choice.ttl,
            RData::CNAME(CNAME(target.clone())),
        )));
        return Some(target.clone());
    }
    push_addresses(step, choice, rnd, &mut reply.answers);
    if choice.addrs.is_empty() {
        reply.authority.push(Cow::Borrowed(zone.negative_soa()));
    }
    None
}

/// Appends the choice's addresses, in answer order, as records of the dynamic name.
fn push_addresses<'s>(
    step: &DynamicStep,
    choice: &Choice,
    rnd: u64,
    out: &mut Vec<Cow<'s, Record>>,
) {
    let ttl = choice.ttl;
    for a in choice.rotated(rnd) {
        let data = match a {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        out.push(Cow::Owned(Record::from_rdata(
            step.owner.clone(),
            ttl,
            data,
        )));
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
