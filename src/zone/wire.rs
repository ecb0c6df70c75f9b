//! Answers prebuilt in wire format, for the query fast path ([`crate::fast`]).
//!
//! When the zones are built, every name whose answers do not depend on the query beyond
//! its type gets its answer sections encoded once, by the general resolver
//! (`Zone::resolve`) and hickory-proto's encoder, so the fast path only copies bytes.
//! Names the fast path must not answer — CNAMEs, delegations and everything below them,
//! names that also belong to a deeper zone — are marked [`Lookup::General`] and take the
//! general path; so do names not in the index, except NXDOMAIN below a name without a
//! wildcard, which is simple enough to write here.
//!
//! A template is a whole reply encoded for the name in lower case; the fast path writes
//! its own header and the client's question (same length, so every compression pointer
//! into the question still lands on the same label), then the template's sections.

use std::borrow::Cow;
use std::collections::HashMap;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Rcode, Zone};
use crate::model::RecordId;

/// The index: lower-case wire names to their prebuilt answers, and per zone what an
/// NXDOMAIN needs.
#[derive(Debug, Default)]
pub struct WireIndex {
    names: HashMap<Box<[u8]>, Entry, foldhash::fast::RandomState>,
    zones: Vec<NxSoa>,
}

/// Encoded answer sections after the question, with their record counts.
#[derive(Debug)]
pub struct Template {
    /// ANCOUNT, NSCOUNT, ARCOUNT (without OPT).
    pub counts: [u16; 3],
    /// The sections, as they follow the question.
    pub body: Box<[u8]>,
    /// Where in `body` the additional section starts.
    pub additional_at: usize,
    /// With `[dnssec]`: the same answer for a DO=1 query, RRSIGs and proofs included.
    pub signed: Option<Box<Template>>,
}

/// What an NXDOMAIN of a zone carries: the negative SOA, its owner (the apex) written as
/// a pointer to the apex's labels at the end of the question.
#[derive(Debug)]
pub struct NxSoa {
    /// Length of the apex in wire format (labels and the root byte).
    pub apex_len: usize,
    /// TYPE, CLASS, TTL, RDLENGTH and RDATA of the SOA (names uncompressed).
    pub tail: Box<[u8]>,
}

#[derive(Debug)]
enum Entry {
    /// The fast path leaves this name to the general path.
    General,
    Plain {
        /// Index of the zone (for NXDOMAIN below this name).
        zone: usize,
        /// NXDOMAIN below this name would be a wildcard synthesis instead.
        wildcard_below: bool,
        /// The dynamic record answering A and AAAA here.
        dynamic: Option<RecordId>,
        /// The record may answer by CNAME: it answers every type.
        any_type: bool,
        /// Static answers by type.
        rrsets: Box<[(u16, Template)]>,
        /// NOERROR, no answer, SOA in authority.
        nodata: Template,
        /// A dynamic name's NODATA to an A (resp. AAAA) query: the same, signed with a
        /// proof that leaves A (resp. AAAA) out of the bitmap.
        nodata_a: Option<Box<Template>>,
        nodata_aaaa: Option<Box<Template>>,
    },
}

/// The fast path's answer for one lower-case name and type.
#[derive(Debug)]
pub enum Lookup<'i> {
    /// Static data: copy the template.
    Static(&'i Template),
    /// The name exists without data of this type.
    NoData(&'i Template),
    /// A dynamic name; the template is its NODATA for when no region has addresses.
    Dynamic(RecordId, &'i Template),
    /// The name does not exist.
    NxDomain(&'i NxSoa),
    /// Anything else: answer through the general path.
    General,
}

impl WireIndex {
    /// Builds the index for `zones` (in load order, as [`super::best_zone`] sees them).
    pub(super) fn build(zones: &[Zone]) -> WireIndex {
        let mut index = WireIndex::default();
        for (zi, zone) in zones.iter().enumerate() {
            index.zones.push(nx_soa(zone));
            for (name, node) in &zone.nodes {
                // A name that a deeper zone also covers is answered from that zone.
                if super::best_zone(zones, name) != Some(zi) {
                    continue;
                }
                let entry = entry(zones, zi, zone, name, node).unwrap_or(Entry::General);
                index.names.insert(key(name), entry);
            }
        }
        index
    }

    /// What to answer for `key` (lower-case wire name) and `qtype`.
    pub fn lookup(&self, key: &[u8], qtype: u16) -> Lookup<'_> {
        if let Some(entry) = self.names.get(key) {
            return match entry {
                Entry::General => Lookup::General,
                Entry::Plain {
                    dynamic,
                    any_type,
                    rrsets,
                    nodata,
                    nodata_a,
                    nodata_aaaa,
                    ..
                } => {
                    let nodata = match qtype {
                        1 => nodata_a.as_deref().unwrap_or(nodata),
                        28 => nodata_aaaa.as_deref().unwrap_or(nodata),
                        _ => nodata,
                    };
                    if let Some((_, t)) = rrsets.iter().find(|(t, _)| *t == qtype) {
                        Lookup::Static(t)
                    } else if let (Some(id), true) = (dynamic, *any_type || matches!(qtype, 1 | 28))
                    {
                        Lookup::Dynamic(*id, nodata)
                    } else {
                        Lookup::NoData(nodata)
                    }
                }
            };
        }
        // The closest existing ancestor decides: no wildcard there means NXDOMAIN.
        let mut at = 0;
        while let Some(&len) = key.get(at) {
            if len == 0 {
                break;
            }
            at += 1 + usize::from(len);
            let Some(entry) = key.get(at..).and_then(|k| self.names.get(k)) else {
                continue;
            };
            return match entry {
                Entry::Plain {
                    zone,
                    wildcard_below: false,
                    ..
                } => self
                    .zones
                    .get(*zone)
                    .map_or(Lookup::General, Lookup::NxDomain),
                _ => Lookup::General,
            };
        }
        // Outside every zone: REFUSED, left to the general path.
        Lookup::General
    }
}

/// The lower-case wire form of `name`: length-prefixed labels and the root byte.
pub fn key(name: &Name) -> Box<[u8]> {
    let mut k = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        k.push(label.len() as u8);
        k.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    k.push(0);
    k.into_boxed_slice()
}

fn entry(zones: &[Zone], zi: usize, zone: &Zone, name: &Name, node: &super::Node) -> Option<Entry> {
    if zone.cut_above(name).is_some() || node.rrset(RecordType::CNAME).is_some() {
        return None;
    }
    let lower = name.to_lowercase();
    let mut rrsets = Vec::with_capacity(node.rrsets.len());
    for (t, _) in &node.rrsets {
        let res = zone.resolve(&lower, *t);
        if res.rcode != Rcode::NoError
            || !res.authoritative
            || res.dynamic.is_some()
            || res.answers.is_empty()
        {
            return None;
        }
        let t = u16::from(*t);
        rrsets.push((t, template(zones, &lower, t, &res)?));
    }
    // A private-use type no node holds: the plain NODATA of this name.
    let probe = RecordType::Unknown(65280);
    let mut res = zone.resolve(&lower, probe);
    if node.any_type && res.dynamic.is_some() && res.authority.is_empty() {
        // A name that may answer by CNAME is dynamic for every type; its NODATA (an
        // address region chosen for another type) is the zone's negative SOA.
        res.dynamic = None;
        res.authority
            .push(std::borrow::Cow::Borrowed(zone.negative_soa()));
    }
    if res.rcode != Rcode::NoError || !res.answers.is_empty() || res.dynamic.is_some() {
        return None;
    }
    let nodata = template(zones, &lower, 65280, &res)?;
    let signed_for = |qtype: u16| {
        let signed = signed(zones, &lower, qtype, &res)?;
        Some(Box::new(Template {
            signed: Some(Box::new(signed)),
            ..encode(
                &lower,
                qtype,
                &res.answers,
                &res.authority,
                &res.additionals,
            )?
        }))
    };
    let (nodata_a, nodata_aaaa) = match (node.dynamic, zone.signer()) {
        (Some(_), Some(_)) => (signed_for(1), signed_for(28)),
        _ => (None, None),
    };
    let wildcard_below = name
        .prepend_label("*")
        .is_ok_and(|w| zone.nodes.contains_key(&w));
    Some(Entry::Plain {
        zone: zi,
        wildcard_below,
        dynamic: node.dynamic,
        any_type: node.any_type,
        rrsets: rrsets.into_boxed_slice(),
        nodata,
        nodata_a,
        nodata_aaaa,
    })
}

/// The reply to (`name`, `qtype`) with `res`'s sections, and with `[dnssec]` its signed
/// twin (`None` when a signature it needs is not precomputed: the general path then
/// answers DO=1 queries).
fn template(
    zones: &[Zone],
    name: &Name,
    qtype: u16,
    res: &super::Resolution<'_>,
) -> Option<Template> {
    let mut t = encode(name, qtype, &res.answers, &res.authority, &res.additionals)?;
    if zone_signed(zones, name) {
        t.signed = signed(zones, name, qtype, res).map(Box::new);
    }
    Some(t)
}

fn zone_signed(zones: &[Zone], name: &Name) -> bool {
    super::zone_of(zones, name).is_some_and(|z| z.signer().is_some())
}

/// The DO=1 reply: `res`'s sections with their RRSIGs and proof.
fn signed(
    zones: &[Zone],
    name: &Name,
    qtype: u16,
    res: &super::Resolution<'_>,
) -> Option<Template> {
    let (mut an, mut ns, mut ar) = (
        res.answers.clone(),
        res.authority.clone(),
        res.additionals.clone(),
    );
    let empty = crate::dnssec::dynamic::DynSigs::default();
    let src = crate::dnssec::reply::Sources {
        zones,
        dynamic: &empty,
        fresh: None,
        choice: None,
    };
    let sections = crate::dnssec::reply::Sections {
        answers: &mut an,
        authority: &mut ns,
        additionals: &mut ar,
    };
    crate::dnssec::reply::secure(&src, name, RecordType::from(qtype), false, sections).ok()?;
    encode(name, qtype, &an, &ns, &ar)
}

/// Encodes a reply to (`name`, `qtype`) with these sections and keeps what follows the
/// question.
fn encode(
    name: &Name,
    qtype: u16,
    answers: &[Cow<'_, Record>],
    authority: &[Cow<'_, Record>],
    additionals: &[Cow<'_, Record>],
) -> Option<Template> {
    let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
    msg.add_query(Query::query(name.clone(), RecordType::from(qtype)));
    msg.add_answers(answers.iter().map(|r| r.as_ref().clone()));
    msg.add_authorities(authority.iter().map(|r| r.as_ref().clone()));
    // Names are compressed only against earlier ones: the sections before the
    // additional one encode alike without it.
    let additional_at = msg.to_vec().ok()?.len();
    msg.add_additionals(additionals.iter().map(|r| r.as_ref().clone()));
    let bytes = msg.to_vec().ok()?;
    let question = 12 + key(name).len() + 4;
    let count = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
    Some(Template {
        counts: [count(6), count(8), count(10)],
        body: bytes.get(question..)?.into(),
        additional_at: additional_at.checked_sub(question)?,
        signed: None,
    })
}

fn nx_soa(zone: &Zone) -> NxSoa {
    let soa = zone.negative_soa();
    let mut tail = Vec::with_capacity(64);
    tail.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
    tail.extend_from_slice(&1u16.to_be_bytes());
    tail.extend_from_slice(&soa.ttl.to_be_bytes());
    let mut rdata = Vec::with_capacity(64);
    if let RData::SOA(s) = &soa.data {
        for n in [&s.mname, &s.rname] {
            for label in n.iter() {
                rdata.push(label.len() as u8);
                rdata.extend_from_slice(label);
            }
            rdata.push(0);
        }
        for v in [
            s.serial,
            s.refresh as u32,
            s.retry as u32,
            s.expire as u32,
            s.minimum,
        ] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
    }
    tail.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    tail.extend_from_slice(&rdata);
    NxSoa {
        apex_len: key(zone.apex()).len(),
        tail: tail.into_boxed_slice(),
    }
}
