//! A zone's DNSSEC data, made when it is loaded (and again when signatures are renewed):
//! the DNSKEY, CDS and CDNSKEY RRsets at the apex, an RRSIG set over every authoritative
//! RRset, and each node's compact-denial proof (RFC 9824), so that no query of a name the
//! zone holds ever signs anything.

use std::sync::Arc;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Node, Zone, store};
use crate::dnssec::{KEY_TTL, Signer};

/// A node's DNSSEC data: the RRSIGs of each signed RRset, by type and TTL (the apex SOA
/// has two when its negative TTL differs), and its denial proofs.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeSigs {
    pub(super) sigs: Sigs,
    pub(super) proofs: Option<Box<Proofs>>,
}

/// A node's denial proofs: NSEC at the node and its RRSIGs.
#[derive(Debug, Clone)]
pub(super) struct Proofs {
    /// For every type the node has no data of.
    all: Box<[Record]>,
    /// A dynamic node's, when its answer has no A (resp. AAAA) records: the bitmap then
    /// leaves that type out.
    no_a: Option<Box<[Record]>>,
    no_aaaa: Option<Box<[Record]>>,
}

impl Proofs {
    pub(super) fn for_type(&self, qtype: RecordType) -> &[Record] {
        match qtype {
            RecordType::A => self.no_a.as_deref().unwrap_or(&self.all),
            RecordType::AAAA => self.no_aaaa.as_deref().unwrap_or(&self.all),
            _ => &self.all,
        }
    }
}

impl Zone {
    /// Adds the apex key RRsets and signs every authoritative RRset and every node's
    /// denial with `signer`, replacing what an earlier run made.
    pub(super) fn sign(&mut self, signer: Arc<Signer>) {
        let apex = self.apex.clone();
        let mut keys: store::Sets = vec![
            (RecordType::DNSKEY, Vec::new()),
            (RecordType::CDS, Vec::new()),
            (RecordType::CDNSKEY, Vec::new()),
        ];
        for key in &signer.keys {
            let data = [
                DNSSECRData::DNSKEY(key.dnskey.clone()),
                DNSSECRData::CDS(key.cds()),
                DNSSECRData::CDNSKEY(key.cdnskey()),
            ];
            for (set, d) in keys.iter_mut().zip(data) {
                set.1
                    .push(Record::from_rdata(apex.clone(), KEY_TTL, RData::DNSSEC(d)));
            }
        }
        if let Some((i, node)) = self.node(&apex) {
            let mut sets = self.store.sets(node.rrsets, self.nodes.key(i));
            sets.retain(|(t, _)| {
                !matches!(
                    t,
                    RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
                )
            });
            sets.extend(keys);
            self.set_sets(i, sets);
        }
        let neg_ttl = self.neg_soa.ttl;
        // Below a zone cut: glue, not ours to sign (RFC 4035 §2.2).
        let work: Vec<(usize, Name)> = (0..self.nodes.len())
            .map(|i| (i, store::from_wire(self.nodes.key(i))))
            .filter(|(_, name)| self.cut_above(name).is_none_or(|c| c == *name))
            .collect();
        // Signing is ~20 µs a signature: a large zone is split over every core.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = work.len().div_ceil(threads).max(256);
        let zone = &*self;
        let signed: Vec<(usize, NodeSigs)> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .chunks(chunk)
                .map(|part| {
                    let signer = &signer;
                    scope.spawn(move || {
                        part.iter()
                            .map(|(i, name)| {
                                let node = zone.nodes.value(*i);
                                let sets = zone.store.sets(node.rrsets, zone.nodes.key(*i));
                                let sigs = node_sigs(zone, signer, name, node, &sets, neg_ttl);
                                let types: Vec<RecordType> = sets.iter().map(|(t, _)| *t).collect();
                                let proofs =
                                    proofs(signer, name, &bitmap(&types, node), node, neg_ttl);
                                let proofs = Some(Box::new(proofs));
                                (*i, NodeSigs { sigs, proofs })
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a signing thread panicked"))
                .collect()
        });
        self.sigs = vec![NodeSigs::default(); self.nodes.len()];
        for (i, sigs) in signed {
            self.sigs[i] = sigs;
        }
        self.signer = Some(signer);
    }
}

type Sigs = Vec<(RecordType, u32, Box<[Record]>)>;

/// The RRSIGs of a node's RRsets (at a cut, of its DS only: the NS belongs to the child),
/// and at the apex of the negative SOA too when its TTL differs.
fn node_sigs(
    zone: &Zone,
    signer: &Signer,
    name: &Name,
    node: &Node,
    sets: &store::Sets,
    neg_ttl: u32,
) -> Sigs {
    let mut sigs = Vec::new();
    for (t, set) in sets {
        if node.cut && *t != RecordType::DS {
            continue;
        }
        let ttl = set.first().map_or(0, |r| r.ttl);
        let records: Vec<&Record> = set.iter().collect();
        sigs.push((*t, ttl, signer.sign(name, *t, ttl, &records).into()));
    }
    if *name == zone.apex && neg_ttl != zone.soa.ttl {
        let soa = [&zone.neg_soa];
        sigs.push((
            RecordType::SOA,
            neg_ttl,
            signer.sign(name, RecordType::SOA, neg_ttl, &soa).into(),
        ));
    }
    sigs
}

/// The types a node's NSEC bitmap lists: its own (`types`), A and AAAA for a dynamic
/// name (never CNAME: a validator would take the NODATA proof for a CNAME's).
pub(super) fn bitmap(types: &[RecordType], node: &Node) -> Vec<RecordType> {
    let mut types = types.to_vec();
    if node.dynamic().is_some() {
        types.extend([RecordType::A, RecordType::AAAA]);
    }
    types.retain(|t| *t != RecordType::CNAME || node.dynamic().is_none());
    types.sort_by_key(|t| u16::from(*t));
    types.dedup();
    types
}

fn proofs(signer: &Signer, name: &Name, types: &[RecordType], node: &Node, ttl: u32) -> Proofs {
    let without = |gone: RecordType| {
        let t: Vec<RecordType> = types.iter().copied().filter(|t| *t != gone).collect();
        signer.denial(name, ttl, &t).into_boxed_slice()
    };
    let dynamic = node.dynamic().is_some();
    Proofs {
        all: signer.denial(name, ttl, types).into_boxed_slice(),
        no_a: dynamic.then(|| without(RecordType::A)),
        no_aaaa: dynamic.then(|| without(RecordType::AAAA)),
    }
}
