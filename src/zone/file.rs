//! Reads `zones/*.zone` master files into checked [`ZoneFile`]s. hickory-proto's
//! parser does the RDATA work; around it this module adds what an operator needs:
//! every error names `file:line` (found with the splitter in `lines.rs`, since
//! hickory reports no positions), `$INCLUDE` is confined to the zones folder, and
//! the zone is checked (one SOA and NS at the apex, nothing out of zone, CNAME
//! exclusivity, class IN only, no DNAME).
//!
//! `$INCLUDE` is expanded by `lines.rs`, not by hickory: the included text is
//! spliced in place of the directive, so hickory never opens a file and every
//! spliced entry keeps its own file and line for errors.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use crate::diag::{Diagnostic, Diagnostics};

#[path = "lines.rs"]
mod lines;

use lines::{At, Expander};

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
    let text = fs::read_to_string(path)
        .map_err(|e| Diagnostic::new(path, format!("cannot read zone file: {e}")))?;
    parse_zone(&text, path, &origin)
}

/// Parses and checks zone text as if read from `path` (which names the file in
/// errors and whose folder bounds `$INCLUDE`), with `origin` as the apex.
pub fn parse_zone(text: &str, path: &Path, origin: &Name) -> Result<ZoneFile, Diagnostics> {
    let mut origin = origin.clone();
    origin.set_fqdn(true);
    let mut ex = lines::expand(text, path, &origin);
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

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::RData;

    use super::*;

    const HEAD: &str =
        "$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\n";
    const FILE: &str = "zones/gslb.example.com.zone";

    fn origin() -> Name {
        Name::from_str("gslb.example.com.").unwrap()
    }

    fn parse(text: &str) -> Result<ZoneFile, Diagnostics> {
        parse_zone(text, Path::new(FILE), &origin())
    }

    /// Asserts that `text` fails to load with an error containing `want`.
    fn fails(text: &str, want: &str) -> String {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(want), "want {want:?} in:\n{e}");
        e
    }

    fn line(z: &ZoneFile, name: &str, ty: RecordType) -> Option<usize> {
        z.lines
            .get(&(LowerName::from_str(name).unwrap(), ty))
            .copied()
    }

    #[test]
    fn good_zone_loads_with_records_and_lines() {
        let text = "; the GSLB zone\n$ORIGIN gslb.example.com.\n$TTL 1h\n\
            @ IN SOA ns1 hostmaster.example.com. (\n  2024010101 ; serial\n  3600 600 86400 60 )\n\
            \x20 IN NS ns1\n\tNS ns2.example.net.\nns1 300 IN A 192.0.2.1\nwww IN 60 A 192.0.2.10\n\
            \x20   AAAA 2001:db8::10\ntxt TXT \"v=1; a (b\" \"c\\\"d\"\n$ORIGIN sub\nx CNAME www\n";
        let z = parse(text).unwrap();
        assert_eq!((&z.origin, z.records.len()), (&origin(), 8));
        let want = [
            ("gslb.example.com.", RecordType::SOA, 4),
            ("gslb.example.com.", RecordType::NS, 7),
            ("ns1.gslb.example.com.", RecordType::A, 9),
            ("www.gslb.example.com.", RecordType::A, 10),
            ("www.gslb.example.com.", RecordType::AAAA, 11),
            ("txt.gslb.example.com.", RecordType::TXT, 12),
            ("x.sub.gslb.example.com.", RecordType::CNAME, 14),
        ];
        for (name, ty, n) in want {
            assert_eq!(line(&z, name, ty), Some(n), "{name} {ty}");
        }
        let find = |ty| z.records.iter().find(|r| r.record_type() == ty).unwrap();
        assert_eq!(
            (find(RecordType::SOA).ttl, find(RecordType::A).ttl),
            (3600, 300)
        );
        let RData::TXT(txt) = &find(RecordType::TXT).data else {
            panic!()
        };
        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
        assert_eq!(strings, [&b"v=1; a (b"[..], b"c\"d"]);
        let RData::CNAME(target) = &find(RecordType::CNAME).data else {
            panic!()
        };
        assert_eq!(target.0.to_string(), "www.sub.gslb.example.com.");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = fails(
            &format!("{HEAD}\n; comment\nwww IN A 999.1.1.1\nok A 192.0.2.2\n"),
            ":7: ",
        );
        assert!(
            e.starts_with(&format!("{FILE}:7: network address parse error")),
            "{e}"
        );
        fails(
            &format!("{HEAD}x IN TXT ( a\n b )\ny IN FOO 1.2.3.4\n"),
            ":7: proto error",
        );
        fails(
            &format!("{HEAD}@ SOA ns1 h ( 2 3600\n 600 86400 60 )\n"),
            ":5: SOA is already",
        );
        fails(
            "$TTL 300\n$ORIGIN\n",
            ":2: expected `$ORIGIN NAME` on one line",
        );
        fails("$FOO x\n", ":1: unknown directive $FOO");
    }

    #[test]
    fn splitter_errors_name_the_line() {
        let e = fails(&format!("{HEAD}t TXT \"open\nx A 192.0.2.1\n"), ":5: ");
        assert_eq!(e, format!("{FILE}:5: unterminated quoted string"));
        let e = fails(&format!("{HEAD}@ MX ( 10\n mx\n"), ":5: ");
        assert_eq!(e, format!("{FILE}:5: '(' is never closed"));
        fails(
            &format!("{HEAD}\n@ MX 10 mx )\n"),
            ":6: ')' without a matching '('",
        );
        fails(&format!("{HEAD}@ MX ( 10\n ( mx )\n"), ":6: nested '('");
        fails(
            &format!("{HEAD}t TXT ( \"a b\" )\n"),
            ":5: quoted string inside parentheses",
        );
    }

    #[test]
    fn soa_and_ns_rules() {
        for text in ["", "; only a comment\n\n", "$TTL 60\n"] {
            let e = fails(text, "no SOA");
            assert_eq!(e, format!("{FILE}: no SOA record: the file has no records"));
        }
        fails(
            "$TTL 300\n@ NS ns1\n",
            "no SOA record; the zone gslb.example.com. needs one",
        );
        let e = fails(
            "$TTL 300\n@ NS ns1\nsub SOA ns1 h 1 2 3 4 5\n",
            ":3: sub.gslb.example.com. SOA: ",
        );
        assert!(e.contains("SOA at sub.gslb.example.com. but the file name makes the zone gslb"));
        let e = fails(
            "$TTL 300\n\n@ SOA ns1 h 1 2 3 4 5\nwww A 192.0.2.1\n",
            "no NS",
        );
        let want = "gslb.example.com. NS: no NS record at the apex gslb.example.com.";
        assert!(e.starts_with(&format!("{FILE}:3: {want}")), "{e}");
    }

    #[test]
    fn out_of_zone_class_and_dname() {
        let e = fails(
            &format!("{HEAD}x.org. A 192.0.2.1\nch CH A 192.0.2.1\nold DNAME new\n"),
            "",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        assert!(
            lines[0].contains(":5: x.org. A: x.org. is outside the zone"),
            "{e}"
        );
        assert!(lines[1].contains(":6: ch.gslb.example.com. A: class CH is not supported"));
        assert!(lines[2].contains(":7: old.gslb.example.com. DNAME: DNAME records are not"));
    }

    #[test]
    fn cname_rules() {
        let w = ":5: www.gslb.example.com. CNAME: CNAME and other data (A)";
        fails(
            &format!("{HEAD}www CNAME a.example.net.\nwww A 192.0.2.9\n"),
            w,
        );
        let w = ":6: www.gslb.example.com. CNAME: a second CNAME (first at line 5)";
        fails(
            &format!("{HEAD}www CNAME a.example.net.\nwww CNAME b.example.net.\n"),
            w,
        );
        fails(
            &format!("{HEAD}@ CNAME a.example.net.\n"),
            ":5: gslb.example.com. CNAME: CNAME at the zone apex",
        );
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn include_stays_inside_the_zones_folder() {
        let dir = tempfile::tempdir().unwrap();
        let zones = dir.path().join("zones");
        fs::create_dir(&zones).unwrap();
        write(dir.path(), "secret.inc", "x A 192.0.2.1\n");
        write(&zones, "loop.inc", "$INCLUDE loop.inc\n");
        for (inc, want) in [
            (
                "/etc/passwd",
                ":5: $INCLUDE /etc/passwd: only files inside the zones folder",
            ),
            (
                "../secret.inc",
                ":5: $INCLUDE ../secret.inc: only files inside the zones folder",
            ),
            ("missing.inc", ":5: $INCLUDE missing.inc: No such file"),
            ("loop.inc", "loop.inc:1: $INCLUDE loop.inc: includes itself"),
        ] {
            let p = write(
                &zones,
                "gslb.example.com.zone",
                &format!("{HEAD}$INCLUDE {inc}\n"),
            );
            let e = load_file(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{inc}: {e}");
        }
    }

    #[test]
    fn include_of_a_sibling_file_works() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "common.inc",
            "; shared\nwww A 192.0.2.7\n$ORIGIN elsewhere.\n",
        );
        write(dir.path(), "sub.inc", "host A 192.0.2.8\n");
        let main =
            format!("{HEAD}$INCLUDE common.inc\nmail A 192.0.2.9\n$INCLUDE \"sub.inc\" sub\n");
        let p = write(dir.path(), "gslb.example.com.zone", &main);
        let z = load_file(&p).unwrap();
        assert_eq!(line(&z, "www.gslb.example.com.", RecordType::A), Some(5));
        // RFC 1035 §5.1: the included file's $ORIGIN does not leak back.
        assert_eq!(line(&z, "mail.gslb.example.com.", RecordType::A), Some(6));
        assert_eq!(
            line(&z, "host.sub.gslb.example.com.", RecordType::A),
            Some(7)
        );
        // Errors inside an included file name that file and its own line.
        write(dir.path(), "common.inc", "; shared\nwww A 300.0.0.1\n");
        let e = load_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("common.inc:2: network address parse error"),
            "{e}"
        );
    }

    #[test]
    fn load_dir_sorts_skips_and_rejects_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_dir(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope: cannot read zones folder"), "{e}");
        write(dir.path(), "README", "not a zone");
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no zone files (*.zone) in"), "{e}");

        write(dir.path(), "b.example.zone", HEAD);
        write(dir.path(), "a.example.zone", HEAD);
        let zones = load_dir(dir.path()).unwrap();
        let names: Vec<String> = zones.iter().map(|z| z.origin.to_string()).collect();
        assert_eq!(names, ["a.example.", "b.example."]);

        write(dir.path(), "A.Example.zone", HEAD);
        let e = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("a.example.zone: zone a.example. is also loaded from"),
            "{e}"
        );
        assert!(e.contains("A.Example.zone"), "{e}");
    }
}
