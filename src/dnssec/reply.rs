//! Securing a reply for a DO=1 query: the RRSIGs of every RRset of every section, and
//! the proof a negative answer or a referral needs. Used by the general path for each
//! such reply, and when the zones are built for the fast path's signed templates (with
//! no [`Fresh`] cache: what is not precomputed stays with the general path).

use std::borrow::Cow;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::NXNAME;
use super::dynamic::DynSigs;
use super::fresh::Fresh;
use crate::decide::Choice;
use crate::zone::{Zone, zone_of};

/// Where signatures come from.
pub struct Sources<'s> {
    /// The zones, with their precomputed RRSIGs and proofs.
    pub zones: &'s [Zone],
    /// The dynamic answers' signatures.
    pub dynamic: &'s DynSigs,
    /// Signatures made on first use; `None`: only precomputed ones.
    pub fresh: Option<&'s Fresh>,
    /// The dynamic decision of the reply, with the dynamic name it answers.
    pub choice: Option<(Choice, Name)>,
}

/// The three sections of a reply.
pub struct Sections<'a, 's> {
    /// Answer.
    pub answers: &'a mut Vec<Cow<'s, Record>>,
    /// Authority.
    pub authority: &'a mut Vec<Cow<'s, Record>>,
    /// Additional (without OPT).
    pub additionals: &'a mut Vec<Cow<'s, Record>>,
}

/// A signature was needed that could not be had: not precomputed (and no cache given),
/// or over the fresh-signing cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsigned;

/// Adds RRSIGs and proofs to a reply to `qname`/`qtype`. `nxdomain`: the last name of
/// the answer does not exist; the compact-denial proof then says so (the caller answers
/// NOERROR, or NXDOMAIN to a client that set the CO flag).
pub fn secure<'s>(
    src: &Sources<'s>,
    qname: &Name,
    qtype: RecordType,
    nxdomain: bool,
    s: Sections<'_, 's>,
) -> Result<(), Unsigned> {
    // The last name of the CNAME chain is the one a negative answer is about.
    let mut last = qname.clone();
    for r in s.answers.iter() {
        if let (RData::CNAME(t), true) = (&r.data, r.name == last) {
            last = t.0.clone();
        }
    }
    let mut proof: Vec<Cow<'s, Record>> = Vec::new();
    let referral = s
        .authority
        .iter()
        .find(|r| r.record_type() == RecordType::NS)
        .map(|r| r.name.clone());
    let negative = s
        .authority
        .iter()
        .any(|r| r.record_type() == RecordType::SOA);
    if let Some(cut) = referral {
        let zone = zone_of(src.zones, &cut).ok_or(Unsigned)?;
        match zone.ds_at(&cut) {
            // A signed delegation: its DS, signed below.
            Some(ds) => s.authority.extend(crate::zone::records(ds)),
            // An insecure one: the NSEC at the cut shows NS and no DS.
            None => proof.extend(
                zone.proof(&cut, RecordType::DS)
                    .ok_or(Unsigned)?
                    .iter()
                    .map(Cow::Borrowed),
            ),
        }
    } else if negative {
        let zone = zone_of(src.zones, &last).ok_or(Unsigned)?;
        let signer = zone.signer().ok_or(Unsigned)?;
        let ttl = zone.negative_soa().ttl;
        if nxdomain {
            let key = fresh_key(&last, NXNAME, ttl, &[]);
            let made = src
                .fresh
                .ok_or(Unsigned)?
                .get_or_sign(&key, || signer.denial(&last, ttl, &[NXNAME]))
                .ok_or(Unsigned)?;
            proof.extend(made.iter().cloned().map(Cow::Owned));
        } else if let Some(p) = zone.proof(&last, qtype) {
            proof.extend(p.iter().map(Cow::Borrowed));
        } else {
            // Only a wildcard makes the name exist: deny at the name itself, with the
            // wildcard's types.
            let mut types = zone.wildcard_types(&last).unwrap_or_default();
            types.retain(|t| *t != qtype);
            let key = fresh_key(&last, RecordType::NSEC, ttl, &types);
            let made = src
                .fresh
                .ok_or(Unsigned)?
                .get_or_sign(&key, || signer.denial(&last, ttl, &types))
                .ok_or(Unsigned)?;
            proof.extend(made.iter().cloned().map(Cow::Owned));
        }
    }
    sign_section(src, s.answers)?;
    sign_section(src, s.authority)?;
    sign_section(src, s.additionals)?;
    s.authority.extend(proof);
    Ok(())
}

/// Appends the RRSIGs of each RRset of `section` after it.
fn sign_section<'s>(src: &Sources<'s>, section: &mut Vec<Cow<'s, Record>>) -> Result<(), Unsigned> {
    if section.is_empty() {
        return Ok(());
    }
    let records = std::mem::take(section);
    let mut i = 0;
    while i < records.len() {
        let (name, rtype) = (records[i].name.clone(), records[i].record_type());
        let mut j = i + 1;
        while j < records.len() && records[j].record_type() == rtype && records[j].name == name {
            j += 1;
        }
        let group = &records[i..j];
        let sigs = signatures(src, &name, rtype, group)?;
        section.extend(group.iter().cloned());
        section.extend(sigs);
        i = j;
    }
    Ok(())
}

/// The RRSIGs of one RRset: precomputed for the zone's own RRsets and for dynamic
/// answers, else made on first use; none for what is not ours to sign.
fn signatures<'s>(
    src: &Sources<'s>,
    name: &Name,
    rtype: RecordType,
    group: &[Cow<'s, Record>],
) -> Result<Vec<Cow<'s, Record>>, Unsigned> {
    if matches!(
        rtype,
        RecordType::RRSIG | RecordType::NSEC | RecordType::OPT
    ) {
        return Ok(Vec::new());
    }
    let Some(zone) = zone_of(src.zones, name) else {
        return Ok(Vec::new());
    };
    if !zone.signs(name, rtype) {
        return Ok(Vec::new());
    }
    let Some(signer) = zone.signer() else {
        return Ok(Vec::new());
    };
    let ttl = group[0].ttl;
    if let Some(s) = zone.rrsigs(name, rtype, ttl) {
        return Ok(s.iter().map(Cow::Borrowed).collect());
    }
    if let Some((choice, owner)) = &src.choice {
        if owner == name {
            if let Some(s) = src.dynamic.get(choice) {
                if s.records.first().is_some_and(|r| rrsig_covers(r, rtype)) {
                    return Ok(s.records.iter().map(|r| renamed(r, name)).collect());
                }
            }
        }
    }
    let rdatas: Vec<Vec<u8>> = group.iter().map(|r| rdata_bytes(r)).collect();
    let key = fresh_key(name, rtype, ttl, &[]);
    let key = [key, rdatas.concat()].concat();
    let refs: Vec<&Record> = group.iter().map(|r| r.as_ref()).collect();
    let made = src
        .fresh
        .ok_or(Unsigned)?
        .get_or_sign(&key, || signer.sign(name, rtype, ttl, &refs))
        .ok_or(Unsigned)?;
    Ok(made.iter().cloned().map(Cow::Owned).collect())
}

fn rrsig_covers(r: &Record, rtype: RecordType) -> bool {
    match &r.data {
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(s)) => {
            s.input().type_covered == rtype
        }
        _ => false,
    }
}

/// A precomputed RRSIG owned by the name as the reply writes it (letter case).
fn renamed<'s>(r: &'s Record, name: &Name) -> Cow<'s, Record> {
    if r.name.eq_case(name) {
        Cow::Borrowed(r)
    } else {
        let mut r = r.clone();
        r.name = name.clone();
        Cow::Owned(r)
    }
}

fn rdata_bytes(r: &Record) -> Vec<u8> {
    let mut v = Vec::new();
    let mut enc = BinEncoder::new(&mut v);
    enc.set_canonical_form(true);
    let _ = r.data.emit(&mut enc);
    v
}

/// A fresh-cache key: owner (lower case), type, TTL, and the bitmap types of a denial.
fn fresh_key(owner: &Name, rtype: RecordType, ttl: u32, types: &[RecordType]) -> Vec<u8> {
    let mut k = owner.to_lowercase().to_ascii().into_bytes();
    k.push(0);
    k.extend_from_slice(&u16::from(rtype).to_be_bytes());
    k.extend_from_slice(&ttl.to_be_bytes());
    for t in types {
        k.extend_from_slice(&u16::from(*t).to_be_bytes());
    }
    k
}
