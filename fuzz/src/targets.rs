//! The bodies of the fuzz targets, as plain functions: `fuzz_targets/*.rs` call them
//! from `fuzz_target!`, and `tests/replay.rs` runs the seeds and the saved regressions
//! through them with a plain `cargo test` (no libFuzzer, no nightly).
//!
//! Each panics when an input breaks what it checks; a return is a pass.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gslbd::model::Model;
use gslbd::snapshot::Snapshot;
use gslbd::zone::file::{ZoneFile, parse_zone};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::{answer_and_check, fixture, query_bytes};

/// bytes -> `gslbd::server::answer_datagram` on the fixture deployment
/// ([`fixture::request`]): no panic, and the reply keeps every invariant of
/// [`crate::invariants`] (size within the UDP limit, parses, QR=1, same ID, ...); and
/// whenever the query fast path answers it, the general path answers the same
/// ([`crate::compare::same_reply`]). The datagram's ID also picks the health state and
/// the source address.
///
/// With `GSLBD_FUZZ_SKIP_KNOWN` set, datagrams that trigger a reported, unfixed bug
/// ([`crate::invariants::known_issue`]) are answered but not checked, so that a run is
/// not stopped by a bug already known.
pub fn request(data: &[u8]) {
    let fx = fixture::request();
    let pick = fx.pick(data);
    let mut out = Vec::new();
    if skip_known() && crate::invariants::known_issue(data).is_some() {
        gslbd::server::answer_datagram(data, pick.src, pick.state, &mut out);
        return;
    }
    answer_and_check(data, pick.src, pick.state, pick.rate_limited, &mut out);
    if !pick.rate_limited {
        // Differential: a reply of the fast path must be the general path's reply (the
        // rate-limited states are left out: each path would take its own tokens).
        let snap = pick.state.load();
        let rnd = data.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01B3)
        });
        let mut fast = Vec::new();
        if gslbd::fast::answer(data, pick.src, &snap, false, rnd, || 0, &mut fast) {
            let mut general = Vec::new();
            gslbd::server::answer_general(data, pick.src, &snap, false, rnd, &mut general);
            if let Err(e) = crate::compare::same_reply(&fast, &general) {
                panic!(
                    "fast and general paths differ: {e}\nquery: {}",
                    crate::hex(data)
                );
            }
        }
    }
}

fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var_os("GSLBD_FUZZ_SKIP_KNOWN").is_some())
}

/// The repo's example zone and the fixture zones: the names the config seeds use.
fn served_zones() -> &'static [ZoneFile] {
    static ZONES: OnceLock<Vec<ZoneFile>> = OnceLock::new();
    ZONES.get_or_init(|| {
        let zone = |text: &str, origin: &str| {
            let origin = Name::from_ascii(origin).unwrap();
            let path = format!("zones/{origin}zone");
            parse_zone(text, Path::new(&path), &origin).unwrap_or_else(|e| panic!("{e}"))
        };
        vec![
            zone(
                include_str!("../../zones/gslb.example.com.zone"),
                "gslb.example.com.",
            ),
            zone(&fixture::zone_text(), "gslb.test."),
            zone(fixture::ZONE2, "second.test."),
        ]
    })
}

/// bytes (UTF-8, else skipped) -> `gslbd::config::parse(text, "gslb.toml")`: no panic;
/// every error starts with `gslb.toml:`, with a line inside the text and a column only
/// next to a line. A config that loads is then served: a snapshot with the example and
/// fixture zones and the fixture GeoIP DB, and A, AAAA and ANY queries for its first four
/// dynamic names through `answer_datagram`, checked like [`request`]'s replies.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("gslb.toml");
    let model = match gslbd::config::parse(text, file) {
        Ok(model) => model,
        Err(diags) => {
            assert!(!diags.is_empty(), "an error without diagnostics");
            let last_line = text.matches('\n').count() + 1;
            for d in &diags.0 {
                let shown = d.to_string();
                assert!(
                    shown.starts_with("gslb.toml:"),
                    "error does not start with the file: {shown}"
                );
                assert_eq!(d.file, file, "{shown}");
                if let Some(line) = d.line {
                    assert!(
                        (1..=last_line).contains(&line),
                        "line {line} of {last_line}: {shown}"
                    );
                }
                if let Some(col) = d.col {
                    assert!(
                        col >= 1 && d.line.is_some(),
                        "column {col} without a line: {shown}"
                    );
                }
            }
            return;
        }
    };
    assert_eq!(model.file, file);
    // Serve it: whatever validation let through must not break the query path.
    let names: Vec<String> = (model.records.iter().take(4))
        .map(|r| r.name.clone())
        .collect();
    let Ok(mut snap) = Snapshot::build(model, served_zones().to_vec()) else {
        return;
    };
    snap.geo = Some(fixture::geo());
    let state = snap.into_shared();
    let sources = &fixture::request().sources;
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Ok(name) = Name::from_ascii(name.replacen('*', "w", 1)) else {
            continue;
        };
        let types = [RecordType::A, RecordType::AAAA, RecordType::ANY];
        for (j, rtype) in types.into_iter().enumerate() {
            let payload = (j == 1).then_some(1232);
            let q = query_bytes((i * 3 + j) as u16, &name, rtype, payload);
            let src = sources[(i * 5 + j) % sources.len()];
            answer_and_check(&q, src, &state, false, &mut out);
        }
    }
}

fn origin() -> &'static Name {
    static ORIGIN: OnceLock<Name> = OnceLock::new();
    ORIGIN.get_or_init(|| Name::from_ascii("fuzz.test.").unwrap())
}

/// `fuzz/target/fixtures/zone/zones/fuzz.test.zone`, in [`fixture::zone_dir`].
pub fn zone_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| fixture::zone_dir().join("fuzz.test.zone"))
}

/// An empty config: the zone alone.
fn empty_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| gslbd::config::parse("", Path::new("gslb.toml")).unwrap())
}

/// bytes (UTF-8, else skipped) -> `gslbd::zone::file::parse_zone(text, zone_path(),
/// "fuzz.test.")`: no panic; every error names the zone file or a file inside its zones
/// folder (so `$INCLUDE` never reached outside it) and starts with that name; a zone that
/// loads holds only class-IN records at or below `fuzz.test.` and is served: a snapshot
/// of it alone, and queries for the apex SOA and its first names through
/// `answer_datagram`, checked like [`request`]'s replies.
pub fn zone(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = fixture::zone_dir();
    let path = zone_path();
    let zone = match parse_zone(text, path, origin()) {
        Ok(zone) => zone,
        Err(diags) => {
            assert!(!diags.is_empty(), "an error without diagnostics");
            for d in &diags.0 {
                let shown = d.to_string();
                assert!(
                    &d.file == path || d.file.starts_with(dir),
                    "error names a file outside the zones folder: {shown}"
                );
                assert!(
                    shown.starts_with(&d.file.display().to_string()),
                    "error does not start with the file: {shown}"
                );
                assert!(d.line != Some(0), "line 0: {shown}");
            }
            return;
        }
    };
    assert_eq!(&zone.path, path);
    for r in &zone.records() {
        assert!(origin().zone_of(&r.name), "out-of-zone record loaded: {r}");
        assert_eq!(r.dns_class, DNSClass::IN, "non-IN record loaded: {r}");
    }
    // Serve it.
    let mut asked: BTreeSet<(Name, RecordType)> = BTreeSet::new();
    asked.insert((origin().clone(), RecordType::SOA));
    for r in &zone.records() {
        if asked.len() >= 5 {
            break;
        }
        asked.insert((r.name.clone(), r.record_type()));
    }
    let Ok(snap) = Snapshot::build(empty_model().clone(), vec![zone]) else {
        return;
    };
    let state = snap.into_shared();
    let src = "192.0.2.99:5300".parse().unwrap();
    let mut out = Vec::new();
    for (i, (name, rtype)) in asked.iter().enumerate() {
        let payload = (i % 2 == 1).then_some(1232);
        let q = query_bytes(i as u16, name, *rtype, payload);
        answer_and_check(&q, src, &state, false, &mut out);
    }
}
