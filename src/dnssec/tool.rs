//! `gslbd dnssec keygen` and `gslbd dnssec ds`.

use std::path::Path;

use hickory_proto::rr::Name;

use super::{Algorithm, Keyring};
use crate::config;
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::Model;
use crate::zone::file;

/// What `keygen` did: the key files written, and every zone's DS lines.
#[derive(Debug)]
pub struct Generated {
    /// The private key files written (empty when every zone had a key).
    pub written: Vec<std::path::PathBuf>,
    /// Each zone's DS records, in zone-file format.
    pub ds: Vec<String>,
}

/// Writes a key for every zone of the config's `zones/` that has none, with `algorithm`
/// (else `dnssec.algorithm`); leaves existing keys alone. With `add`, every zone gets one
/// more key, beside those it has (the first step of a key roll).
pub fn keygen(
    config: &Path,
    algorithm: Option<Algorithm>,
    add: bool,
) -> Result<Generated, Diagnostics> {
    let (model, apexes, ring) = load(config)?;
    let cfg = model.dnssec.as_ref().expect("checked by load");
    let algorithm = algorithm.unwrap_or(cfg.algorithm);
    let mut written = Vec::new();
    let mut ring = ring;
    for apex in &apexes {
        if !add && !ring.zone(apex).is_empty() {
            continue;
        }
        let key = Keyring::generate(&cfg.keys, apex, algorithm)
            .map_err(|e| Diagnostic::new(&e.path, e.message))?;
        written.push(key.path.clone());
        ring = Keyring::load(&cfg.keys).map_err(key_errors)?;
    }
    Ok(Generated {
        written,
        ds: ds_lines(&model, &apexes, &ring)?,
    })
}

/// Every zone's DS records (SHA-256), one line each; a zone without a key is an error.
pub fn ds(config: &Path) -> Result<Vec<String>, Diagnostics> {
    let (model, apexes, ring) = load(config)?;
    ds_lines(&model, &apexes, &ring)
}

fn ds_lines(model: &Model, apexes: &[Name], ring: &Keyring) -> Result<Vec<String>, Diagnostics> {
    let cfg = model.dnssec.as_ref().expect("checked by load");
    let mut lines = Vec::new();
    let mut errors = Diagnostics::default();
    for apex in apexes {
        let keys = ring.zone(apex);
        if keys.is_empty() {
            errors.push(
                Diagnostic::new(
                    &model.file,
                    format!(
                        "zone {apex} has no signing key in {}: run `gslbd dnssec keygen --config {}`",
                        cfg.keys.display(),
                        model.file.display()
                    ),
                )
                .at(cfg.pos.line, cfg.pos.col)
                .key("dnssec.keys"),
            );
        }
        lines.extend(keys.iter().map(|k| k.ds_line()));
    }
    errors.into_result(lines)
}

/// The config (which must have `[dnssec]`), its zones' apexes and the keys found.
fn load(config: &Path) -> Result<(Model, Vec<Name>, Keyring), Diagnostics> {
    let model = config::load(config)?;
    let Some(cfg) = &model.dnssec else {
        return Err(Diagnostic::new(
            config,
            "no [dnssec] section: add one (e.g. `[dnssec]` then `keys = \"keys\"`) to sign the zones",
        )
        .into());
    };
    let files = file::load_dir(&model.server.zones)?;
    let apexes: Vec<Name> = files.iter().map(|f| f.origin.to_lowercase()).collect();
    let ring = Keyring::load(&cfg.keys).map_err(key_errors)?;
    Ok((model, apexes, ring))
}

/// Key file errors as diagnostics naming each file.
pub fn key_errors(errors: Vec<super::keys::KeyError>) -> Diagnostics {
    let mut d = Diagnostics::default();
    for e in errors {
        d.push(Diagnostic::new(&e.path, e.message));
    }
    d
}
