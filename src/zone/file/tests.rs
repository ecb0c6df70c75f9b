//! Tests of zone file loading: positions, checks, `$INCLUDE`, `load_dir`.

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
    z.line(&Name::from_str(name).unwrap(), ty)
}

#[test]
fn good_zone_loads_with_records_and_lines() {
    let text = "; the GSLB zone\n$ORIGIN gslb.example.com.\n$TTL 1h\n\
        @ IN SOA ns1 hostmaster.example.com. (\n  2024010101 ; serial\n  3600 600 86400 60 )\n\
        \x20 IN NS ns1\n\tNS ns2.example.net.\nns1 300 IN A 192.0.2.1\nwww IN 60 A 192.0.2.10\n\
        \x20   AAAA 2001:db8::10\ntxt TXT \"v=1; a (b\" \"c\\\"d\"\n$ORIGIN sub\nx CNAME www\n";
    let z = parse(text).unwrap();
    let records = z.records();
    assert_eq!((&z.origin, records.len()), (&origin(), 8));
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
    let find = |ty| records.iter().find(|r| r.record_type() == ty).unwrap();
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
    let main = format!("{HEAD}$INCLUDE common.inc\nmail A 192.0.2.9\n$INCLUDE \"sub.inc\" sub\n");
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

#[test]
fn ttls_of_2_pow_31_and_more_are_refused() {
    // RFC 2181 §8: 0..2^31-1; the largest allowed loads as written.
    let z = parse(&format!("{HEAD}max 2147483647 A 192.0.2.2\n")).unwrap();
    let max = z
        .records()
        .into_iter()
        .find(|r| r.name.to_string().starts_with("max"));
    assert_eq!(max.map(|r| r.ttl), Some(2_147_483_647));
    let e = fails(
        &format!("{HEAD}big 2147483648 A 192.0.2.2\n"),
        "gslb.example.com.zone:5: ",
    );
    assert!(e.contains("TTL must be 0..2147483647"), "{e}");
    fails(
        &format!("{HEAD}big IN 4294967295 A 192.0.2.2\n"),
        ":5: TTL 4294967295",
    );
    fails(
        &format!("{HEAD}  3000000000 AAAA ::1\n"),
        ":5: TTL 3000000000",
    );
    fails(
        &format!("$TTL 2147483648\n{}", &HEAD[9..]),
        ":1: $TTL 2147483648",
    );
}

/// hickory reads a TTL it cannot parse as the record type: `record type string unknown:
/// -5`. Each is reported as the TTL it is meant to be.
#[test]
fn invalid_ttls_say_the_ttl_is_invalid_and_why() {
    for (ttl, why) in [
        (
            "-5",
            "TTL -5 is negative: RFC 2181 §8: a TTL must be 0..2147483647",
        ),
        (
            "99999999999",
            "TTL 99999999999 is out of range: RFC 2181 §8: a TTL must be 0..2147483647",
        ),
        (
            "1y",
            "TTL 1y is not a TTL: expected seconds (300) or a duration with the units s, m, h, d, w (1h30m)",
        ),
    ] {
        for text in [
            format!("{HEAD}www {ttl} IN A 192.0.2.2\n"),
            format!("{HEAD}www IN {ttl} A 192.0.2.2\n"),
        ] {
            let e = fails(&text, why);
            assert!(e.contains(":5: "), "{e}");
            assert!(!e.contains("record type"), "{e}");
        }
        let e = fails(&format!("$TTL {ttl}\n{}", &HEAD[9..]), why);
        assert!(e.contains(&format!(":1: $TTL {ttl}: ")), "{e}");
    }
}

#[test]
fn chunks_parse_as_the_whole_file_does() {
    // The unit tests cut chunks of two entries: owners stated once for several lines,
    // TTLs carried from the last record before any $TTL, the same RRset spread over
    // chunks with duplicates and changed TTLs, names in mixed case, and a line with an
    // owner and a TTL but no type (hickory gives that TTL to the next record) must all
    // come out as hickory makes them of the whole file.
    let text = "$ORIGIN gslb.example.com.\n@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60\n\
        @ NS ns1\nns1 A 192.0.2.1\na 60 A 192.0.2.2\n  A 192.0.2.3\n  TXT \"t\"\nb A 192.0.2.4\n\
        a A 192.0.2.2\na 120 A 192.0.2.3\nMixed TXT \"x\"\nmixed TXT \"y\"\n$TTL 300\n\
        c A 192.0.2.5\nc IN AAAA ::1\nd IN 30 MX 10 mail\nmail A 192.0.2.6\n\
        $ORIGIN sub.gslb.example.com.\ne A 192.0.2.7\na.gslb.example.com. A 192.0.2.9\n\
        MIXED.gslb.example.com. 5 TXT \"z\"\nf 77\ng A 192.0.2.10\nh A 192.0.2.11\n";
    type Sets = std::collections::BTreeMap<(LowerName, RecordType), Vec<String>>;
    let by_set = |records: Vec<Record>| {
        let mut sets = Sets::new();
        for r in records {
            let key = (LowerName::new(&r.name), r.record_type());
            let shown = format!("{} {} {}", r.name, r.ttl, r.data);
            sets.entry(key).or_default().push(shown);
        }
        sets
    };
    let (_, map) = hickory_proto::serialize::txt::Parser::new(text, None, Some(origin()))
        .parse()
        .unwrap();
    let whole = by_set(map.into_values().flat_map(|s| s.into_iter()).collect());
    let z = parse(text).unwrap();
    assert_eq!(by_set(z.records()), whole);
    assert_eq!(whole.len(), 14, "{whole:#?}");
    assert_eq!(line(&z, "a.gslb.example.com.", RecordType::A), Some(5));
    assert_eq!(
        line(&z, "mixed.gslb.example.com.", RecordType::TXT),
        Some(11)
    );
}

#[test]
fn owners_without_records_do_not_become_nodes() {
    // Should the expander ever name an owner that hickory gives no record, that owner
    // must not become an empty node (it would answer NODATA instead of NXDOMAIN).
    let z = parse(&format!("{HEAD}www A 192.0.2.9\n")).unwrap();
    let mut nodes = z.nodes.clone();
    let ghost =
        nodes.index_or_insert_with(b"\x05ghost\x04gslb\x07example\x03com\x00", Node::default);
    let www = z
        .nodes
        .index_of(Key::of(&Name::from_str("www.gslb.example.com.").unwrap()).bytes());
    let www = www.unwrap() as u32;
    let mut firsts = Firsts {
        firsts: vec![(www, 1, 4), (ghost as u32, 1, 5)],
        second_cnames: vec![(ghost as u32, 6, 5)],
    };
    let g = firsts.without_phantoms(Gathered {
        nodes,
        store: z.store.clone(),
    });
    assert_eq!(g.nodes.len(), z.nodes.len());
    assert!(
        g.nodes
            .get(b"\x05ghost\x04gslb\x07example\x03com\x00")
            .is_none()
    );
    let www2 = g
        .nodes
        .index_of(Key::of(&Name::from_str("www.gslb.example.com.").unwrap()).bytes());
    assert_eq!(firsts.firsts, [(www2.unwrap() as u32, 1, 4)]);
    assert!(firsts.second_cnames.is_empty());
}
