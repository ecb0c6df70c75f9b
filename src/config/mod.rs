//! Loads `gslb.toml` into a validated [`Model`].
//!
//! Three steps, as in ripgrep: toml + serde read the text into the `raw` structs (syntax,
//! unknown keys, wrong types; these stop at the first problem), then validation checks
//! every value and resolves region names to ids, collecting every problem it finds, and
//! only a config with no problem at all becomes a `Model`. Each problem is a
//! [`Diagnostic`] naming `file:line:col` and the TOML key path; they come back sorted by
//! position.
//!
//! ```text
//! text ─► DeTable (syntax) ─► raw::RawConfig (serde) ─► server / regions / records / geo ─► Model
//! ```

mod check;
mod geo;
mod keypath;
mod raw;
mod records;
mod regions;
mod server;
mod syntax;
#[cfg(test)]
mod tests;

use std::path::Path;

use toml::de::DeTable;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::Model;
use check::Ctx;
use raw::RawConfig;

/// Reads and validates the config at `path`.
///
/// Relative paths inside it (`server.zones`, `server.geoip`) are resolved against the
/// folder `path` is in. An unreadable file is one diagnostic naming the path and the
/// operating system's reason.
pub fn load(path: &Path) -> Result<Model, Diagnostics> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::new(path, format!("cannot read the config file: {e}")))?;
    parse(&text, path)
}

/// Parses and validates config `text` as if read from `file`.
///
/// `file` names the file in diagnostics, becomes [`Model::file`], and its folder is where
/// relative paths are resolved from. Returns every problem found, sorted by position.
pub fn parse(text: &str, file: &Path) -> Result<Model, Diagnostics> {
    let raw = deserialize(text, file)?;
    let mut cx = Ctx::new(file, text);
    let base = file.parent().unwrap_or(Path::new(""));
    let server = server::server(&mut cx, &raw.server, base);
    let defaults = server::defaults(&mut cx, &raw.defaults);
    let (regions, names) = regions::regions(&mut cx, &raw.regions, &defaults);
    let records = records::records(&mut cx, &raw.records, &names, &defaults);
    let latency = geo::latency(&mut cx, &raw.latency, &names);
    let cluster = raw
        .cluster
        .as_ref()
        .and_then(|c| server::cluster(&mut cx, c));
    let dnssec = raw
        .dnssec
        .as_ref()
        .and_then(|d| server::dnssec(&mut cx, d, base));
    let mut diags = cx.diags;
    // Sections are checked in dependency order; report in file order instead.
    diags.0.sort_by_key(|d| (d.line, d.col));
    diags.into_result(Model {
        file: file.to_path_buf(),
        server,
        defaults,
        regions,
        records,
        latency,
        cluster,
        dnssec,
    })
}

/// A problem found after validation with the value of `key` in the config `file` (a
/// GeoIP database that cannot be opened): `file:line:col` of that value, read again from
/// the file since the model keeps no positions, and the key path.
pub fn diagnostic_at(file: &Path, key: &[&str], message: impl Into<String>) -> Diagnostic {
    let path = key.iter().fold(String::new(), |p, k| keypath::join(&p, k));
    let d = Diagnostic::new(file, message).key(path);
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let offset = DeTable::parse(&text)
        .ok()
        .and_then(|doc| keypath::value_offset(doc.get_ref(), key));
    match offset {
        Some(offset) => d.at_offset(&text, offset),
        None => d,
    }
}

/// toml and serde: the first syntax or schema error, with its position and key path.
fn deserialize(text: &str, file: &Path) -> Result<RawConfig, Diagnostics> {
    // The recovering parser is used only to find the *earliest* syntax error (the plain
    // one reports whichever it meets first in its own order). The rest are not reported:
    // after one mistake TOML recovery mostly produces echoes of it.
    let (doc, errors) = DeTable::parse_recoverable(text);
    let first = errors
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |s| s.start));
    if let Some(err) = first {
        let offset = err.span().map_or(0, |s| s.start);
        let mut message = format!("invalid TOML: {}", err.message());
        if err.message() == "duplicate key" {
            message = match keypath::first_definition(text, offset) {
                Some((what, line)) if what.starts_with("table") => format!(
                    "{message}: {what} is already defined at line {line}; a table is \
                     written once (merge the two)"
                ),
                Some((what, line)) => format!("{message}: {what} is already set at line {line}"),
                None => format!("{message}: already defined above"),
            };
        }
        let mut d = Diagnostic::new(file, message).at_offset(text, offset);
        if let Some(key) = keypath::near_syntax_error(text, offset) {
            d = d.key(key);
        }
        return Err(d.into());
    }
    serde_path_to_error::deserialize(toml::Deserializer::from(doc)).map_err(|err| {
        let span = err.inner().span();
        let key = keypath::from_serde(err.path()).or_else(|| {
            // Reparsing is cheaper than keeping a copy of every document that loads fine.
            let doc = DeTable::parse(text).ok()?;
            keypath::at_span(doc.get_ref(), span.as_ref()?)
        });
        let mut d = Diagnostic::new(file, plain_words(err.inner().message()));
        if let Some(span) = span {
            d = d.at_offset(text, span.start);
        }
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            d = d.key(key);
        }
        d.into()
    })
}

/// serde's messages in the config's own terms: TOML has keys and tables, not fields,
/// structs and `i64`s.
fn plain_words(message: &str) -> String {
    let mut m = message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a borrowed string", "expected a string")
        .replace("expected a sequence", "expected an array");
    if let Some(i) = m.find("expected struct ") {
        m.replace_range(i.., "expected a table");
    }
    m
}
