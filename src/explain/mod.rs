//! `gslbd explain`: the decision for one client, as an operator needs it to answer "why
//! did Tokyo get Frankfurt?". It runs the real answer path on a synthetic query and lays
//! out the trace: location found and from which network, the rule matched, the ranking
//! with each region's health and score, the answer, TTL and ECS scope.
//!
//! Run on a snapshot's health it agrees with what that snapshot answers: the running
//! server explains on its own (live health and drains, `GET /api/v1/explain`); the CLI asks
//! it there, and explains from the config alone, every region up, only when it cannot.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::answer::{self, Reply};
use crate::decide::{Choice, Trace};
use crate::geo::Location;
use crate::model::{Model, Policy, RegionId};
use crate::pipeline::EDNS_UDP_PAYLOAD;
use crate::policy::{Pick, RttSource, Rule, latency::Row};
use crate::snapshot::Snapshot;

pub mod remote;

/// The explanation of one query; serialised by the admin API, read back by the CLI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Explanation {
    /// Query name as asked.
    pub name: String,
    /// Query type.
    pub qtype: String,
    /// The query's source address.
    pub client: String,
    /// The ECS subnet sent, if any.
    pub subnet: Option<String>,
    /// RCODE of the answer.
    pub rcode: String,
    /// AA flag.
    pub authoritative: bool,
    /// The dynamic record's decision, when the name (or a CNAME chain) reached one.
    pub dynamic: Option<DynamicExplanation>,
    /// When no policy decided (`dynamic` is `None`) although the name, or the end of its
    /// CNAME chain, is a dynamic name: that record and its policy, e.g.
    /// `www.gslb.example.com. (policy geo)`. A policy decides A and AAAA only; other
    /// types there come from the zone file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecided_dynamic: Option<String>,
    /// Answer section, one record per line.
    pub answer: Vec<String>,
    /// Authority section.
    pub authority: Vec<String>,
    /// Additional section.
    pub additional: Vec<String>,
    /// ECS scope prefix in the reply (when a subnet was sent).
    pub ecs_scope: Option<u8>,
}

/// How a dynamic name was decided.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DynamicExplanation {
    /// The record's name.
    pub record: String,
    /// Its policy.
    pub policy: String,
    /// TTL of its answers.
    pub ttl: u32,
    /// TTL of this answer: `ttl`, or `fallback_ttl` when that is lower and the answer
    /// is not the client's first choice because that one is down.
    #[serde(default)]
    pub answer_ttl: u32,
    /// Why `answer_ttl` is not `ttl`, when it is not.
    #[serde(default)]
    pub ttl_reason: Option<String>,
    /// `when_all_down`.
    pub when_all_down: String,
    /// The address the decision was made for (ECS subnet address, or source).
    pub decided_for: String,
    /// GeoIP result, when the policy uses the location.
    pub location: Option<String>,
    /// The rule that ordered the regions.
    pub rule: String,
    /// The ranking, best first.
    pub ranking: Vec<RankedRegion>,
    /// What answered.
    pub pick: String,
    /// True when every candidate was down and `when_all_down` applied.
    pub all_down: bool,
}

/// One region of a ranking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RankedRegion {
    /// Region name.
    pub region: String,
    /// `up`, `down` or `drained`.
    pub health: String,
    /// The policy's score, if it has one (RTT estimate, weight).
    pub score: Option<String>,
}

/// Explains `name`/`qtype` for a query from `client`, with an ECS `subnet` if given.
pub fn explain(
    snap: &Snapshot,
    name: &str,
    qtype: &str,
    client: IpAddr,
    subnet: Option<IpNet>,
) -> Result<Explanation, String> {
    let qname = Name::from_ascii(name).map_err(|e| format!("bad name {name:?}: {e}"))?;
    let qtype_v: RecordType = qtype
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("unknown type {qtype:?}"))?;
    let mut msg = Message::new(0, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(qname, qtype_v));
    if let Some(net) = subnet {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_UDP_PAYLOAD);
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            net.network(),
            net.prefix_len(),
            0,
        )));
        msg.set_edns(e);
    }
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let request = Request::from_bytes(bytes, SocketAddr::new(client, 53), Protocol::Udp)
        .map_err(|e| e.to_string())?;
    let q = crate::general::describe(&request, false);
    let reply = answer::explain(&request, &q, snap, 0);
    let undecided_dynamic = undecided_dynamic(snap, &request, &reply);
    Ok(Explanation {
        name: name.to_string(),
        qtype: qtype_v.to_string(),
        client: client.to_string(),
        subnet: subnet.map(|s| s.to_string()),
        rcode: rcode_name(&reply),
        authoritative: reply.authoritative,
        dynamic: match (&reply.choice, &reply.trace) {
            (Some(c), Some(t)) => Some(dynamic(snap, c, t)),
            _ => None,
        },
        undecided_dynamic,
        answer: lines(&reply.answers),
        authority: lines(&reply.authority),
        additional: lines(&reply.additionals),
        // The scope as echoed: for an IPv4-mapped subnet, in the mapped space.
        ecs_scope: subnet.and_then(|net| {
            let scope = reply.ecs_scope?;
            Some(crate::policy::ecs_scope(
                answer::mask(net.addr(), net.prefix_len()),
                net.prefix_len(),
                scope,
            ))
        }),
    })
}

/// The dynamic record at the end of the answer's CNAME chain when its policy did not
/// decide this type (see [`Explanation::undecided_dynamic`]).
fn undecided_dynamic(snap: &Snapshot, request: &Request, reply: &Reply<'_>) -> Option<String> {
    if reply.choice.is_some() {
        return None;
    }
    let mut name = Name::from(request.queries.queries().first()?.name().clone());
    for r in &reply.answers {
        if let RData::CNAME(target) = &r.data {
            if r.name == name {
                name = target.0.clone();
            }
        }
    }
    // Asked for A, a dynamic name answers by policy: then this name is one.
    let res = snap.zones.resolve(&name, RecordType::A)?;
    let step = res.dynamic.filter(|_| res.answers.is_empty())?;
    let rec = &snap.model.records[step.record.index()];
    Some(format!("{} (policy {})", rec.name, rec.policy.name()))
}

fn rcode_name(reply: &Reply<'_>) -> String {
    match reply.rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => other.to_string().to_uppercase(),
    }
}

fn lines(records: &[std::borrow::Cow<'_, Record>]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} IN {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

fn dynamic(snap: &Snapshot, c: &Choice, t: &Trace) -> DynamicExplanation {
    let model = &snap.model;
    let rec = &model.records[c.record.index()];
    let name = |id: RegionId| model.region(id).name.clone();
    let health = |id: RegionId| match snap.health.region(id) {
        Some(h) if h.drained => "drained",
        Some(h) if h.up => "up",
        _ => "down",
    };
    let ranking = t
        .decision
        .ranking
        .order
        .iter()
        .map(|&id| RankedRegion {
            region: name(id),
            health: health(id).into(),
            score: score(rec, t, id),
        })
        .collect();
    let pick = match (t.decision.pick, c.region.filter(|_| c.cname)) {
        (_, Some(id)) => match &model.region(id).cname {
            Some(target) => format!("{} (CNAME {target})", name(id)),
            None => name(id),
        },
        (Pick::Region(id), None) => name(id),
        (Pick::All, None) => "every candidate (when_all_down = \"all\")".into(),
        (Pick::Nothing, None) => "nothing (no usable region has addresses of this family)".into(),
    };
    DynamicExplanation {
        record: rec.name.clone(),
        policy: rec.policy.name().into(),
        ttl: rec.ttl,
        answer_ttl: c.ttl,
        ttl_reason: c.fallback_from.filter(|_| c.ttl != rec.ttl).map(|first| {
            format!(
                "fallback_ttl {}: {}, the first choice, is down or drained (the record's ttl is {})",
                rec.fallback_ttl,
                name(first),
                rec.ttl
            )
        }),
        when_all_down: format!("{:?}", rec.when_all_down).to_lowercase(),
        decided_for: match t.client.source_prefix {
            Some(p) => format!("{}/{p} (EDNS Client Subnet)", t.client.addr),
            None => format!("{} (query source)", t.client.addr),
        },
        location: rec
            .policy
            .needs_location()
            .then(|| location(snap, &t.location)),
        rule: rule(model, rec, &t.decision.ranking.rule),
        ranking,
        pick,
        all_down: t.decision.all_down,
    }
}

fn location(snap: &Snapshot, loc: &Location) -> String {
    let Some(db) = &snap.geo else {
        return "no GeoIP database configured (server.geoip)".into();
    };
    let net = match loc.network {
        Some((addr, prefix)) => format!("{addr}/{prefix}"),
        None => "?".into(),
    };
    if !loc.found() {
        return format!("not in {} (network {net})", db.path().display());
    }
    let mut s = String::new();
    for code in [loc.continent, loc.country, loc.subdivision]
        .into_iter()
        .flatten()
    {
        let _ = write!(s, "{code} ");
    }
    if let Some(c) = loc.coords {
        let _ = write!(s, "{:.2},{:.2} ", c.lat, c.lon);
    }
    let _ = write!(s, "(network {net} in {})", db.path().display());
    s
}

fn rule(model: &Model, rec: &crate::model::DynRecord, rule: &Rule) -> String {
    let list = |ids: Option<&Vec<RegionId>>| match ids {
        Some(ids) => ids
            .iter()
            .map(|id| model.region(*id).name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        None => String::new(),
    };
    let Policy::Geo(g) = &rec.policy else {
        return match rule {
            Rule::Latency(Row::Cidr(n)) => format!("[latency] cidr.\"{n}\", then distance"),
            Rule::Latency(Row::Country(c)) => format!("[latency] country.{c}, then distance"),
            Rule::Latency(Row::Continent(c)) => format!("[latency] continent.{c}, then distance"),
            Rule::Latency(Row::None) => "no [latency] row: estimated from distance".into(),
            Rule::Weighted { sticky: true } => "weights, sticky by client subnet (/24, /56)".into(),
            Rule::Weighted { sticky: false } => {
                "weights, drawn at random per query (this is one draw)".into()
            }
            _ => "the record's regions, in order".into(),
        };
    };
    match rule {
        Rule::Cidr(n) => {
            let l = g.cidr.iter().find(|(net, _)| net == n).map(|(_, l)| l);
            format!("cidr.\"{n}\" = [{}]", list(l))
        }
        Rule::Subdivision(c) => format!(
            "subdivision.\"{c}\" = [{}]",
            list(g.subdivision.get(c.as_str()))
        ),
        Rule::Country(c) => format!("country.{c} = [{}]", list(g.country.get(c.as_str()))),
        Rule::Continent(c) => format!("continent.{c} = [{}]", list(g.continent.get(c.as_str()))),
        Rule::Default => format!("default = [{}]", list(g.default.as_ref())),
        _ => "no rule matched and no default: the record's regions, in order".into(),
    }
}

fn score(rec: &crate::model::DynRecord, t: &Trace, id: RegionId) -> Option<String> {
    match &rec.policy {
        Policy::Latency => t
            .decision
            .ranking
            .rtt
            .iter()
            .find(|r| r.region == id)
            .map(|r| {
                let src = match r.source {
                    RttSource::Table => "[latency]",
                    RttSource::Distance => "distance",
                };
                if r.penalty > 0.0 {
                    format!("{:.0} ms ({src}, +{:.0} ms live penalty)", r.ms, r.penalty)
                } else {
                    format!("{:.0} ms ({src})", r.ms)
                }
            }),
        Policy::Weighted { weights, .. } => {
            let total: u32 = weights.iter().sum();
            let w = rec
                .regions
                .iter()
                .position(|r| *r == id)
                .map(|i| weights[i])?;
            let share = if total > 0 {
                100.0 * f64::from(w) / f64::from(total)
            } else {
                0.0
            };
            Some(format!("weight {w} ({share:.0}% when all are up)"))
        }
        Policy::Geo(_) | Policy::Failover => None,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: &str| writeln!(f, "{k:<10} {v}");
        row(f, "query", &format!("{} {}", self.name, self.qtype))?;
        let client = match &self.subnet {
            Some(s) => format!("{} with EDNS Client Subnet {s}", self.client),
            None => self.client.clone(),
        };
        row(f, "client", &client)?;
        if let Some(d) = &self.dynamic {
            row(
                f,
                "record",
                &format!(
                    "{} policy {}, ttl {}, when_all_down {}",
                    d.record, d.policy, d.ttl, d.when_all_down
                ),
            )?;
            row(f, "for", &d.decided_for)?;
            if let Some(l) = &d.location {
                row(f, "location", l)?;
            }
            row(f, "rule", &d.rule)?;
            for (i, r) in d.ranking.iter().enumerate() {
                let label = if i == 0 { "ranking" } else { "" };
                let score = r
                    .score
                    .as_deref()
                    .map(|s| format!("  {s}"))
                    .unwrap_or_default();
                let line = format!("{}. {:<12} {:<8}{score}", i + 1, r.region, r.health);
                row(f, label, line.trim_end())?;
            }
            let pick = if d.all_down {
                format!("{} (all candidates down)", d.pick)
            } else {
                d.pick.clone()
            };
            row(f, "picked", &pick)?;
        } else if let Some(rec) = &self.undecided_dynamic {
            let data = self.answer.iter().any(|r| !r.contains(" IN CNAME "));
            let from_zone = if data {
                format!("its {} is static (zone file)", self.qtype)
            } else {
                format!("no {} at it in the zone file (NODATA)", self.qtype)
            };
            row(
                f,
                "data",
                &format!("dynamic name {rec}, whose policy decides A and AAAA only; {from_zone}"),
            )?;
        } else {
            row(f, "data", "static (zone file)")?;
        }
        let aa = if self.authoritative {
            ", authoritative"
        } else {
            ""
        };
        row(f, "rcode", &format!("{}{aa}", self.rcode))?;
        for (label, section) in [
            ("answer", &self.answer),
            ("authority", &self.authority),
            ("additional", &self.additional),
        ] {
            for (i, r) in section.iter().enumerate() {
                row(f, if i == 0 { label } else { "" }, r)?;
            }
        }
        if let Some(d) = &self.dynamic {
            match &d.ttl_reason {
                Some(why) => row(f, "ttl", &format!("{} ({why})", d.answer_ttl))?,
                None => row(f, "ttl", &d.ttl.to_string())?,
            }
        }
        match (self.ecs_scope, &self.subnet) {
            (Some(s), Some(sent)) => {
                // Say which network the answer holds for (a resolver may cache it for
                // all of it): with geo rules compiled, often wider than the subnet sent.
                let holds = sent
                    .parse::<IpNet>()
                    .ok()
                    .and_then(|n| IpNet::new(n.addr(), s).ok())
                    .map(|n| n.trunc());
                match holds {
                    Some(n) if s > 0 => row(
                        f,
                        "ecs scope",
                        &format!("/{s} (the answer holds for all of {n})"),
                    )?,
                    _ => row(f, "ecs scope", &format!("/{s}"))?,
                }
            }
            _ => row(f, "ecs scope", "- (no subnet sent; add --subnet CIDR)")?,
        }
        Ok(())
    }
}
