//! The authoritative data: every loaded zone, indexed by owner name, with the dynamic
//! names of `gslb.toml` attached to their nodes.
//!
//! [`Zones::resolve`] is RFC 1034 §4.3.2's algorithm for one authoritative server:
//! pick the closest zone, stop at delegations (referral with glue), answer exact
//! matches, follow CNAMEs inside the zone, synthesise from wildcards (RFC 4592), and
//! otherwise say NXDOMAIN or NODATA with the SOA for negative caching (RFC 2308). A
//! dynamic name is handed back as a [`DynamicStep`] for the policy to answer; this module
//! knows nothing of regions or health.

pub mod file;
mod names;
mod signed;
mod store;
pub mod wire;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::diag::{Diagnostic, Diagnostics};
use crate::dnssec::{Epoch, Keyring, Signer};
use crate::model::{Model, RecordId, RegionId};
use file::ZoneFile;

/// How many CNAMEs one answer follows before it stops (a loop or an absurd chain).
pub const MAX_CNAME_CHAIN: usize = 12;

/// All zones, ready for lookups.
#[derive(Debug, Default)]
pub struct Zones {
    zones: Vec<Zone>,
    /// Prebuilt wire answers for the fast path.
    wire: wire::WireIndex,
    /// Per region (by id), its `cname` target for the fast path to write.
    cnames: Vec<Option<CnameTarget>>,
}

/// A `cname` region's target, ready to be written into a reply.
#[derive(Debug, Clone)]
pub struct CnameTarget {
    /// The name in wire format, letter case as written, uncompressed.
    pub wire: Box<[u8]>,
    /// Inside one of our zones: the answer follows it, which the general path does.
    pub ours: bool,
}

/// One zone: its apex, SOA and every node below.
#[derive(Debug, Clone)]
pub struct Zone {
    apex: Name,
    apex_labels: usize,
    /// The SOA as written (answers to SOA queries).
    soa: Record,
    /// The SOA with TTL = min(SOA TTL, MINIMUM), for negative answers (RFC 2308 §3).
    neg_soa: Record,
    /// Every node, by lower-case wire name.
    nodes: names::NameMap<Node>,
    /// The nodes' RRsets.
    store: store::Store,
    /// With `[dnssec]`: each node's (by index) signatures and proofs; empty without.
    sigs: Vec<signed::NodeSigs>,
    /// With `[dnssec]`: the zone's keys and the epoch its signatures were made in.
    signer: Option<Arc<Signer>>,
    /// The zone file and the files it includes, as read.
    sources: Vec<file::Source>,
}

/// The data at one owner name; an empty node is an empty non-terminal. (A zone may have
/// millions: 12 bytes.)
#[derive(Debug, Clone)]
struct Node {
    rrsets: store::RRsets,
    /// The dynamic record at this name (`RecordId`), or `u32::MAX`.
    dynamic: u32,
    /// The dynamic record may answer by CNAME (a candidate region has `cname`): it then
    /// answers every type, as a CNAME owner does (RFC 1034 §3.6.2).
    any_type: bool,
    /// NS records below the apex: a zone cut, data here and below is not ours.
    cut: bool,
}

impl Default for Node {
    fn default() -> Node {
        Node {
            rrsets: store::RRsets::default(),
            dynamic: u32::MAX,
            any_type: false,
            cut: false,
        }
    }
}

impl Node {
    /// The dynamic record at this name.
    fn dynamic(&self) -> Option<RecordId> {
        (self.dynamic != u32::MAX).then_some(RecordId(self.dynamic))
    }
}

/// Response code of a resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// The name exists (possibly with no data of the type).
    NoError,
    /// The name (the last one of a CNAME chain) does not exist.
    NxDomain,
}

/// A dynamic name reached by a lookup: the policy supplies the A/AAAA answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicStep {
    /// The dynamic record.
    pub record: RecordId,
    /// Owner for the answer records (the query name when a wildcard matched).
    pub owner: Name,
    /// A or AAAA.
    pub qtype: RecordType,
}

/// The outcome of a lookup, before the policy has answered a dynamic name.
#[derive(Debug)]
pub struct Resolution<'z> {
    /// The zone that answered.
    pub zone: &'z Zone,
    /// NOERROR or NXDOMAIN.
    pub rcode: Rcode,
    /// False for a referral (RFC 1034: AA only for data we are authoritative for).
    pub authoritative: bool,
    /// Answer section so far (CNAME chain, then the data).
    pub answers: Vec<Cow<'z, Record>>,
    /// Authority section (NS of a referral, or SOA of a negative answer).
    pub authority: Vec<Cow<'z, Record>>,
    /// Additional section (glue and in-zone addresses of NS/MX/SRV targets).
    pub additionals: Vec<Cow<'z, Record>>,
    /// A dynamic name at the end of the chain, still to be answered.
    pub dynamic: Option<DynamicStep>,
}

/// What one name in one zone holds for a type.
enum Step<'z> {
    Data(Cow<'z, [Record]>),
    /// The node's CNAME RRset (one record).
    Cname(Cow<'z, [Record]>),
    Dynamic(RecordId),
    NoData,
    NxDomain,
    /// The node (by index) of the zone cut.
    Referral(usize),
}

impl Zones {
    /// Indexes the zone files and attaches the model's dynamic names, checking that each
    /// is inside a zone, not below a delegation and not clashing with static data.
    pub fn build(files: Vec<ZoneFile>, model: &Model) -> Result<Zones, Diagnostics> {
        Zones::build_signed(files, model, None)
    }

    /// Like [`Zones::build`], and with `keys` signs every zone (see [`signed`]); a zone
    /// without a key is an error naming it.
    pub fn build_signed(
        files: Vec<ZoneFile>,
        model: &Model,
        keys: Option<(&Keyring, Epoch)>,
    ) -> Result<Zones, Diagnostics> {
        let mut errors = Diagnostics::default();
        let mut zones: Vec<Zone> = Vec::with_capacity(files.len());
        for f in files {
            if keys.is_some() {
                refuse_presigned(&f, &mut errors);
            }
            match Zone::from_file(f) {
                Ok(z) => zones.push(z),
                Err(d) => errors.push(d),
            }
        }
        for (i, rec) in model.records.iter().enumerate() {
            let key = format!("records.{}", toml_quote(rec.name.trim_end_matches('.')));
            let at = |msg: String| {
                Diagnostic::new(&model.file, msg)
                    .at(rec.pos.line, rec.pos.col)
                    .key(key.clone())
            };
            let Ok(name) = Name::from_ascii(&rec.name) else {
                errors.push(at(format!("{:?} is not a valid DNS name", rec.name)));
                continue;
            };
            let Some(zi) = best_zone(&zones, &name) else {
                let known: Vec<String> = zones.iter().map(|z| z.apex.to_string()).collect();
                errors.push(at(format!(
                    "{} is outside every zone (zones: {})",
                    rec.name,
                    known.join(", ")
                )));
                continue;
            };
            let zone = &mut zones[zi];
            if let Some(cut) = zone.cut_above(&name) {
                errors.push(at(format!(
                    "{} is at or below the delegation {cut}; it would never be answered",
                    rec.name
                )));
                continue;
            }
            let may_cname = rec.regions.iter().any(|r| model.region(*r).is_cname());
            let node = zone.node(&name).map(|(_, node)| node.rrsets);
            if let (true, Some(sets)) = (may_cname, node) {
                // RFC 1034 §3.6.2, RFC 2181 §10.1: a CNAME owner has no other data.
                if let Some(t) = zone.store.first_type(sets) {
                    errors.push(at(format!(
                        "clashes with the static {t} record at {} in zone {}: a dynamic name \
                         whose regions include a cname region answers every type with that \
                         CNAME, so it must have no static data",
                        rec.name, zone.apex
                    )));
                }
            }
            if let Some(sets) = node {
                for t in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
                    if zone.store.has(sets, t) {
                        errors.push(at(format!(
                            "clashes with the static {t} record at {} in zone {}: a dynamic name \
                             must not have static {t} data",
                            rec.name, zone.apex
                        )));
                    }
                }
            }
            let node = zone.insert_node(&name);
            let node = zone.nodes.value_mut(node);
            node.dynamic = i as u32;
            node.any_type = may_cname;
        }
        for zone in &mut zones {
            zone.nodes.shrink_to_fit();
            zone.store.shrink_to_fit();
        }
        if let (Some((ring, epoch)), Some(cfg)) = (keys, &model.dnssec) {
            for zone in &mut zones {
                let keys = ring.zone(&zone.apex);
                if keys.is_empty() {
                    errors.push(
                        Diagnostic::new(
                            &model.file,
                            format!(
                                "zone {} has no signing key in {}: run `gslbd dnssec keygen --config {}`",
                                zone.apex,
                                cfg.keys.display(),
                                model.file.display()
                            ),
                        )
                        .at(cfg.pos.line, cfg.pos.col)
                        .key("dnssec.keys"),
                    );
                    continue;
                }
                zone.sign(Arc::new(Signer {
                    zone: zone.apex.to_lowercase(),
                    keys: keys.to_vec(),
                    epoch,
                }));
            }
        }
        let wire = wire::WireIndex::build(&zones);
        let cnames = model
            .regions
            .iter()
            .map(|r| {
                let target = r.cname.as_ref()?;
                let mut wire = Vec::with_capacity(target.len() + 2);
                for label in target.iter() {
                    wire.push(label.len() as u8);
                    wire.extend_from_slice(label);
                }
                wire.push(0);
                Some(CnameTarget {
                    wire: wire.into_boxed_slice(),
                    ours: best_zone(&zones, target).is_some(),
                })
            })
            .collect();
        errors.into_result(Zones {
            zones,
            wire,
            cnames,
        })
    }

    /// The same zones signed again in a new `epoch` (signature renewal).
    pub fn resigned(&self, epoch: Epoch) -> Zones {
        let mut zones = self.zones.clone();
        for zone in &mut zones {
            if let Some(old) = zone.signer.clone() {
                zone.sign(Arc::new(Signer {
                    zone: old.zone.clone(),
                    keys: old.keys.clone(),
                    epoch,
                }));
            }
        }
        Zones {
            wire: wire::WireIndex::build(&zones),
            zones,
            cnames: self.cnames.clone(),
        }
    }

    /// Whether loading the zones folder `dir` again would read the same zones: the same
    /// zone files, and none of them nor any file they include changed since they were
    /// read. (A reload of a config that leaves the zones alone then keeps them, instead
    /// of building them anew beside the ones serving: a zone of a million names takes
    /// seconds to load and 167 MiB more while it does.)
    pub fn files_unchanged(&self, dir: &Path) -> bool {
        let Ok(paths) = file::zone_paths(dir) else {
            return false;
        };
        paths.len() == self.zones.len()
            && (paths.iter().zip(&self.zones)).all(|(path, zone)| {
                zone.sources.first().is_some_and(|s| s.path() == path)
                    && zone.sources.iter().all(file::Source::unchanged)
            })
    }

    /// The zone `name` belongs to (the deepest whose apex is `name` or above it).
    pub fn zone_of(&self, name: &Name) -> Option<&Zone> {
        best_zone(&self.zones, name).map(|i| &self.zones[i])
    }

    /// The `cname` target of a region, for the fast path.
    pub fn cname_target(&self, region: RegionId) -> Option<&CnameTarget> {
        self.cnames.get(region.index())?.as_ref()
    }

    /// The prebuilt wire answers (see [`wire`]).
    pub fn wire(&self) -> &wire::WireIndex {
        &self.wire
    }

    /// The zones, in load order.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// Resolves `qname`/`qtype`; `None` when no zone contains the name (REFUSED).
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Option<Resolution<'_>> {
        let zone = &self.zones[best_zone(&self.zones, qname)?];
        Some(zone.resolve(qname, qtype))
    }
}

/// The zone of `zones` that `name` belongs to (see [`Zones::zone_of`]).
pub fn zone_of<'z>(zones: &'z [Zone], name: &Name) -> Option<&'z Zone> {
    best_zone(zones, name).map(|i| &zones[i])
}

/// The deepest zone whose apex is `name` or an ancestor of it.
fn best_zone(zones: &[Zone], name: &Name) -> Option<usize> {
    // A linear scan: deployments hold a handful of zones, and it allocates nothing.
    zones
        .iter()
        .enumerate()
        .filter(|(_, z)| z.apex.zone_of(name))
        .max_by_key(|(_, z)| z.apex_labels)
        .map(|(i, _)| i)
}

impl Zone {
    fn from_file(f: ZoneFile) -> Result<Zone, Diagnostic> {
        let apex = f.origin.clone();
        // The loader guarantees one SOA at the apex; check anyway rather than panic.
        let soa = (f.nodes.index_of(Key::of(&apex).bytes()))
            .and_then(|i| {
                f.store
                    .get(f.nodes.value(i).rrsets, f.nodes.key(i), RecordType::SOA)
            })
            .and_then(|set| records(set).next())
            .map(Cow::into_owned);
        let Some((soa, minimum)) = soa.and_then(|r| match &r.data {
            RData::SOA(s) => Some((r.clone(), s.minimum)),
            _ => None,
        }) else {
            return Err(Diagnostic::new(&f.path, format!("no SOA record at {apex}")));
        };
        warn_cname_loops(&f);
        let mut neg_soa = soa.clone();
        neg_soa.ttl = soa.ttl.min(minimum);
        let owners = f.nodes.len();
        let mut zone = Zone {
            apex_labels: label_count(&apex),
            soa,
            neg_soa,
            apex,
            nodes: f.nodes,
            store: f.store,
            sigs: Vec::new(),
            signer: None,
            sources: f.sources,
        };
        let apex_key = Key::of(&zone.apex);
        zone.insert_key(apex_key.bytes());
        for i in 0..owners {
            let key = zone.nodes.key(i).to_vec();
            // Empty non-terminals, and the zone cuts: NS records below the apex.
            zone.insert_key(&key);
            let sets = zone.nodes.value(i).rrsets;
            if key != apex_key.bytes() && zone.store.has(sets, RecordType::NS) {
                zone.nodes.value_mut(i).cut = true;
            }
        }
        Ok(zone)
    }

    /// Replaces a node's (by index) RRsets.
    fn set_sets(&mut self, i: usize, sets: store::Sets) {
        let h = if sets.is_empty() {
            store::RRsets::default()
        } else {
            self.store.put(self.nodes.key(i), sets)
        };
        self.nodes.value_mut(i).rrsets = h;
    }

    /// The apex name.
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// With `[dnssec]`: the zone's signer.
    pub fn signer(&self) -> Option<&Arc<Signer>> {
        self.signer.as_ref()
    }

    /// The precomputed RRSIGs of the RRset (`name`, `rtype`) with TTL `ttl`, when the
    /// zone holds that RRset and signs it.
    pub fn rrsigs(&self, name: &Name, rtype: RecordType, ttl: u32) -> Option<&[Record]> {
        let (i, _) = self.node(name)?;
        self.sigs
            .get(i)?
            .sigs
            .iter()
            .find(|(t, tl, _)| *t == rtype && *tl == ttl)
            .map(|(_, _, s)| &**s)
    }

    /// The precomputed denial at `name` for `qtype` (NSEC and RRSIGs), when `name` is a
    /// node of the zone.
    pub fn proof(&self, name: &Name, qtype: RecordType) -> Option<&[Record]> {
        let (i, _) = self.node(name)?;
        let proofs = self.sigs.get(i)?.proofs.as_ref()?;
        Some(proofs.for_type(qtype))
    }

    /// Whether data owned by `name` of type `rtype` is the zone's to sign: not at or below
    /// a zone cut, except the DS at the cut itself (RFC 4035 §2.2).
    pub fn signs(&self, name: &Name, rtype: RecordType) -> bool {
        match self.cut_above(name) {
            None => true,
            Some(cut) => rtype == RecordType::DS && cut == *name,
        }
    }

    /// The DS RRset at the zone cut `name`, when the zone file has one.
    pub fn ds_at(&self, name: &Name) -> Option<Cow<'_, [Record]>> {
        let (i, _) = self.node(name)?;
        self.rrset(i, RecordType::DS)
    }

    /// The types a compact-denial NSEC at `name` lists, when `name` exists only through
    /// a wildcard (its data is the wildcard's); `None` when no wildcard covers it.
    pub fn wildcard_types(&self, name: &Name) -> Option<Vec<RecordType>> {
        let key = Key::of(name);
        let total = label_count(name);
        let mut encloser = self.apex_labels;
        for n in self.apex_labels + 1..=total {
            if self.nodes.index_of(key.suffix(total - n)).is_none() {
                break;
            }
            encloser = n;
        }
        if encloser == total {
            return None;
        }
        let w = Key::wildcard(key.suffix(total - encloser))?;
        let node = self.nodes.get(w.bytes())?;
        Some(signed::bitmap(&self.store.types(node.rrsets), node))
    }

    /// The SOA as written in the zone file.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The SOA used in negative answers (TTL already lowered to MINIMUM).
    pub fn negative_soa(&self) -> &Record {
        &self.neg_soa
    }

    /// The node at `name`, with its index.
    fn node(&self, name: &Name) -> Option<(usize, &Node)> {
        let i = self.nodes.index_of(Key::of(name).bytes())?;
        Some((i, self.nodes.value(i)))
    }

    /// The RRset of type `t` of the node at index `i`.
    fn rrset(&self, i: usize, t: RecordType) -> Option<Cow<'_, [Record]>> {
        let sets = self.nodes.value(i).rrsets;
        self.store.get(sets, self.nodes.key(i), t)
    }

    /// The index of the node at `name`, creating it and every missing ancestor up to the
    /// apex (empty non-terminals must exist so that they answer NODATA, not NXDOMAIN).
    fn insert_node(&mut self, name: &Name) -> usize {
        self.insert_key(Key::of(name).bytes())
    }

    /// [`Zone::insert_node`] for the name `key` (lower-case wire format).
    fn insert_key(&mut self, key: &[u8]) -> usize {
        let mut at = 0;
        for _ in self.apex_labels..key_labels(key) {
            at += 1 + usize::from(key[at]);
            self.nodes.index_or_insert_with(&key[at..], Node::default);
        }
        self.nodes.index_or_insert_with(key, Node::default)
    }

    /// The delegation point at or above `name` (below the apex), if any.
    fn cut_above(&self, name: &Name) -> Option<Name> {
        let key = Key::of(name);
        let total = label_count(name);
        (self.apex_labels + 1..=total)
            .find(|n| {
                self.nodes
                    .get(key.suffix(total - n))
                    .is_some_and(|node| node.cut)
            })
            .map(|n| name.trim_to(n))
    }

    fn resolve<'z>(&'z self, qname: &Name, qtype: RecordType) -> Resolution<'z> {
        let mut res = Resolution {
            zone: self,
            rcode: Rcode::NoError,
            authoritative: true,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            dynamic: None,
        };
        let mut name = Cow::Borrowed(qname);
        for _ in 0..MAX_CNAME_CHAIN {
            let (step, synthesized) = self.lookup(&name, qtype);
            // RFC 4592 §3.4.3: records synthesised from a wildcard take the query name.
            let synth = synthesized.then(|| name.as_ref().clone());
            let owner = |r: Cow<'z, Record>| with_owner(r, synth.as_ref());
            match step {
                Step::Data(set) => {
                    self.add_additionals(&set, &mut res.additionals);
                    res.answers.extend(records(set).map(owner));
                    return res;
                }
                Step::Dynamic(record) => {
                    res.dynamic = Some(DynamicStep {
                        record,
                        owner: name.into_owned(),
                        qtype,
                    });
                    return res;
                }
                Step::Cname(set) => {
                    let Some(rec) = records(set).next() else {
                        return res;
                    };
                    let target = match &rec.data {
                        RData::CNAME(target) => Some(target.0.clone()),
                        _ => None,
                    };
                    res.answers.push(owner(rec));
                    let Some(target) = target else {
                        return res;
                    };
                    // A target outside this zone is for the resolver to chase. A name
                    // already answered for is a loop: stop, so no record repeats (RFC
                    // 2181 §5); the answers so far are this chain's CNAMEs.
                    if qtype == RecordType::CNAME
                        || !self.apex.zone_of(&target)
                        || res.answers.iter().any(|r| r.name == target)
                    {
                        return res;
                    }
                    name = Cow::Owned(target);
                }
                Step::NoData => {
                    res.authority.push(Cow::Borrowed(&self.neg_soa));
                    return res;
                }
                Step::NxDomain => {
                    // RFC 6604: the RCODE describes the last name of the chain.
                    res.rcode = Rcode::NxDomain;
                    res.authority.push(Cow::Borrowed(&self.neg_soa));
                    return res;
                }
                Step::Referral(cut) => {
                    // AA stays set when a CNAME of ours led here (RFC 1034 §4.3.2 step 3b).
                    res.authoritative = !res.answers.is_empty();
                    let ns = self.rrset(cut, RecordType::NS).unwrap_or_default();
                    self.add_additionals(&ns, &mut res.additionals);
                    res.authority.extend(records(ns));
                    return res;
                }
            }
        }
        // An absurdly long chain: answer what we have, as BIND does.
        res
    }

    /// One name, one type, no CNAME following. The flag tells whether the data came from
    /// a wildcard (and needs the query name as owner).
    fn lookup(&self, name: &Name, qtype: RecordType) -> (Step<'_>, bool) {
        // Walk down from the apex: a cut on the way is a referral (the DS at the cut
        // itself is the parent's data, RFC 4035 §3.1.4.1); the last existing node is the
        // closest encloser for wildcard matching (RFC 4592 §3.3.1).
        let key = Key::of(name);
        let total = label_count(name);
        let mut encloser = self.apex_labels;
        for n in self.apex_labels + 1..=total {
            let Some(i) = self.nodes.index_of(key.suffix(total - n)) else {
                break;
            };
            if self.nodes.value(i).cut && !(n == total && qtype == RecordType::DS) {
                return (Step::Referral(i), false);
            }
            encloser = n;
        }
        if encloser == total {
            return match self.nodes.index_of(key.bytes()) {
                Some(i) => (self.match_node(i, qtype), false),
                None => (Step::NxDomain, false),
            };
        }
        let wildcard = Key::wildcard(key.suffix(total - encloser))
            .and_then(|w| self.nodes.index_of(w.bytes()));
        match wildcard {
            Some(i) => (self.match_node(i, qtype), true),
            None => (Step::NxDomain, false),
        }
    }

    fn match_node(&self, i: usize, qtype: RecordType) -> Step<'_> {
        let node = self.nodes.value(i);
        if qtype == RecordType::ANY {
            // RFC 8482 §4.1: answer ANY with one RRset of the name, not all of them.
            return match (node.dynamic(), node.rrsets == store::RRsets::default()) {
                (Some(id), _) => Step::Dynamic(id),
                (None, false) => match self.store.first(node.rrsets, self.nodes.key(i)) {
                    Some(set) => Step::Data(set),
                    None => Step::NoData,
                },
                (None, true) => Step::NoData,
            };
        }
        if let Some(set) = self.rrset(i, qtype) {
            return Step::Data(set);
        }
        if let Some(id) = node.dynamic() {
            if node.any_type || matches!(qtype, RecordType::A | RecordType::AAAA) {
                return Step::Dynamic(id);
            }
        }
        match self.rrset(i, RecordType::CNAME) {
            Some(set) if !set.is_empty() => Step::Cname(set),
            _ => Step::NoData,
        }
    }

    /// In-zone addresses of the names that NS, MX and SRV records point to: glue for
    /// referrals, and saved round trips for the rest (RFC 1034 §3.3.1 additional processing).
    fn add_additionals<'z>(&'z self, set: &[Record], out: &mut Vec<Cow<'z, Record>>) {
        for rec in set {
            let target = match &rec.data {
                RData::NS(ns) => &ns.0,
                RData::MX(mx) => &mx.exchange,
                RData::SRV(srv) => &srv.target,
                _ => continue,
            };
            if !self.apex.zone_of(target) {
                continue;
            }
            if let Some((i, _)) = self.node(target) {
                for t in [RecordType::A, RecordType::AAAA] {
                    for r in records(self.rrset(i, t).unwrap_or_default()) {
                        if !out.iter().any(|o| o.as_ref() == r.as_ref()) {
                            out.push(r);
                        }
                    }
                }
            }
        }
    }
}

/// The records of an RRset one by one, borrowed when the set is.
pub fn records<'z>(set: Cow<'z, [Record]>) -> impl Iterator<Item = Cow<'z, Record>> {
    let (borrowed, owned) = match set {
        Cow::Borrowed(s) => (s.iter(), Vec::new()),
        Cow::Owned(v) => ([].iter(), v),
    };
    borrowed
        .map(Cow::Borrowed)
        .chain(owned.into_iter().map(Cow::Owned))
}

/// A name's lower-case wire form (the key of the node maps), on the stack.
struct Key {
    buf: [u8; 256],
    len: usize,
}

impl Key {
    fn of(name: &Name) -> Key {
        let mut k = Key {
            buf: [0; 256],
            len: 0,
        };
        for label in name.iter() {
            // hickory keeps a name within 255 bytes; a longer one would find nothing.
            if k.len + 1 + label.len() >= k.buf.len() {
                break;
            }
            k.buf[k.len] = label.len() as u8;
            for (to, b) in k.buf[k.len + 1..].iter_mut().zip(label) {
                *to = b.to_ascii_lowercase();
            }
            k.len += 1 + label.len();
        }
        k.buf[k.len] = 0;
        k.len += 1;
        k
    }

    /// `*.` before the name `key`.
    fn wildcard(key: &[u8]) -> Option<Key> {
        let mut k = Key {
            buf: [0; 256],
            len: key.len() + 2,
        };
        k.buf.get_mut(..2)?.copy_from_slice(&[1, b'*']);
        k.buf.get_mut(2..k.len)?.copy_from_slice(key);
        Some(k)
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The key of the name with its first `skip` labels taken off.
    fn suffix(&self, skip: usize) -> &[u8] {
        let mut at = 0;
        for _ in 0..skip {
            match self.buf.get(at) {
                Some(&len) if at < self.len - 1 => at += 1 + usize::from(len),
                _ => break,
            }
        }
        &self.buf[at.min(self.len - 1)..self.len]
    }
}

/// With `[dnssec]`, gslbd makes every signature, key and proof itself: a zone file that
/// brings its own (a pre-signed zone) would serve stale ones beside them.
fn refuse_presigned(f: &ZoneFile, errors: &mut Diagnostics) {
    for i in 0..f.nodes.len() {
        let theirs = |t: &RecordType| {
            matches!(
                t,
                RecordType::RRSIG
                    | RecordType::NSEC
                    | RecordType::NSEC3
                    | RecordType::NSEC3PARAM
                    | RecordType::DNSKEY
                    | RecordType::CDS
                    | RecordType::CDNSKEY
            )
        };
        if !f.store.types(f.nodes.value(i).rrsets).iter().any(theirs) {
            continue;
        }
        for r in f.sets(i).into_iter().flat_map(|(_, set)| set) {
            let t = r.record_type();
            let at_apex = r.name == f.origin;
            let ours = matches!(
                t,
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3 | RecordType::NSEC3PARAM
            ) || (at_apex
                && matches!(
                    t,
                    RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
                ));
            if !ours {
                continue;
            }
            let mut d = Diagnostic::new(
                &f.path,
                format!(
                    "{} {t} record: with [dnssec] gslbd signs the zone itself and publishes its own \
                     DNSKEY, CDS, CDNSKEY and NSEC records; remove it (the zone file holds unsigned data)",
                    r.name
                ),
            );
            if let Some(line) = f.line(&r.name, t) {
                d = d.at(line, 1);
            }
            errors.push(d);
        }
    }
}

/// Warns about each loop of static CNAMEs (`a CNAME b`, `b CNAME a`): answers stop at
/// the first repeated name, but a loop is surely a mistake. Wildcards are not followed.
fn warn_cname_loops(f: &ZoneFile) {
    use hickory_proto::rr::LowerName;
    let targets: HashMap<LowerName, LowerName> = (0..f.nodes.len())
        .filter(|&i| f.store.has(f.nodes.value(i).rrsets, RecordType::CNAME))
        .flat_map(|i| f.sets(i))
        .flat_map(|(_, set)| set)
        .filter_map(|r| match &r.data {
            RData::CNAME(t) => Some((LowerName::new(&r.name), LowerName::new(&t.0))),
            _ => None,
        })
        .collect();
    // Each name is walked once: `done` holds names already known to lead nowhere new.
    let mut done: std::collections::HashSet<&LowerName> = Default::default();
    for start in targets.keys() {
        let mut path: Vec<&LowerName> = Vec::new();
        let mut at = start;
        while !done.contains(at) {
            if let Some(i) = path.iter().position(|p| *p == at) {
                let names: Vec<String> = path[i..].iter().map(|n| n.to_string()).collect();
                let place = match f.line(at, RecordType::CNAME) {
                    Some(l) => format!("{}:{l}", f.path.display()),
                    None => f.path.display().to_string(),
                };
                tracing::warn!(
                    "{place}: CNAME loop {} -> {at}; answers stop at the first repeated name",
                    names.join(" -> ")
                );
                break;
            }
            path.push(at);
            match targets.get(at) {
                Some(next) => at = next,
                None => break,
            }
        }
        done.extend(path);
    }
}

/// The number of labels, counting a leading `*` (hickory's `num_labels` leaves it out,
/// as RRSIG's label count does, but `trim_to` counts it).
fn label_count(name: &Name) -> usize {
    name.iter().count()
}

/// The number of labels of a wire-format name.
fn key_labels(key: &[u8]) -> usize {
    let (mut at, mut n) = (0, 0);
    while let Some(&len) = key.get(at).filter(|l| **l > 0) {
        at += 1 + usize::from(len);
        n += 1;
    }
    n
}

/// `r` as is, or a copy owned by `owner` (wildcard synthesis).
fn with_owner<'z>(r: Cow<'z, Record>, owner: Option<&Name>) -> Cow<'z, Record> {
    match owner {
        None => r,
        Some(name) => {
            let mut r = r.into_owned();
            r.name = name.clone();
            Cow::Owned(r)
        }
    }
}

/// `name` as a TOML key: bare when it can be, else quoted.
pub(crate) fn toml_quote(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}
