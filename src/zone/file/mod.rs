//! Reads `zones/*.zone` master files into checked [`ZoneFile`]s. hickory-proto's
//! parser does the RDATA work; around it this module adds what an operator needs:
//! every error names `file:line` (found with the splitter in `lines.rs` and `include.rs`, since
//! hickory reports no positions), `$INCLUDE` is confined to the zones folder, and
//! the zone is checked (one SOA and NS at the apex, nothing out of zone, CNAME
//! exclusivity, class IN only, no DNAME).
//!
//! `$INCLUDE` is expanded by `lines.rs` and `include.rs`, not by hickory: the included text is
//! spliced in place of the directive, so hickory never opens a file and every
//! spliced entry keeps its own file and line for errors.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use crate::diag::{Diagnostic, Diagnostics};

mod include;
mod lines;
#[cfg(test)]
mod tests;

use include::{At, Expander};

/// One parsed and checked zone file.
#[derive(Debug, Clone)]
pub struct ZoneFile {
    /// The apex.
    pub origin: Name,
    /// The file it came from.
    pub path: PathBuf,
    /// Every record, class IN.
    pub records: Vec<Record>,
    /// First line of each (owner, type) in `path`, for errors found later. Records
    /// that come from an `$INCLUDE`d file point at the `$INCLUDE` line.
    pub lines: HashMap<(LowerName, RecordType), usize>,
}

/// Loads every `*.zone` file in `dir` (not recursive), sorted by file name. Other
/// file names (a README, `*.inc` files meant for `$INCLUDE`) are skipped.
pub fn load_dir(dir: &Path) -> Result<Vec<ZoneFile>, Diagnostics> {
    let bad_dir =
        |e: std::io::Error| Diagnostic::new(dir, format!("cannot read zones folder: {e}"));
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(bad_dir)? {
        let path = entry.map_err(bad_dir)?.path();
        if path.extension().is_some_and(|e| e == "zone") {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        let msg = format!("no zone files (*.zone) in {}", dir.display());
        return Err(Diagnostic::new(dir, msg).into());
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));

    let mut diags = Diagnostics::default();
    let mut zones = Vec::new();
    let mut seen: HashMap<LowerName, PathBuf> = HashMap::new();
    for path in paths {
        // Two files for one zone would be ambiguous; file names differing only in
        // case name the same zone (DNS names compare case-insensitively).
        if let Ok(origin) = origin_of(&path)
            && let Some(first) = seen.insert(LowerName::new(&origin), path.clone())
        {
            let msg = format!("zone {origin} is also loaded from {}", first.display());
            diags.push(Diagnostic::new(&path, msg));
            continue;
        }
        match load_file(&path) {
            Ok(z) => zones.push(z),
            Err(d) => diags.extend(d),
        }
    }
    diags.into_result(zones)
}

/// Loads one zone file; its origin comes from the file name
/// (`gslb.example.com.zone` holds the zone `gslb.example.com.`).
pub fn load_file(path: &Path) -> Result<ZoneFile, Diagnostics> {
    let origin = origin_of(path)?;
    // A FIFO or device among the zones would block the load (and a reload with it).
    let text = crate::files::read_regular_to_string(path)
        .map_err(|e| Diagnostic::new(path, format!("cannot read zone file: {e}")))?;
    parse_zone(&text, path, &origin)
}

/// Parses and checks zone text as if read from `path` (which names the file in
/// errors and whose folder bounds `$INCLUDE`), with `origin` as the apex.
pub fn parse_zone(text: &str, path: &Path, origin: &Name) -> Result<ZoneFile, Diagnostics> {
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    let mut ex = include::expand(text, path, &origin);
    if ex.fatal {
        return Err(ex.diags);
    }
    // `path: None`: no `$INCLUDE` survives expansion, and this way hickory could
    // not follow a relative one even if it did.
    let parse = |end: usize| Parser::new(&ex.text[..end], None, Some(origin.clone())).parse();
    let map = match parse(ex.text.len()) {
        Ok((_, map)) => map,
        Err(e) => {
            // hickory has no positions: find the first entry whose prefix fails.
            // Prefixes of a zone file are zone files, and failure is monotonic.
            let (mut lo, mut hi, mut msg) = (1, ex.pieces.len(), e.to_string());
            while lo < hi {
                let mid = (lo + hi) / 2;
                match parse(ex.pieces[mid - 1].end) {
                    Ok(_) => lo = mid + 1,
                    Err(e) => (hi, msg) = (mid, e.to_string()),
                }
            }
            let at = ex.pieces.get(hi.max(1) - 1).map(|p| p.at);
            ex.diags.push(ex.diag(at, msg));
            return Err(sorted(ex.diags));
        }
    };
    if ex.incomplete {
        return Err(ex.diags);
    }
    let records: Vec<Record> = map.into_values().flat_map(|set| set.into_iter()).collect();
    let mut diags = Diagnostics(check(&ex, &origin, &records));
    diags.extend(std::mem::take(&mut ex.diags));
    sorted(diags).into_result(ZoneFile {
        origin,
        path: path.to_path_buf(),
        records,
        lines: ex.first_lines(),
    })
}

/// In file order, so an operator can work down the file.
fn sorted(mut d: Diagnostics) -> Diagnostics {
    d.0.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    d
}

/// The zone named by a file name: `NAME.zone` -> `NAME.`.
fn origin_of(path: &Path) -> Result<Name, Diagnostic> {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".zone"));
    let name = match stem {
        Some(s) if !s.is_empty() => Name::from_ascii(s),
        _ => return Err(Diagnostic::new(path, "zone file names must be NAME.zone")),
    };
    let mut name = name.map_err(|e| {
        Diagnostic::new(
            path,
            format!("file name is not a domain name ({e}); expected NAME.zone"),
        )
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// The zone-level rules, run once hickory has parsed everything.
fn check(ex: &Expander, origin: &Name, records: &[Record]) -> Vec<Diagnostic> {
    use RecordType::{CNAME, NS, NSEC, RRSIG, SOA};
    let mut out = Vec::new();
    if records.is_empty() {
        out.push(ex.diag(None, "no SOA record: the file has no records"));
        return out;
    }
    let mut at: HashMap<(LowerName, RecordType), At> = HashMap::new();
    for p in &ex.pieces {
        let Some(k) = &p.key else { continue };
        match at.get(k) {
            // hickory keeps only the last CNAME at a name: refuse rather than guess.
            Some(first) if k.1 == CNAME => {
                let msg = format!(
                    "a second CNAME (first at line {}); a name has at most one",
                    first.line
                );
                out.push(ex.diag(Some(p.at), msg).key(format!("{} CNAME", k.0)));
            }
            Some(_) => {}
            None => drop(at.insert(k.clone(), p.at)),
        }
    }
    let d = |name: &Name, ty: RecordType, msg: String| {
        let pos = at.get(&(LowerName::new(name), ty)).copied();
        ex.diag(pos, msg).key(format!("{name} {ty}"))
    };
    let apex = LowerName::new(origin);
    // Types present at each owner, and the first record of each RRset.
    let mut types: BTreeMap<LowerName, (&Name, Vec<RecordType>)> = BTreeMap::new();
    let mut bad_class = Vec::new();
    for r in records {
        let ty = r.record_type();
        if r.dns_class != DNSClass::IN && !bad_class.contains(&(&r.name, ty)) {
            bad_class.push((&r.name, ty));
            out.push(d(
                &r.name,
                ty,
                format!("class {} is not supported; only IN", r.dns_class),
            ));
        }
        let owner = LowerName::new(&r.name);
        let (_, tys) = types.entry(owner.clone()).or_insert((&r.name, Vec::new()));
        if tys.contains(&ty) {
            continue;
        }
        tys.push(ty);
        if !apex.zone_of(&owner) {
            out.push(d(
                &r.name,
                ty,
                format!("{} is outside the zone {origin}", r.name),
            ));
        }
    }

    let soas: Vec<&Record> = records.iter().filter(|r| r.record_type() == SOA).collect();
    if soas.is_empty() {
        let msg = format!("no SOA record; the zone {origin} needs one at its apex");
        out.push(ex.diag(None, msg).key(format!("{origin} SOA")));
    }
    for s in &soas {
        if LowerName::new(&s.name) != apex {
            let msg = format!(
                "SOA at {} but the file name makes the zone {origin}; the SOA must be at the apex",
                s.name
            );
            out.push(d(&s.name, SOA, msg));
        }
    }
    if soas.len() > 1 {
        out.push(d(
            &soas[1].name,
            SOA,
            format!("{} SOA records; a zone has exactly one", soas.len()),
        ));
    }
    if !types.get(&apex).is_some_and(|(_, tys)| tys.contains(&NS)) {
        let msg = format!("no NS record at the apex {origin}; a zone needs at least one");
        let pos = at.get(&(apex.clone(), SOA)).copied();
        out.push(ex.diag(pos, msg).key(format!("{origin} NS")));
    }
    for (owner, (name, tys)) in &types {
        if !tys.contains(&CNAME) {
            continue;
        }
        let others: Vec<String> = tys
            .iter()
            .filter(|t| !matches!(t, CNAME | RRSIG | NSEC))
            .map(|t| t.to_string())
            .collect();
        if !others.is_empty() {
            let msg = format!(
                "CNAME and other data ({}) at one name; RFC 1034 §3.6.2: a CNAME must be alone",
                others.join(", ")
            );
            out.push(d(name, CNAME, msg));
        }
        if *owner == apex {
            out.push(d(
                name,
                CNAME,
                "CNAME at the zone apex, which must hold the SOA and NS".into(),
            ));
        }
    }
    out
}
