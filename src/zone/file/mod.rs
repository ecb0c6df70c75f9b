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

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};

use crate::diag::{Diagnostic, Diagnostics};
use crate::zone::names::NameMap;
use crate::zone::store::{self, Store};
use crate::zone::{Key, Node};

mod include;
mod lines;
mod records;
#[cfg(test)]
mod tests;

use include::{At, Expander};
use records::Gathered;

/// One parsed and checked zone file.
#[derive(Debug, Clone)]
pub struct ZoneFile {
    /// The apex.
    pub origin: Name,
    /// The file it came from.
    pub path: PathBuf,
    /// Every owner's RRsets, class IN (kept as the zone will serve them).
    pub(in crate::zone) nodes: NameMap<Node>,
    pub(in crate::zone) store: Store,
    /// First line in `path` of each (owner: index in `nodes`, type), sorted, for errors
    /// found later. Records that come from an `$INCLUDE`d file point at the `$INCLUDE`
    /// line.
    lines: Vec<(u32, u16, u32)>,
    /// The file and every file it `$INCLUDE`s, as read.
    pub(in crate::zone) sources: Vec<Source>,
}

impl ZoneFile {
    /// Every record, owner by owner.
    pub fn records(&self) -> Vec<Record> {
        (0..self.nodes.len())
            .flat_map(|i| self.sets(i))
            .flat_map(|(_, set)| set)
            .collect()
    }

    /// The RRsets of the owner at index `i` of `nodes`.
    pub(in crate::zone) fn sets(&self, i: usize) -> store::Sets {
        self.store
            .sets(self.nodes.value(i).rrsets, self.nodes.key(i))
    }

    /// The first line of the records of `name` and type `t` in the zone file.
    pub fn line(&self, name: &Name, t: RecordType) -> Option<usize> {
        let node = self.nodes.index_of(Key::of(name).bytes())? as u32;
        let t = u16::from(t);
        let i = (self.lines)
            .binary_search_by_key(&(node, t), |&(n, rt, _)| (n, rt))
            .ok()?;
        Some(self.lines[i].2 as usize)
    }
}

/// A file a zone was read from, and a digest of what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::zone) struct Source {
    path: PathBuf,
    digest: u128,
}

impl Source {
    fn of(path: &Path, text: &str) -> Source {
        let mut d = Digest::default();
        d.write(text.as_bytes());
        Source {
            path: path.to_path_buf(),
            digest: d.finish(),
        }
    }

    /// The file's path.
    pub(in crate::zone) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file still holds what it did (an unreadable one has changed). Read
    /// a piece at a time: a large zone file is not held in memory to be compared.
    pub(in crate::zone) fn unchanged(&self) -> bool {
        use std::io::Read;
        let Ok(mut file) = crate::files::open_regular(&self.path) else {
            return false;
        };
        let mut d = Digest::default();
        let mut buf = vec![0; 1 << 16];
        loop {
            match file.read(&mut buf) {
                Ok(0) => return d.finish() == self.digest,
                Ok(n) => d.write(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// 128 bits of SipHash: two files that differ collide with odds of 2^-128.
#[derive(Default)]
struct Digest {
    a: std::hash::DefaultHasher,
    b: std::hash::DefaultHasher,
    /// Bytes not yet hashed: hashed in blocks of the same size whatever the reads, so
    /// that the digest depends on the bytes only.
    pending: Vec<u8>,
}

impl Digest {
    const BLOCK: usize = 1 << 16;

    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (Self::BLOCK - self.pending.len()).min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == Self::BLOCK {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        use std::hash::Hasher;
        self.a.write(&self.pending);
        self.b.write_u8(0x5a);
        self.b.write(&self.pending);
        self.pending.clear();
    }

    fn finish(mut self) -> u128 {
        use std::hash::Hasher;
        self.flush();
        (u128::from(self.a.finish()) << 64) | u128::from(self.b.finish())
    }
}

/// Loads every `*.zone` file in `dir` (not recursive), sorted by file name. Other
/// file names (a README, `*.inc` files meant for `$INCLUDE`) are skipped.
pub fn load_dir(dir: &Path) -> Result<Vec<ZoneFile>, Diagnostics> {
    let paths = zone_paths(dir)?;
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

/// The `*.zone` files in `dir`, sorted by file name.
pub(in crate::zone) fn zone_paths(dir: &Path) -> Result<Vec<PathBuf>, Diagnostics> {
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
    Ok(paths)
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
    let owners = std::mem::take(&mut ex.owners);
    let gathered = match records::parse(&ex, text, owners, &origin) {
        Ok(g) => g,
        Err(failed) => {
            let at = failed.piece.map(|p| ex.pieces[p].at);
            ex.diags.push(ex.diag(at, failed.msg));
            return Err(sorted(ex.diags));
        }
    };
    if ex.incomplete {
        return Err(ex.diags);
    }
    let mut firsts = Firsts::of(&ex);
    let gathered = firsts.without_phantoms(gathered);
    let mut diags = Diagnostics(check(&ex, &firsts, &origin, &gathered));
    diags.extend(std::mem::take(&mut ex.diags));
    let lines = firsts.lines(&ex);
    let sources = std::iter::once(Source::of(path, text))
        .chain(ex.included().map(|(path, text)| Source::of(path, text)))
        .collect();
    drop(ex);
    let Gathered {
        mut nodes,
        mut store,
    } = gathered;
    nodes.shrink_to_fit();
    store.shrink_to_fit();
    sorted(diags).into_result(ZoneFile {
        origin,
        path: path.to_path_buf(),
        nodes,
        store,
        lines,
        sources,
    })
}

/// The first entry of each (owner, type), for positions in errors.
struct Firsts {
    /// (owner: index in `Gathered::nodes`, type, index in `Expander::pieces`), sorted.
    firsts: Vec<(u32, u16, u32)>,
    /// (owner, index in `Expander::pieces`) of each CNAME after the first at its owner,
    /// with that first's piece.
    second_cnames: Vec<(u32, u32, u32)>,
}

impl Firsts {
    fn of(ex: &Expander) -> Firsts {
        let mut firsts: Vec<(u32, u16, u32)> = (ex.pieces.iter().enumerate())
            .filter_map(|(i, p)| p.key.map(|(owner, t)| (owner, u16::from(t), i as u32)))
            .collect();
        firsts.sort_unstable();
        let mut second_cnames = Vec::new();
        firsts.dedup_by(|later, first| {
            let same = (later.0, later.1) == (first.0, first.1);
            if same && later.1 == u16::from(RecordType::CNAME) {
                second_cnames.push((later.0, later.2, first.2));
            }
            same
        });
        firsts.shrink_to_fit();
        second_cnames.sort_unstable_by_key(|&(_, piece, _)| piece);
        Firsts {
            firsts,
            second_cnames,
        }
    }

    /// `g` without the owners the expander found that hickory gave no records (it names
    /// owners the way hickory does, so there are none but in a case not foreseen; they
    /// must not become empty nodes).
    fn without_phantoms(&mut self, g: Gathered) -> Gathered {
        let empty = |i: usize| g.nodes.value(i).rrsets == store::RRsets::default();
        if !(0..g.nodes.len()).any(empty) {
            return g;
        }
        let mut nodes = NameMap::default();
        let mut new = vec![u32::MAX; g.nodes.len()];
        for (i, slot) in new.iter_mut().enumerate().filter(|(i, _)| !empty(*i)) {
            let node = g.nodes.value(i).clone();
            *slot = nodes.index_or_insert_with(g.nodes.key(i), || node) as u32;
        }
        self.firsts.retain_mut(|(owner, _, _)| {
            *owner = new[*owner as usize];
            *owner != u32::MAX
        });
        self.firsts.sort_unstable();
        for (owner, _, _) in &mut self.second_cnames {
            *owner = new[*owner as usize];
        }
        self.second_cnames
            .retain(|(owner, _, _)| *owner != u32::MAX);
        Gathered {
            nodes,
            store: g.store,
        }
    }

    /// Where the first record of `name` and type `t` is.
    fn at(&self, ex: &Expander, g: &Gathered, name: &Name, t: RecordType) -> Option<At> {
        let node = g.nodes.index_of(Key::of(name).bytes())? as u32;
        let t = u16::from(t);
        let i = (self.firsts)
            .binary_search_by_key(&(node, t), |&(n, rt, _)| (n, rt))
            .ok()?;
        Some(ex.pieces[self.firsts[i].2 as usize].at)
    }

    /// The first line in the zone file of each (owner, type).
    fn lines(&self, ex: &Expander) -> Vec<(u32, u16, u32)> {
        (self.firsts.iter())
            .map(|&(node, t, piece)| (node, t, ex.pieces[piece as usize].at.top))
            .collect()
    }
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
fn check(ex: &Expander, firsts: &Firsts, origin: &Name, g: &Gathered) -> Vec<Diagnostic> {
    use RecordType::{CNAME, NS, NSEC, RRSIG, SOA};
    let mut out = Vec::new();
    if g.nodes.len() == 0 {
        out.push(ex.diag(None, "no SOA record: the file has no records"));
        return out;
    }
    // hickory keeps only the last CNAME at a name: refuse rather than guess.
    for &(owner, piece, first) in &firsts.second_cnames {
        let first = ex.pieces[first as usize].at;
        let msg = format!(
            "a second CNAME (first at line {}); a name has at most one",
            first.line
        );
        let owner = store::from_wire(g.nodes.key(owner as usize));
        let at = Some(ex.pieces[piece as usize].at);
        out.push(ex.diag(at, msg).key(format!("{owner} CNAME")));
    }
    let d = |name: &Name, ty: RecordType, msg: String| {
        let pos = firsts.at(ex, g, name, ty);
        ex.diag(pos, msg).key(format!("{name} {ty}"))
    };
    let apex = LowerName::new(origin);
    let apex_key = Key::of(origin);
    let mut soas: Vec<Record> = Vec::new();
    let mut apex_ns = false;
    for i in 0..g.nodes.len() {
        let h = g.nodes.value(i).rrsets;
        let key = g.nodes.key(i);
        let in_zone = under(key, apex_key.bytes());
        let types = g.store.types(h);
        // Stored compact, every record is of class IN and in the zone or not as its
        // owner is: only the owner need be decoded.
        let sets = if g.store.is_compact(h) && in_zone {
            Vec::new()
        } else {
            g.sets(i)
        };
        for (ty, set) in &sets {
            let mut bad_class = false;
            for (n, r) in set.iter().enumerate() {
                if r.dns_class != DNSClass::IN && !bad_class {
                    bad_class = true;
                    out.push(d(
                        &r.name,
                        *ty,
                        format!("class {} is not supported; only IN", r.dns_class),
                    ));
                }
                if n == 0 && !in_zone {
                    out.push(d(
                        &r.name,
                        *ty,
                        format!("{} is outside the zone {origin}", r.name),
                    ));
                }
            }
        }
        if types.contains(&SOA) {
            soas.extend(g.store.get(h, key, SOA).unwrap_or_default().into_owned());
        }
        if key == apex_key.bytes() {
            apex_ns = types.contains(&NS);
        }
        if types.contains(&CNAME) {
            let name = g.store.owner(h, key);
            let others: Vec<String> = types
                .iter()
                .filter(|t| !matches!(t, CNAME | RRSIG | NSEC))
                .map(|t| t.to_string())
                .collect();
            if !others.is_empty() {
                let msg = format!(
                    "CNAME and other data ({}) at one name; RFC 1034 §3.6.2: a CNAME must be alone",
                    others.join(", ")
                );
                out.push(d(&name, CNAME, msg));
            }
            if key == apex_key.bytes() {
                out.push(d(
                    &name,
                    CNAME,
                    "CNAME at the zone apex, which must hold the SOA and NS".into(),
                ));
            }
        }
    }
    // In DNSSEC order, as hickory's map of the records gave them.
    soas.sort_by_cached_key(|r| LowerName::new(&r.name));
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
    if !apex_ns {
        let msg = format!("no NS record at the apex {origin}; a zone needs at least one");
        let pos = firsts.at(ex, g, origin, SOA);
        out.push(ex.diag(pos, msg).key(format!("{origin} NS")));
    }
    out
}

/// Whether the wire name `key` is `apex` or below it.
fn under(key: &[u8], apex: &[u8]) -> bool {
    let mut at = 0;
    loop {
        if key.get(at..) == Some(apex) {
            return true;
        }
        match key.get(at) {
            Some(&len) if len > 0 => at += 1 + usize::from(len),
            _ => return false,
        }
    }
}
