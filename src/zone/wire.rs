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

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::names::NameMap;
use super::{Rcode, Zone};
use crate::model::RecordId;

/// The index: lower-case wire names to their prebuilt answers, and per zone what an
/// NXDOMAIN needs. Built for millions of names: entries are small and fixed-size, and
/// the encoded sections of every template lie in one buffer.
#[derive(Debug, Default)]
pub struct WireIndex {
    names: NameMap<Entry>,
    zones: Vec<NxSoa>,
    /// Every template; entries refer to them by index.
    templates: Vec<Stored>,
    /// The sections of every template, back to back.
    bodies: Vec<u8>,
    /// The static RRsets of the entries, as (type, template), each entry's in a row.
    rrsets: Vec<(u16, Stored)>,
}

/// Encoded answer sections after the question, with their record counts.
#[derive(Clone, Copy)]
pub struct Template<'i> {
    /// ANCOUNT, NSCOUNT, ARCOUNT (without OPT).
    pub counts: [u16; 3],
    /// The sections, as they follow the question.
    pub body: &'i [u8],
    /// Where in `body` the additional section starts.
    pub additional_at: usize,
    /// With `[dnssec]`: the same answer for a DO=1 query, RRSIGs and proofs included.
    signed: u32,
    index: &'i WireIndex,
}

impl<'i> Template<'i> {
    /// With `[dnssec]`: the same answer for a DO=1 query, RRSIGs and proofs included.
    pub fn signed(&self) -> Option<Template<'i>> {
        self.index.template(self.signed)
    }
}

/// A template as the index keeps it.
#[derive(Debug, Clone, Copy)]
struct Stored {
    counts: [u16; 3],
    additional_at: u16,
    body_at: u32,
    body_len: u32,
    /// The signed twin (index), or [`NONE`].
    signed: u32,
}

/// No template, no dynamic record.
const NONE: u32 = u32::MAX;

/// What an NXDOMAIN of a zone carries: the negative SOA, its owner (the apex) written as
/// a pointer to the apex's labels at the end of the question.
#[derive(Debug)]
pub struct NxSoa {
    /// Length of the apex in wire format (labels and the root byte).
    pub apex_len: usize,
    /// TYPE, CLASS, TTL, RDLENGTH and RDATA of the SOA (names uncompressed).
    pub tail: Box<[u8]>,
}

/// One name's answers. `zone == GENERAL`: the fast path leaves the name to the general
/// path.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Index of the zone (for NXDOMAIN below this name).
    zone: u16,
    flags: u8,
    /// How many static RRsets, from `WireIndex::rrsets[rrsets]` on.
    sets: u8,
    rrsets: u32,
    /// The dynamic record (`RecordId`) answering A and AAAA here, or [`NONE`].
    dynamic: u32,
    /// NOERROR, no answer, SOA in authority (with [`PER_FAMILY`], followed by the ones
    /// for A and AAAA queries).
    nodata: u32,
}

const GENERAL: u16 = u16::MAX;
/// NXDOMAIN below this name would be a wildcard synthesis instead.
const WILDCARD_BELOW: u8 = 1;
/// The dynamic record may answer by CNAME: it answers every type.
const ANY_TYPE: u8 = 2;
/// A dynamic name's NODATA to an A (resp. AAAA) query is its own template, `nodata + 1`
/// (resp. `+ 2`): the same, signed with a proof that leaves A (resp. AAAA) out of the
/// bitmap.
const PER_FAMILY: u8 = 4;

const GENERAL_ENTRY: Entry = Entry {
    zone: GENERAL,
    flags: 0,
    sets: 0,
    rrsets: 0,
    dynamic: NONE,
    nodata: NONE,
};

/// The fast path's answer for one lower-case name and type.
#[derive(Debug)]
pub enum Lookup<'i> {
    /// Static data: copy the template.
    Static(Template<'i>),
    /// The name exists without data of this type.
    NoData(Template<'i>),
    /// A dynamic name; the template is its NODATA for when no region has addresses.
    Dynamic(RecordId, Template<'i>),
    /// The name does not exist.
    NxDomain(&'i NxSoa),
    /// Anything else: answer through the general path.
    General,
}

impl std::fmt::Debug for Template<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("counts", &self.counts)
            .field("body", &self.body)
            .field("additional_at", &self.additional_at)
            .finish_non_exhaustive()
    }
}

impl WireIndex {
    /// Builds the index for `zones` (in load order, as [`super::best_zone`] sees them).
    pub(super) fn build(zones: &[Zone]) -> WireIndex {
        // Sized at once: growing by doubling would hold up to twice the room for a while.
        let nodes = zones.iter().map(|z| z.nodes.len()).sum();
        let bytes = zones.iter().map(|z| z.nodes.name_bytes()).sum();
        let mut index = WireIndex {
            names: NameMap::with_capacity(nodes, bytes),
            ..WireIndex::default()
        };
        for (zi, zone) in zones.iter().enumerate() {
            index.zones.push(nx_soa(zone));
            // Unsigned, every plain name's NODATA is the same: one template per zone.
            let shared = match zone.signer() {
                Some(_) => NONE,
                None => index.shared_nodata(zone),
            };
            for i in 0..zone.nodes.len() {
                let name = super::store::from_wire(zone.nodes.key(i));
                // A name that a deeper zone also covers is answered from that zone.
                if super::best_zone(zones, &name) != Some(zi) {
                    continue;
                }
                let entry = index
                    .entry(zones, zi, zone, i, &name, shared)
                    .unwrap_or(GENERAL_ENTRY);
                let at = index
                    .names
                    .index_or_insert_with(zone.nodes.key(i), || entry);
                *index.names.value_mut(at) = entry;
            }
        }
        index.names.shrink_to_fit();
        index.templates.shrink_to_fit();
        index.bodies.shrink_to_fit();
        index.rrsets.shrink_to_fit();
        index
    }

    /// What to answer for `key` (lower-case wire name) and `qtype`.
    pub fn lookup(&self, key: &[u8], qtype: u16) -> Lookup<'_> {
        if let Some(e) = self.names.get(key) {
            if e.zone == GENERAL {
                return Lookup::General;
            }
            let sets = &self.rrsets[e.rrsets as usize..][..usize::from(e.sets)];
            if let Some((_, t)) = sets.iter().find(|(t, _)| *t == qtype) {
                return Lookup::Static(self.view(t));
            }
            let family = match qtype {
                1 if e.flags & PER_FAMILY != 0 => 1,
                28 if e.flags & PER_FAMILY != 0 => 2,
                _ => 0,
            };
            let Some(nodata) = self.template(e.nodata + family) else {
                return Lookup::General;
            };
            return if e.dynamic != NONE && (e.flags & ANY_TYPE != 0 || matches!(qtype, 1 | 28)) {
                Lookup::Dynamic(RecordId(e.dynamic), nodata)
            } else {
                Lookup::NoData(nodata)
            };
        }
        // The closest existing ancestor decides: no wildcard there means NXDOMAIN.
        let mut at = 0;
        while let Some(&len) = key.get(at) {
            if len == 0 {
                break;
            }
            at += 1 + usize::from(len);
            let Some(e) = key.get(at..).and_then(|k| self.names.get(k)) else {
                continue;
            };
            if e.zone == GENERAL || e.flags & WILDCARD_BELOW != 0 {
                return Lookup::General;
            }
            return self
                .zones
                .get(usize::from(e.zone))
                .map_or(Lookup::General, Lookup::NxDomain);
        }
        // Outside every zone: REFUSED, left to the general path.
        Lookup::General
    }

    /// The template at index `at`.
    #[inline]
    fn template(&self, at: u32) -> Option<Template<'_>> {
        self.templates.get(at as usize).map(|t| self.view(t))
    }

    #[inline]
    fn view(&self, t: &Stored) -> Template<'_> {
        Template {
            counts: t.counts,
            body: &self.bodies[t.body_at as usize..][..t.body_len as usize],
            additional_at: usize::from(t.additional_at),
            signed: t.signed,
            index: self,
        }
    }

    /// Keeps `t`'s sections (and its signed twin); `None` when it is too large to keep
    /// (such a name is left to the general path).
    fn store(&mut self, t: Encoded) -> Option<Stored> {
        let signed = match t.signed {
            Some(s) => self.keep(*s)?,
            None => NONE,
        };
        let stored = Stored {
            counts: t.counts,
            additional_at: u16::try_from(t.additional_at).ok()?,
            body_at: u32::try_from(self.bodies.len()).ok()?,
            body_len: u32::try_from(t.body.len()).ok()?,
            signed,
        };
        self.bodies.extend_from_slice(&t.body);
        Some(stored)
    }

    /// Keeps `t` (and its signed twin) as a template of its own: its index.
    fn keep(&mut self, t: Encoded) -> Option<u32> {
        self.keep_row(vec![t])
    }

    /// Keeps templates (and their signed twins) at consecutive indices: the first's.
    fn keep_row(&mut self, ts: Vec<Encoded>) -> Option<u32> {
        let stored = ts
            .into_iter()
            .map(|t| self.store(t))
            .collect::<Option<Vec<Stored>>>()?;
        let at = u32::try_from(self.templates.len()).ok()?;
        (at.checked_add(stored.len() as u32)? < NONE).then_some(())?;
        self.templates.extend(stored);
        Some(at)
    }

    /// The NODATA of a name of an unsigned zone: the negative SOA in authority. Its owner,
    /// the apex, is written in full so the one template fits every name.
    fn shared_nodata(&mut self, zone: &Zone) -> u32 {
        let nx = nx_soa(zone);
        let mut body = key(zone.apex()).into_vec();
        body.extend_from_slice(&nx.tail);
        let t = Encoded {
            counts: [0, 1, 0],
            additional_at: body.len(),
            body,
            signed: None,
        };
        self.keep(t).unwrap_or(NONE)
    }

    fn entry(
        &mut self,
        zones: &[Zone],
        zi: usize,
        zone: &Zone,
        i: usize,
        name: &Name,
        shared_nodata: u32,
    ) -> Option<Entry> {
        let node = zone.nodes.value(i);
        let types = zone.store.types(node.rrsets);
        if zone.cut_above(name).is_some() || types.contains(&RecordType::CNAME) {
            return None;
        }
        let lower = name.to_lowercase();
        let mut rrsets = Vec::with_capacity(types.len());
        for t in &types {
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
            res.authority.push(Cow::Borrowed(zone.negative_soa()));
        }
        if res.rcode != Rcode::NoError || !res.answers.is_empty() || res.dynamic.is_some() {
            return None;
        }
        let signed_for = |qtype: u16| {
            let signed = signed(zones, &lower, qtype, &res)?;
            Some(Encoded {
                signed: Some(Box::new(signed)),
                ..encode(
                    &lower,
                    qtype,
                    &res.answers,
                    &res.authority,
                    &res.additionals,
                )?
            })
        };
        let per_family = match (node.dynamic(), zone.signer()) {
            (Some(_), Some(_)) => Some((signed_for(1), signed_for(28))),
            _ => None,
        };
        let nodata = match shared_nodata {
            NONE => template(zones, &lower, 65280, &res)?,
            _ => Encoded::default(),
        };
        let wildcard_below = name
            .prepend_label("*")
            .is_ok_and(|w| zone.node(&w).is_some());
        let mut flags = 0;
        if wildcard_below {
            flags |= WILDCARD_BELOW;
        }
        if node.any_type {
            flags |= ANY_TYPE;
        }
        // Everything is kept only now: a name that turns out general keeps nothing.
        let nodata = match (shared_nodata, per_family) {
            (NONE, None) => self.keep(nodata)?,
            (NONE, Some((a, aaaa))) => {
                // Without its own, a family's NODATA is the plain one, kept again so that
                // the three sit side by side.
                flags |= PER_FAMILY;
                let plain = || template(zones, &lower, 65280, &res);
                self.keep_row(vec![nodata, a.or_else(plain)?, aaaa.or_else(plain)?])?
            }
            (shared, _) => shared,
        };
        let first = u32::try_from(self.rrsets.len()).ok()?;
        let sets = u8::try_from(rrsets.len()).ok()?;
        for (t, encoded) in rrsets {
            let stored = self.store(encoded)?;
            self.rrsets.push((t, stored));
        }
        Some(Entry {
            zone: u16::try_from(zi).ok().filter(|z| *z != GENERAL)?,
            flags,
            sets,
            rrsets: first,
            dynamic: node.dynamic,
            nodata,
        })
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

/// The reply to (`name`, `qtype`) with `res`'s sections, and with `[dnssec]` its signed
/// twin (`None` when a signature it needs is not precomputed: the general path then
/// answers DO=1 queries).
fn template(
    zones: &[Zone],
    name: &Name,
    qtype: u16,
    res: &super::Resolution<'_>,
) -> Option<Encoded> {
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
fn signed(zones: &[Zone], name: &Name, qtype: u16, res: &super::Resolution<'_>) -> Option<Encoded> {
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

/// A template while the index is built.
#[derive(Debug, Default)]
struct Encoded {
    counts: [u16; 3],
    body: Vec<u8>,
    additional_at: usize,
    signed: Option<Box<Encoded>>,
}

/// Encodes a reply to (`name`, `qtype`) with these sections and keeps what follows the
/// question.
fn encode(
    name: &Name,
    qtype: u16,
    answers: &[Cow<'_, Record>],
    authority: &[Cow<'_, Record>],
    additionals: &[Cow<'_, Record>],
) -> Option<Encoded> {
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
    Some(Encoded {
        counts: [count(6), count(8), count(10)],
        body: bytes.get(question..)?.to_vec(),
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
