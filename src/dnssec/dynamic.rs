//! The signatures of dynamic answers, made before any query needs them.
//!
//! A dynamic name's answer is one of a few RRsets: for each region of the record, its
//! up addresses of each family (or all of them, when every candidate is down and the
//! record fails open, or the union of every region's for `when_all_down = "all"`), or its
//! CNAME, each at the record's TTL or its `fallback_ttl`. [`DynSigs::build`] signs each
//! of them for the current health, reusing every signature of the previous build whose
//! answer is unchanged, so a health change signs only what it changed. A query looks the
//! signature up by the decision ([`DynSigs::get`]), without allocating. An answer not
//! found (a race with a health change, more than [`MAX_KEY`] bytes of addresses, a
//! wildcard name) is signed on first use by the general path instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use smallvec::SmallVec;

use super::Epoch;
use crate::decide::Choice;
use crate::health::Health;
use crate::model::{Model, RecordId};
use crate::zone::Zones;

/// Bytes of a key kept inline: 8 IPv6 addresses and the header.
pub const MAX_KEY: usize = 144;

type Key = SmallVec<[u8; MAX_KEY]>;

/// One answer to sign: type, the region of a CNAME, the addresses, the CNAME target.
type Answer = (u16, Option<u32>, SmallVec<[IpAddr; 8]>, Option<Name>);

/// One answer's RRSIGs.
#[derive(Debug)]
pub struct DynSig {
    /// As records owned by the dynamic name (for the general path).
    pub records: Box<[Record]>,
    /// As wire RRs owned by a pointer to the question name (offset 12), for the fast
    /// path to append.
    pub wire: Box<[u8]>,
}

/// Every dynamic answer's signatures for one health state.
#[derive(Debug, Default)]
pub struct DynSigs {
    epoch: Option<Epoch>,
    map: HashMap<Key, Arc<DynSig>, foldhash::fast::RandomState>,
    /// Signatures made by the last build (the others were reused).
    pub made: usize,
}

/// The lookup key of an answer: record, type, TTL, and the region (CNAME) or the
/// addresses in canonical order.
fn key(record: RecordId, rtype: u16, ttl: u32, cname_region: Option<u32>, addrs: &[IpAddr]) -> Key {
    let mut k = Key::new();
    k.extend_from_slice(&record.0.to_be_bytes());
    k.extend_from_slice(&rtype.to_be_bytes());
    k.extend_from_slice(&ttl.to_be_bytes());
    if let Some(r) = cname_region {
        k.extend_from_slice(&r.to_be_bytes());
        return k;
    }
    let mut sorted: SmallVec<[IpAddr; 8]> = addrs.iter().copied().collect();
    sorted.sort_unstable();
    for a in sorted {
        match a {
            IpAddr::V4(v) => k.extend_from_slice(&v.octets()),
            IpAddr::V6(v) => k.extend_from_slice(&v.octets()),
        }
    }
    k
}

/// The RRset type of a choice's answer.
fn rtype(choice: &Choice) -> u16 {
    if choice.cname {
        5
    } else if choice.addrs.first().is_some_and(IpAddr::is_ipv6) {
        28
    } else {
        1
    }
}

impl DynSigs {
    /// The signatures of `choice`'s answer, when made.
    pub fn get(&self, choice: &Choice) -> Option<&DynSig> {
        let region = if choice.cname {
            Some(u32::from(choice.region?.0))
        } else {
            None
        };
        let k = key(
            choice.record,
            rtype(choice),
            choice.ttl,
            region,
            &choice.addrs,
        );
        self.map.get(&k).map(|s| &**s)
    }

    /// Signs every answer `model`'s dynamic names can give under `health`, reusing
    /// `old`'s signatures of the same epoch.
    pub fn build(
        model: &Model,
        zones: &Zones,
        health: &Health,
        epoch: Epoch,
        old: Option<&DynSigs>,
    ) -> DynSigs {
        let old = old.filter(|o| o.epoch == Some(epoch));
        let mut out = DynSigs {
            epoch: Some(epoch),
            ..DynSigs::default()
        };
        for (i, rec) in model.records.iter().enumerate() {
            let id = RecordId(i as u32);
            let Ok(owner) = Name::from_ascii(&rec.name) else {
                continue;
            };
            // A wildcard's answers are owned by each name asked: signed on first use.
            if owner.is_wildcard() {
                continue;
            }
            let Some(signer) = zones.zone_of(&owner).and_then(|z| z.signer()) else {
                continue;
            };
            let mut ttls = vec![rec.ttl, rec.ttl.min(rec.fallback_ttl)];
            ttls.dedup();
            let mut sets: Vec<Answer> = Vec::new();
            let mut union: [SmallVec<[IpAddr; 8]>; 2] = Default::default();
            for &rid in &rec.regions {
                let region = model.region(rid);
                if let Some(target) = &region.cname {
                    sets.push((
                        5,
                        Some(u32::from(rid.0)),
                        SmallVec::new(),
                        Some(target.clone()),
                    ));
                    continue;
                }
                let v4: Vec<IpAddr> = region.v4.iter().map(|a| IpAddr::V4(*a)).collect();
                let v6: Vec<IpAddr> = region.v6.iter().map(|a| IpAddr::V6(*a)).collect();
                for (fi, (rtype, all, first)) in [(1u16, v4, 0), (28, v6, region.v4.len())]
                    .into_iter()
                    .enumerate()
                {
                    let up: SmallVec<[IpAddr; 8]> = all
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| health.address_up(rid, first + j))
                        .map(|(_, a)| *a)
                        .collect();
                    for a in &all {
                        if !union[fi].contains(a) {
                            union[fi].push(*a);
                        }
                    }
                    if !up.is_empty() && up.len() != all.len() {
                        sets.push((rtype, None, up, None));
                    }
                    if !all.is_empty() {
                        sets.push((rtype, None, all.into_iter().collect(), None));
                    }
                }
            }
            for (fi, u) in union.into_iter().enumerate() {
                if !u.is_empty() {
                    sets.push((if fi == 0 { 1 } else { 28 }, None, u, None));
                }
            }
            for &ttl in &ttls {
                for (rtype, region, addrs, target) in &sets {
                    let k = key(id, *rtype, ttl, *region, addrs);
                    if out.map.contains_key(&k) {
                        continue;
                    }
                    if let Some(s) = old.and_then(|o| o.map.get(&k)) {
                        out.map.insert(k, s.clone());
                        continue;
                    }
                    let records: Vec<Record> = match target {
                        Some(t) => vec![Record::from_rdata(
                            owner.clone(),
                            ttl,
                            RData::CNAME(CNAME(t.clone())),
                        )],
                        None => addrs
                            .iter()
                            .map(|a| {
                                let data = match a {
                                    IpAddr::V4(v) => RData::A(A(*v)),
                                    IpAddr::V6(v) => RData::AAAA(AAAA(*v)),
                                };
                                Record::from_rdata(owner.clone(), ttl, data)
                            })
                            .collect(),
                    };
                    let refs: Vec<&Record> = records.iter().collect();
                    let sigs = signer.sign(&owner, RecordType::from(*rtype), ttl, &refs);
                    out.made += 1;
                    out.map.insert(k, Arc::new(DynSig::new(sigs)));
                }
            }
        }
        out
    }

    /// How many answers are signed.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is signed.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl DynSig {
    fn new(records: Vec<Record>) -> DynSig {
        let mut wire = Vec::new();
        for r in &records {
            let mut rdata = Vec::new();
            let mut enc = BinEncoder::new(&mut rdata);
            if r.data.emit(&mut enc).is_err() {
                continue;
            }
            wire.extend_from_slice(&[0xC0, 0x0C, 0, 46, 0, 1]);
            wire.extend_from_slice(&r.ttl.to_be_bytes());
            wire.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            wire.extend_from_slice(&rdata);
        }
        DynSig {
            records: records.into_boxed_slice(),
            wire: wire.into_boxed_slice(),
        }
    }

    /// How many RRSIG records [`DynSig::wire`] holds.
    pub fn count(&self) -> u16 {
        self.records.len() as u16
    }
}
