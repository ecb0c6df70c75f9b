//! DNSSEC: every answer signed online, with no signing on the query path.
//!
//! Every answer gslbd can give is known in advance: the zones' RRsets, and for each
//! dynamic name one RRset per record, region, family, TTL and set of up addresses. They
//! are signed off the query path — the zones when they are loaded ([`crate::zone`]), the
//! dynamic answers when health changes ([`dynamic::DynSigs`]) — and a query only looks its
//! signatures up. What cannot be known in advance is signed on first use and kept in a
//! small cache with a cap on signatures per second ([`fresh::Fresh`]): the denial of a
//! name that does not exist, and answers synthesised from a wildcard.
//!
//! Denial is RFC 9824 compact denial: a negative answer carries one NSEC record at the
//! name asked for, whose next name is the name's immediate successor (`\000.name`), so it
//! proves nothing exists there without naming any other name of the zone (no zone
//! walking). A name that does not exist is answered NOERROR with the NXNAME type in the
//! NSEC bitmap (NXDOMAIN when the query sets the Compact Answers OK flag). Wildcard
//! answers are signed as if the name existed, so they need no proof.
//!
//! ```text
//! keys/ ─► Keyring ─► Signer (per zone, one epoch) ─► Zones: RRSIGs and proofs per node
//!                                                  ├► DynSigs: per dynamic answer (health)
//!                                                  └► Fresh: on first use, cached, capped
//! ```

pub mod dynamic;
pub mod fresh;
pub mod keys;
pub mod reply;
pub mod tool;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, RRSIG, SigInput};
use hickory_proto::dnssec::{Algorithm as HAlgorithm, TBS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};

pub use keys::{Keyring, ZoneKey};

/// Signatures are valid for this long by default (`dnssec.validity`).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600);
/// The shortest validity allowed: signatures are renewed halfway through.
pub const MIN_VALIDITY: Duration = Duration::from_secs(2 * 3600);
/// The longest validity allowed.
pub const MAX_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// How far inception is backdated, against validators whose clock is behind.
pub const BACKDATE: Duration = Duration::from_secs(3600);
/// TTL of the DNSKEY, CDS and CDNSKEY RRsets at each apex.
pub const KEY_TTL: u32 = 3600;
/// The NXNAME meta type (RFC 9824): in an NSEC bitmap, "this name does not exist".
pub const NXNAME: RecordType = RecordType::Unknown(128);

/// A signing algorithm gslbd makes keys with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (13): the default, as in most signed zones.
    EcdsaP256Sha256,
    /// Ed25519 (15).
    Ed25519,
}

impl Algorithm {
    /// By the name used in `dnssec.algorithm` and `--algorithm`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name.to_ascii_lowercase().as_str() {
            "ecdsap256sha256" | "13" => Some(Algorithm::EcdsaP256Sha256),
            "ed25519" | "15" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// By its IANA number.
    pub fn from_number(n: u8) -> Option<Algorithm> {
        match n {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// The IANA number.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ecdsap256sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    fn hickory(self) -> HAlgorithm {
        match self {
            Algorithm::EcdsaP256Sha256 => HAlgorithm::ECDSAP256SHA256,
            Algorithm::Ed25519 => HAlgorithm::ED25519,
        }
    }
}

/// The validity window every signature of one signing run shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// When the run started (seconds since the Unix epoch).
    pub signed_at: u64,
    /// RRSIG inception: `signed_at` backdated by [`BACKDATE`].
    pub inception: u32,
    /// RRSIG expiration: `signed_at` + validity.
    pub expiration: u32,
    /// When to sign everything again: halfway through the validity.
    pub renew_at: u64,
}

impl Epoch {
    /// The epoch of a run starting at `now` with `validity`.
    pub fn starting(now: SystemTime, validity: Duration) -> Epoch {
        let at = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Epoch {
            signed_at: at,
            // RRSIG times are serial-number arithmetic on 32 bits (RFC 4034 §3.1.5).
            inception: at.saturating_sub(BACKDATE.as_secs()) as u32,
            expiration: (at + validity.as_secs()) as u32,
            renew_at: at + validity.as_secs() / 2,
        }
    }

    /// True once the signatures of this epoch should be replaced.
    pub fn due(&self, now: SystemTime) -> bool {
        now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() >= self.renew_at
    }
}

/// One zone's signer: its keys and the epoch of the current signatures.
#[derive(Debug)]
pub struct Signer {
    /// The zone apex (the RRSIG signer name), lower case.
    pub zone: Name,
    /// Every key of the zone; each signs every RRset.
    pub keys: Vec<Arc<ZoneKey>>,
    /// The validity window.
    pub epoch: Epoch,
}

impl Signer {
    /// The RRSIG records over `records` (one RRset: same owner, type and class), owned by
    /// `owner` with TTL and original TTL `ttl`, one per key. A wildcard owner (`*.x`)
    /// gets the label count of `x` (RFC 4034 §3.1.3).
    pub fn sign(
        &self,
        owner: &Name,
        rtype: RecordType,
        ttl: u32,
        records: &[&Record],
    ) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let input = SigInput {
                type_covered: rtype,
                algorithm: key.algorithm.hickory(),
                num_labels: owner.num_labels(),
                original_ttl: ttl,
                sig_expiration: SerialNumber::new(self.epoch.expiration),
                sig_inception: SerialNumber::new(self.epoch.inception),
                key_tag: key.tag,
                signer_name: self.zone.clone(),
            };
            // The TBS keeps only records of this owner, type and class: give it them so.
            let set: Vec<Record> = records
                .iter()
                .map(|r| {
                    let mut r = (*r).clone();
                    r.name = owner.clone();
                    r.dns_class = DNSClass::IN;
                    r
                })
                .collect();
            let signature = TBS::from_input(owner, DNSClass::IN, &input, set.iter())
                .map_err(|e| e.to_string())
                .and_then(|tbs| key.signer.sign(&tbs).map_err(|e| e.to_string()));
            match signature {
                Ok(sig) => out.push(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
                )),
                Err(e) => {
                    tracing::error!(owner = %owner, %rtype, key = key.tag, "cannot sign: {e}")
                }
            }
        }
        out
    }

    /// The NSEC record of compact denial at `owner` (RFC 9824): next name `\000.owner`,
    /// `types` and NSEC and RRSIG in the bitmap; with its RRSIGs.
    pub fn denial(&self, owner: &Name, ttl: u32, types: &[RecordType]) -> Vec<Record> {
        let owner = owner.to_lowercase();
        let next = immediate_successor(&owner);
        let nsec = Record::from_rdata(
            owner.clone(),
            ttl,
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new_cover_self(
                next,
                types.iter().copied(),
            ))),
        );
        let mut out = self.sign(&owner, RecordType::NSEC, ttl, &[&nsec]);
        out.insert(0, nsec);
        out
    }
}

/// `\000.name`: the first name after `name` in canonical order (RFC 4034 §6.1), so an
/// NSEC from `name` to it covers no other name. A name too long for the extra label
/// keeps itself (the NSEC then covers nothing at all, which is as true).
pub fn immediate_successor(name: &Name) -> Name {
    match hickory_proto::rr::domain::Label::from_raw_bytes(&[0]) {
        Ok(zero) => name.prepend_label(zero).unwrap_or_else(|_| name.clone()),
        Err(_) => name.clone(),
    }
}

/// Seconds since the Unix epoch now.
pub fn now() -> SystemTime {
    SystemTime::now()
}
