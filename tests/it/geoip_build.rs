//! `gslbd geoip build` and the fixture it made: the committed `geoip/sample.mmdb` must be
//! exactly what the build makes from `geoip/sample.csv` (so the two cannot drift apart),
//! it must answer the networks the docs and examples rely on, and Debian's C reader
//! (`mmdblookup`, package mmdb-bin) must read it as it reads MaxMind's own files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::gslbd_bin;

/// The build time of the committed sample (2026-01-01T00:00:00Z), as documented in
/// geoip/sample.csv and geoip/README.md.
const SAMPLE_EPOCH: u64 = 1_767_225_600;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn committed_sample() -> Vec<u8> {
    std::fs::read(repo("geoip/sample.mmdb")).expect("geoip/sample.mmdb is committed")
}

#[test]
fn committed_sample_mmdb_matches_its_csv() {
    let csv = std::fs::read_to_string(repo("geoip/sample.csv")).unwrap();
    let built = gslbd::geoip_build::build_bytes(&csv, Path::new("geoip/sample.csv"), SAMPLE_EPOCH)
        .unwrap_or_else(|e| panic!("geoip/sample.csv does not build:\n{e}"));
    // assert! rather than assert_eq!: a diff of two byte vectors helps nobody.
    assert!(
        built == committed_sample(),
        "geoip/sample.mmdb is not what geoip/sample.csv builds; rebuild it with\n  \
         SOURCE_DATE_EPOCH={SAMPLE_EPOCH} cargo run -- geoip build --csv geoip/sample.csv --out geoip/sample.mmdb"
    );
}

#[test]
fn sample_answers_the_documented_networks() {
    let reader = maxminddb::Reader::from_source(committed_sample()).unwrap();
    // (address, matched network, country, subdivision): what README examples, example
    // configs and `dig +subnet=` lines may rely on.
    let table = [
        ("81.2.69.160", "81.2.69.0/24", "GB", Some("ENG")),
        ("81.2.1.1", "81.2.0.0/18", "GB", None),
        ("2a02:d3c0::1", "2a02:d3c0::/29", "GB", None),
        ("1.0.16.1", "1.0.16.0/24", "JP", Some("13")),
        ("2001:218::1", "2001:218::/32", "JP", None),
        ("8.8.8.8", "8.8.8.0/24", "US", Some("CA")),
        ("2001:480::1", "2001:480::/32", "US", None),
        ("216.160.83.60", "216.160.83.56/29", "US", Some("WA")),
        ("103.1.1.1", "103.1.1.0/24", "AU", Some("NSW")),
        ("41.0.0.1", "41.0.0.0/24", "ZA", None),
        ("200.160.0.1", "200.160.0.0/20", "BR", Some("SP")),
        ("175.16.199.1", "175.16.199.0/24", "CN", None),
        ("89.160.20.130", "89.160.20.128/25", "SE", None),
        ("192.0.2.1", "192.0.2.0/24", "US", Some("VA")),
        ("198.51.100.1", "198.51.100.0/24", "DE", Some("HE")),
        ("203.0.113.1", "203.0.113.0/24", "IN", Some("MH")),
        ("2001:db8:1::1", "2001:db8:1::/48", "US", None),
        ("2001:db8:2::1", "2001:db8:2::/48", "DE", None),
        ("2001:db8:3::1", "2001:db8:3::/48", "IN", None),
        ("2001:db8:4::1", "2001:db8:4::/48", "AU", None),
    ];
    for (ip, net, country, sub) in table {
        let res = reader.lookup(ip.parse::<IpAddr>().unwrap()).unwrap();
        let city = res.decode::<maxminddb::geoip2::City>().unwrap();
        let city = city.unwrap_or_else(|| panic!("{ip}: no data"));
        assert_eq!(res.network().unwrap().to_string(), net, "{ip}");
        assert_eq!(city.country.iso_code, Some(country), "{ip}");
        assert_eq!(
            city.subdivisions.first().and_then(|s| s.iso_code),
            sub,
            "{ip}"
        );
    }
    // Loopback and private clients are "not in the DB", so rules' defaults apply to them.
    for ip in ["127.0.0.1", "::1", "10.0.0.1", "192.168.1.1"] {
        let res = reader.lookup(ip.parse::<IpAddr>().unwrap()).unwrap();
        assert!(!res.has_data(), "{ip} must not be in the sample");
    }
}

#[test]
fn mmdblookup_reads_the_sample() {
    if Command::new("mmdblookup")
        .arg("--version")
        .output()
        .is_err()
    {
        // CI installs mmdb-bin (.ci/run), so there a missing tool is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "mmdblookup is missing (apt-get install mmdb-bin)"
        );
        println!("skipped: mmdblookup is not installed (apt-get install mmdb-bin)");
        return;
    }
    let lookup = |ip: &str| {
        let out = Command::new("mmdblookup")
            .arg("--file")
            .arg(repo("geoip/sample.mmdb"))
            .args(["--ip", ip, "country", "iso_code"])
            .output()
            .expect("run mmdblookup");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), text)
    };
    for (ip, country) in [("81.2.69.160", "GB"), ("2001:218::1", "JP")] {
        let (ok, stdout) = lookup(ip);
        assert!(
            ok && stdout.contains(&format!("\"{country}\"")),
            "{ip}: {stdout}"
        );
    }
    let (found, _) = lookup("127.0.0.1");
    assert!(!found, "127.0.0.1 must not be in the sample");
}

/// The command users run: it rebuilds the committed sample exactly, and on bad rows
/// reports each one, exits 2 and writes nothing.
#[test]
fn cli_rebuilds_the_sample_and_reports_every_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample.mmdb");
    let run = |csv: &Path| {
        Command::new(gslbd_bin())
            .args(["geoip", "build", "--csv"])
            .arg(csv)
            .arg("--out")
            .arg(&out)
            .env("SOURCE_DATE_EPOCH", SAMPLE_EPOCH.to_string())
            .output()
            .expect("run gslbd geoip build")
    };
    let ok = run(&repo("geoip/sample.csv"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        std::fs::read(&out).unwrap() == committed_sample(),
        "CLI output differs from the committed sample"
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "10.0.0.1/8,EU,GB,,,\n192.0.2.0/24,EU,gb,,,\n").unwrap();
    std::fs::remove_file(&out).unwrap();
    let failed = run(&bad);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    let b = bad.display();
    assert!(
        stderr.contains(&format!(
            "{b}:1: network \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{b}:2: country \"gb\" must be two upper-case letters"
        )),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written when the CSV has errors");
}
