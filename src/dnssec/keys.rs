//! Signing keys on disk: one folder (`dnssec.keys`), two files a key.
//!
//! ```text
//! keys/gslb.example.com+013+40196.private   PKCS#8 in PEM ("PRIVATE KEY"), mode 0600
//! keys/gslb.example.com+013+40196.key       its DNSKEY record, for people and tools
//! ```
//!
//! The private file is the key: the zone, algorithm and key tag in its name are checked
//! against its content when it is loaded, and the public half is derived from it. Every
//! key of a zone signs every RRset of the zone, so a second key can be added beside the
//! first for a roll (see the README's DNSSEC section).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSKEY, DS};
use hickory_proto::dnssec::{DigestType, PublicKey, SigningKey};
use hickory_proto::rr::Name;
use rustls_pki_types::PrivatePkcs8KeyDer;

use super::Algorithm;

/// DNSKEY flags of a combined signing key: Zone Key and Secure Entry Point (RFC 4034 §2.1.1).
pub const FLAGS: u16 = 257;

/// One zone's signing key, loaded.
pub struct ZoneKey {
    /// The zone apex, lower case.
    pub zone: Name,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The private key.
    pub signer: Box<dyn SigningKey>,
    /// The public key as published (flags 257).
    pub dnskey: DNSKEY,
    /// Its key tag (RFC 4034 Appendix B).
    pub tag: u16,
    /// The private key file.
    pub path: PathBuf,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey")
            .field("zone", &self.zone)
            .field("algorithm", &self.algorithm)
            .field("tag", &self.tag)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// The DS record for the parent (SHA-256, digest type 2).
    pub fn ds(&self) -> DS {
        DS::new(
            self.tag,
            self.algorithm.hickory(),
            DigestType::SHA256,
            self.digest(),
        )
    }

    /// The CDS record (RFC 7344), the DS the parent should hold.
    pub fn cds(&self) -> CDS {
        CDS::new(
            self.tag,
            Some(self.algorithm.hickory()),
            DigestType::SHA256,
            self.digest(),
        )
    }

    /// The CDNSKEY record (RFC 7344), the DNSKEY the parent should make a DS of.
    pub fn cdnskey(&self) -> CDNSKEY {
        CDNSKEY::with_flags(
            FLAGS,
            Some(self.algorithm.hickory()),
            self.dnskey.public_key().public_bytes().to_vec(),
        )
    }

    fn digest(&self) -> Vec<u8> {
        self.dnskey
            .to_digest(&self.zone, DigestType::SHA256)
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// The DS in zone-file format, one line.
    pub fn ds_line(&self) -> String {
        let ds = self.ds();
        format!(
            "{} IN DS {} {} 2 {}",
            self.zone,
            ds.key_tag(),
            self.algorithm.number(),
            data_encoding::HEXUPPER.encode(ds.digest())
        )
    }

    /// The DNSKEY in zone-file format, one line.
    pub fn dnskey_line(&self) -> String {
        format!(
            "{} IN DNSKEY {FLAGS} 3 {} {}",
            self.zone,
            self.algorithm.number(),
            data_encoding::BASE64.encode(self.dnskey.public_key().public_bytes())
        )
    }
}

/// Every zone's keys, by apex (lower case).
#[derive(Debug, Default)]
pub struct Keyring {
    keys: HashMap<Name, Vec<Arc<ZoneKey>>>,
}

/// A key folder or file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct KeyError {
    /// The file or folder.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

fn key_error(path: &Path, message: impl Into<String>) -> KeyError {
    KeyError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Keyring {
    /// Loads every `.private` key file of `dir`. A missing folder is an empty keyring;
    /// an unreadable folder or any unreadable or malformed key file is an error.
    pub fn load(dir: &Path) -> Result<Keyring, Vec<KeyError>> {
        let mut ring = Keyring::default();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ring),
            Err(e) => {
                return Err(vec![key_error(
                    dir,
                    format!("cannot read the key folder: {e}"),
                )]);
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "private"))
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        for path in paths {
            match load_key(&path) {
                Ok(key) => ring
                    .keys
                    .entry(key.zone.clone())
                    .or_default()
                    .push(Arc::new(key)),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(ring)
        } else {
            Err(errors)
        }
    }

    /// The keys of the zone at `apex`.
    pub fn zone(&self, apex: &Name) -> &[Arc<ZoneKey>] {
        self.keys
            .get(&apex.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// Generates a key for `apex` with `algorithm` and writes it into `dir` (created if
    /// missing; the private file with mode 0600, never overwriting a file).
    pub fn generate(dir: &Path, apex: &Name, algorithm: Algorithm) -> Result<ZoneKey, KeyError> {
        let pkcs8 = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                EcdsaSigningKey::generate_pkcs8(algorithm.hickory()).map_err(|e| e.to_string())
            }
            Algorithm::Ed25519 => Ed25519SigningKey::generate_pkcs8().map_err(|e| e.to_string()),
        }
        .map_err(|e| key_error(dir, format!("cannot generate a key: {e}")))?;
        let zone = apex.to_lowercase();
        let (signer, dnskey, tag) = open(pkcs8.secret_pkcs8_der(), algorithm)
            .map_err(|e| key_error(dir, format!("generated key unusable: {e}")))?;
        fs::create_dir_all(dir)
            .map_err(|e| key_error(dir, format!("cannot create the key folder: {e}")))?;
        let stem = format!("{}+{:03}+{tag:05}", file_zone(&zone), algorithm.number());
        let path = dir.join(format!("{stem}.private"));
        let key = ZoneKey {
            zone,
            algorithm,
            signer,
            dnskey,
            tag,
            path: path.clone(),
        };
        let pem = pem(pkcs8.secret_pkcs8_der());
        write_new(&path, pem.as_bytes(), 0o600)?;
        let public = format!(
            "; gslbd signing key of {} (DNSKEY flags 257), key tag {tag}\n{}\n",
            key.zone,
            key.dnskey_line()
        );
        write_new(&dir.join(format!("{stem}.key")), public.as_bytes(), 0o644)?;
        Ok(key)
    }
}

/// The zone as it appears in key file names: without the final dot (`.` for the root).
fn file_zone(zone: &Name) -> String {
    let s = zone.to_string();
    match s.strip_suffix('.') {
        Some("") | None => s,
        Some(z) => z.to_string(),
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| key_error(path, format!("cannot create: {e}")))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| key_error(path, format!("cannot write: {e}")))
}

/// Parses `ZONE+ALG+TAG.private` and checks the content against it.
fn load_key(path: &Path) -> Result<ZoneKey, KeyError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".private"))
        .unwrap_or_default();
    let bad_name = || {
        key_error(
            path,
            "not a key file name: expected ZONE+ALG+TAG.private, as written by `gslbd dnssec keygen`",
        )
    };
    let mut parts = name.rsplitn(3, '+');
    let (Some(tag), Some(alg), Some(zone)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_name());
    };
    let (Ok(tag), Ok(alg)) = (tag.parse::<u16>(), alg.parse::<u8>()) else {
        return Err(bad_name());
    };
    let algorithm = Algorithm::from_number(alg).ok_or_else(|| {
        key_error(
            path,
            format!("algorithm {alg} is not supported (13 ecdsap256sha256, 15 ed25519)"),
        )
    })?;
    let zone = Name::from_ascii(zone)
        .map(|z| z.to_lowercase())
        .map_err(|_| bad_name())?;
    let mut zone = zone;
    zone.set_fqdn(true);
    let text =
        fs::read_to_string(path).map_err(|e| key_error(path, format!("cannot read: {e}")))?;
    let der = unpem(&text).ok_or_else(|| {
        key_error(
            path,
            "malformed: expected a PKCS#8 private key in PEM (-----BEGIN PRIVATE KEY-----)",
        )
    })?;
    let (signer, dnskey, actual) = open(&der, algorithm).map_err(|e| {
        key_error(
            path,
            format!("malformed: not a {} private key: {e}", algorithm.name()),
        )
    })?;
    if actual != tag {
        return Err(key_error(
            path,
            format!("the key's tag is {actual}, not {tag} as its file name says"),
        ));
    }
    Ok(ZoneKey {
        zone,
        algorithm,
        signer,
        dnskey,
        tag,
        path: path.to_path_buf(),
    })
}

type Opened = (Box<dyn SigningKey>, DNSKEY, u16);

/// The signing key of a PKCS#8 document, its DNSKEY and key tag.
fn open(der: &[u8], algorithm: Algorithm) -> Result<Opened, String> {
    let doc = PrivatePkcs8KeyDer::from(der);
    let signer: Box<dyn SigningKey> = match algorithm {
        Algorithm::EcdsaP256Sha256 => Box::new(
            EcdsaSigningKey::from_pkcs8(&doc, algorithm.hickory()).map_err(|e| e.to_string())?,
        ),
        Algorithm::Ed25519 => {
            Box::new(Ed25519SigningKey::from_pkcs8(&doc).map_err(|e| e.to_string())?)
        }
    };
    let public = signer.to_public_key().map_err(|e| e.to_string())?;
    let dnskey = DNSKEY::with_flags(FLAGS, public);
    let tag = dnskey.calculate_key_tag().map_err(|e| e.to_string())?;
    Ok((signer, dnskey, tag))
}

fn pem(der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

fn unpem(text: &str) -> Option<Vec<u8>> {
    let body = text
        .split("-----BEGIN PRIVATE KEY-----")
        .nth(1)?
        .split("-----END PRIVATE KEY-----")
        .next()?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    data_encoding::BASE64.decode(b64.as_bytes()).ok()
}
