//! A zone's DNSSEC data, made when it is loaded (and again when signatures are renewed):
//! the DNSKEY, CDS and CDNSKEY RRsets at the apex, an RRSIG set over every authoritative
//! RRset, and each node's compact-denial proof (RFC 9824), so that no query of a name the
//! zone holds ever signs anything.

use std::sync::Arc;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Node, Zone};
use crate::dnssec::{KEY_TTL, Signer};

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
        let mut keys: Vec<(RecordType, Vec<Record>)> = vec![
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
        if let Some(node) = self.nodes.get_mut(&apex) {
            node.rrsets.retain(|(t, _)| {
                !matches!(
                    t,
                    RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
                )
            });
            node.rrsets.extend(keys);
        }
        let neg_ttl = self.neg_soa.ttl;
        // Below a zone cut: glue, not ours to sign (RFC 4035 §2.2).
        let work: Vec<(&Name, &Node)> = self
            .nodes
            .iter()
            .filter(|(name, _)| self.cut_above(name).is_none_or(|c| c == **name))
            .collect();
        // Signing is ~20 µs a signature: a large zone is split over every core.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = work.len().div_ceil(threads).max(256);
        let zone = &*self;
        let signed: Vec<(Name, Sigs, Proofs)> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .chunks(chunk)
                .map(|part| {
                    let signer = &signer;
                    scope.spawn(move || {
                        part.iter()
                            .map(|(name, node)| {
                                let sigs = node_sigs(zone, signer, name, node, neg_ttl);
                                let proofs = proofs(signer, name, node, neg_ttl);
                                ((*name).clone(), sigs, proofs)
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
        for (name, sigs, proofs) in signed {
            let node = self.nodes.get_mut(&name).expect("listed above");
            node.sigs = sigs;
            node.proofs = Some(Box::new(proofs));
        }
        self.signer = Some(signer);
    }
}

type Sigs = Vec<(RecordType, u32, Box<[Record]>)>;

/// The RRSIGs of a node's RRsets (at a cut, of its DS only: the NS belongs to the child),
/// and at the apex of the negative SOA too when its TTL differs.
fn node_sigs(zone: &Zone, signer: &Signer, name: &Name, node: &Node, neg_ttl: u32) -> Sigs {
    let mut sigs = Vec::new();
    for (t, set) in &node.rrsets {
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

/// The types a node's NSEC bitmap lists: its own, A and AAAA for a dynamic name (never
/// CNAME: a validator would take the NODATA proof for a CNAME's).
pub(super) fn bitmap(node: &Node) -> Vec<RecordType> {
    let mut types: Vec<RecordType> = node.rrsets.iter().map(|(t, _)| *t).collect();
    if node.dynamic.is_some() {
        types.extend([RecordType::A, RecordType::AAAA]);
    }
    types.retain(|t| *t != RecordType::CNAME || node.dynamic.is_none());
    types.sort_by_key(|t| u16::from(*t));
    types.dedup();
    types
}

fn proofs(signer: &Signer, name: &Name, node: &Node, ttl: u32) -> Proofs {
    let types = bitmap(node);
    let without = |gone: RecordType| {
        let t: Vec<RecordType> = types.iter().copied().filter(|t| *t != gone).collect();
        signer.denial(name, ttl, &t).into_boxed_slice()
    };
    let dynamic = node.dynamic.is_some();
    Proofs {
        all: signer.denial(name, ttl, &types).into_boxed_slice(),
        no_a: dynamic.then(|| without(RecordType::A)),
        no_aaaa: dynamic.then(|| without(RecordType::AAAA)),
    }
}
