//! Unit tests for `gslbd geoip build`: CSV parsing and its errors, and the written
//! database read back through the `maxminddb` crate, as gslbd's GeoIP reader reads it.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};

use super::*;

const EPOCH: u64 = 1_767_225_600;

fn db(csv: &str) -> Reader<Vec<u8>> {
    let bytes = build_bytes(csv, Path::new("t.csv"), EPOCH).expect("valid CSV");
    Reader::from_source(bytes).expect("readable MMDB")
}

fn errors(csv: &str) -> Vec<String> {
    let err = build_bytes(csv, Path::new("t.csv"), EPOCH).expect_err("invalid CSV");
    err.0.iter().map(ToString::to_string).collect()
}

/// Continent, country, subdivision and (lat, lon) of a record.
type Geo = (String, String, Option<String>, Option<(f64, f64)>);

/// What a lookup found: the matched network, and the record unless there is no data.
#[derive(Debug, PartialEq)]
struct Found {
    net: String,
    geo: Option<Geo>,
}

fn find(r: &Reader<Vec<u8>>, ip: &str) -> Found {
    let res = r.lookup(ip.parse::<IpAddr>().unwrap()).unwrap();
    let net = res.network().unwrap().to_string();
    let geo = res.decode::<geoip2::City>().unwrap().map(|c| {
        let coords = c.location.latitude.zip(c.location.longitude);
        (
            c.continent.code.unwrap().to_owned(),
            c.country.iso_code.unwrap().to_owned(),
            c.subdivisions
                .first()
                .map(|s| s.iso_code.unwrap().to_owned()),
            coords,
        )
    });
    Found { net, geo }
}

fn hit(net: &str, cont: &str, cc: &str, sub: Option<&str>, c: Option<(f64, f64)>) -> Found {
    let geo = Some((cont.into(), cc.into(), sub.map(Into::into), c));
    Found {
        net: net.into(),
        geo,
    }
}

const CSV: &str = "\
# a comment, then a blank line

81.2.69.0/24,EU,GB,GB-ENG,51.51,-0.09
2001:218::/32,AS,JP,,,
  8.8.8.0/24 , NA , US , US-CA , 37.39 , -122.08
2001:db8:4::/48,OC,AU,AU-NSW,-33.87,151.21
";

#[test]
fn rows_decode_as_geolite2_city_with_their_prefix() {
    let r = db(CSV);
    let london = Some((51.51, -0.09));
    assert_eq!(
        find(&r, "81.2.69.160"),
        hit("81.2.69.0/24", "EU", "GB", Some("ENG"), london)
    );
    assert_eq!(
        find(&r, "2001:218::1"),
        hit("2001:218::/32", "AS", "JP", None, None)
    );
    let mtv = Some((37.39, -122.08));
    assert_eq!(
        find(&r, "8.8.8.8"),
        hit("8.8.8.0/24", "NA", "US", Some("CA"), mtv)
    );
    let syd = Some((-33.87, 151.21));
    let au = hit("2001:db8:4::/48", "OC", "AU", Some("NSW"), syd);
    assert_eq!(find(&r, "2001:db8:4:ffff::1"), au);
}

#[test]
fn ipv4_rows_answer_ipv4_mapped_queries_too() {
    let r = db(CSV);
    // The reader reports the mapped form's own (IPv6) network; the data is the IPv4 row's.
    let found = find(&r, "::ffff:81.2.69.160");
    assert_eq!(found.net, "::ffff:81.2.69.0/120");
    assert_eq!(found.geo, find(&r, "81.2.69.160").geo);
}

#[test]
fn uncovered_addresses_have_no_data_but_a_covering_network() {
    let r = db(CSV);
    for ip in ["10.0.0.1", "127.0.0.1", "81.2.70.1", "::1", "2001:db8:5::1"] {
        let res = r.lookup(ip.parse::<IpAddr>().unwrap()).unwrap();
        assert!(!res.has_data(), "{ip}");
        let net = res.network().unwrap();
        assert!(net.contains(ip.parse().unwrap()), "{ip} not in {net}");
    }
    // The widest empty block around the address (8.0.0.0/7 holds 8.8.8.0/24): the ECS
    // scope for a "no data" answer.
    assert_eq!(find(&r, "10.0.0.1").net, "10.0.0.0/7");
}

#[test]
fn more_specific_rows_override_whatever_the_csv_order() {
    let specific_first = "10.1.0.0/16,EU,DE,,,\n10.0.0.0/8,NA,US,,,\n2001:db8::/32,NA,US,,,\n2001:db8:1::/48,AS,JP,,,\n";
    let general_first = "2001:db8:1::/48,AS,JP,,,\n10.0.0.0/8,NA,US,,,\n2001:db8::/32,NA,US,,,\n10.1.0.0/16,EU,DE,,,\n";
    for csv in [specific_first, general_first] {
        let r = db(csv);
        assert_eq!(
            find(&r, "10.1.2.3"),
            hit("10.1.0.0/16", "EU", "DE", None, None)
        );
        assert_eq!(
            find(&r, "2001:db8:1::1"),
            hit("2001:db8:1::/48", "AS", "JP", None, None)
        );
        // Where a specific row cuts into a general one, an address beside it matches the
        // largest block around it that holds only the general row's data: narrower than
        // the row (10.2.0.0/15, not 10.0.0.0/8), which is the right ECS scope.
        assert_eq!(
            find(&r, "10.2.0.1"),
            hit("10.2.0.0/15", "NA", "US", None, None)
        );
        assert_eq!(
            find(&r, "10.200.0.1"),
            hit("10.128.0.0/9", "NA", "US", None, None)
        );
        assert_eq!(
            find(&r, "2001:db8:8000::1"),
            hit("2001:db8:8000::/33", "NA", "US", None, None)
        );
    }
    let a = build_bytes(specific_first, Path::new("a"), EPOCH).unwrap();
    let b = build_bytes(general_first, Path::new("b"), EPOCH).unwrap();
    assert_eq!(a, b, "row order must not change the output");
}

#[test]
fn neighbours_with_identical_data_merge_into_one_network() {
    let r = db("192.0.2.0/25,EU,DE,,,\n192.0.2.128/25,EU,DE,,,\n");
    assert_eq!(
        find(&r, "192.0.2.200"),
        hit("192.0.2.0/24", "EU", "DE", None, None)
    );
}

#[test]
fn same_csv_and_epoch_give_identical_bytes() {
    let a = build_bytes(CSV, Path::new("a.csv"), EPOCH).unwrap();
    let b = build_bytes(CSV, Path::new("elsewhere/b.csv"), EPOCH).unwrap();
    assert_eq!(a, b);
    let later = build_bytes(CSV, Path::new("a.csv"), EPOCH + 1).unwrap();
    assert_ne!(a, later);
}

#[test]
fn metadata_says_geolite2_city_ipv6_english() {
    let r = db(CSV);
    let m = r.metadata();
    assert_eq!(m.database_type, "GeoLite2-City");
    assert_eq!(m.ip_version, 6);
    assert_eq!(m.record_size, 24);
    assert_eq!(m.binary_format_major_version, 2);
    assert_eq!(m.build_epoch, EPOCH);
    assert_eq!(m.languages, ["en"]);
    assert!(m.description["en"].contains("gslbd geoip build"));
}

#[test]
fn header_comments_blank_lines_and_crlf_are_accepted() {
    let plain = "81.2.69.0/24,EU,GB,GB-ENG,51.51,-0.09\n";
    let headed = "# x\r\n\r\nnetwork,continent,country,subdivision,lat,lon\r\n81.2.69.0/24,EU,GB,GB-ENG,51.51,-0.09\r\n";
    let a = build_bytes(plain, Path::new("a"), EPOCH).unwrap();
    assert_eq!(a, build_bytes(headed, Path::new("a"), EPOCH).unwrap());
}

#[test]
fn every_bad_row_is_reported_with_its_line() {
    let csv = "\
network,continent,country,subdivision,lat,lon
81.2.69.0/24,EU,GB,GB-ENG,51.51,-0.09
10.0.0.1/8,EU,GB,,,
10.0.0.1,EU,GB,,,
not-a-net,EU,GB,,,
192.0.2.0/24,Europe,gb,,,
192.0.3.0/24,NA,US,CA,,
192.0.4.0/24,NA,US,GB-ENG,,
192.0.5.0/24,NA,US,US-TOOLONG,,
192.0.6.0/24,NA,US,,91,0
192.0.7.0/24,NA,US,,0,-180.5
192.0.8.0/24,NA,US,,north,NaN
192.0.9.0/24,NA,US,,45,
192.0.10.0/24,NA,US,
81.2.69.0/24,EU,GB,,,
::1/128,NA,US,,,
::ffff:1.2.3.0/120,NA,US,,,
2000::/3,NA,US,,,
network,continent,country,subdivision,lat,lon
";
    let want = [
        "t.csv:3: network \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?",
        "t.csv:4: network \"10.0.0.1\" has no prefix length; did you mean 10.0.0.1/32?",
        "t.csv:5: network \"not-a-net\" is not an IPv4 or IPv6 CIDR (like 192.0.2.0/24 or 2001:db8::/32)",
        "t.csv:6: continent \"Europe\" is not one of AF AN AS EU NA OC SA",
        "t.csv:6: country \"gb\" must be two upper-case letters (ISO 3166-1 alpha-2, like GB)",
        "t.csv:7: subdivision \"CA\" must be the country, a hyphen and 1-3 upper-case letters or digits (ISO 3166-2, like US-CA)",
        "t.csv:8: subdivision \"GB-ENG\" does not belong to country US (it must start with \"US-\")",
        "t.csv:9: subdivision \"US-TOOLONG\" must be the country, a hyphen and 1-3 upper-case letters or digits (ISO 3166-2, like US-CA)",
        "t.csv:10: lat \"91\" is out of range -90..=90",
        "t.csv:11: lon \"-180.5\" is out of range -180..=180",
        "t.csv:12: lat \"north\" is not a number of degrees",
        "t.csv:12: lon \"NaN\" is not a number of degrees",
        "t.csv:13: lat \"45\" and lon \"\": give both or neither",
        "t.csv:14: expected 6 comma-separated fields (network,continent,country,subdivision,lat,lon), found 4",
        "t.csv:15: network 81.2.69.0/24 is already defined on line 2",
        "t.csv:16: network \"::1/128\" is inside ::/96 (where the IPv4 networks are stored); write IPv4 networks in dotted form",
        "t.csv:17: network \"::ffff:1.2.3.0/120\" is inside ::ffff:0:0/96 (IPv4-mapped addresses, an alias of the IPv4 networks); write IPv4 networks in dotted form",
        "t.csv:18: network \"2000::/3\" covers 2001::/32 (Teredo, an alias of the IPv4 networks); split it into networks around it",
        "t.csv:19: a header line is only allowed before the first row",
    ];
    assert_eq!(errors(csv), want);
}

#[test]
fn a_file_without_rows_is_an_error() {
    let want =
        ["t.csv: no networks: expected rows of network,continent,country,subdivision,lat,lon"];
    for csv in [
        "",
        "\n# only a comment\n\n",
        "network,continent,country,subdivision,lat,lon\n",
    ] {
        assert_eq!(errors(csv), want, "{csv:?}");
    }
}

#[test]
fn build_writes_the_file_atomically_and_counts_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    let out = dir.path().join("out.mmdb");
    fs::write(&csv, CSV).unwrap();
    fs::write(&out, "old contents").unwrap();
    let summary = build_with_epoch(&csv, &out, EPOCH).unwrap();
    let bytes = fs::read(&out).unwrap();
    assert_eq!(bytes, build_bytes(CSV, &csv, EPOCH).unwrap());
    let want = BuildSummary {
        networks: 4,
        v4: 2,
        v6: 2,
        bytes: bytes.len(),
    };
    assert_eq!(summary, want);
    let mut names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["in.csv", "out.mmdb"],
        "no temporary file left behind"
    );
}

#[test]
fn build_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    let missing = build_with_epoch(&csv, &dir.path().join("o.mmdb"), EPOCH).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with(&format!("{}: cannot read the CSV: ", csv.display()))
    );
    fs::write(&csv, "10.0.0.0/8,EU,DE,,,\n").unwrap();
    let out = dir.path().join("no-such-dir/o.mmdb");
    let unwritable = build_with_epoch(&csv, &out, EPOCH).unwrap_err();
    let prefix = format!("{}: cannot write the database: ", out.display());
    assert!(unwritable.to_string().starts_with(&prefix), "{unwritable}");
}

#[test]
fn source_date_epoch_sets_the_build_time() {
    let var = |s: &str| Some(std::ffi::OsString::from(s));
    assert_eq!(build_epoch(var("1767225600")), Ok(EPOCH));
    assert_eq!(build_epoch(var("0")), Ok(0));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for unset in [None, var("")] {
        assert!(build_epoch(unset).unwrap() >= now);
    }
    let huge = build_bytes(CSV, Path::new("t.csv"), u64::MAX)
        .unwrap_err()
        .to_string();
    assert_eq!(
        huge,
        format!("t.csv: build time {} is out of range", u64::MAX)
    );
    let bad = build_epoch(var("yesterday")).unwrap_err().to_string();
    assert_eq!(
        bad,
        "SOURCE_DATE_EPOCH: \"yesterday\" is not a whole number of seconds since 1970-01-01"
    );
}

/// The database as the `mmdb-writer` crate writes it, as `gslbd geoip build` did before
/// it wrote its own (in a fraction of the memory).
fn mmdb_writer_bytes(csv: &str) -> Vec<u8> {
    use mmdb_writer::{Value, Writer};
    let rows = rows::parse(csv, Path::new("t.csv")).unwrap();
    let built = UNIX_EPOCH + Duration::from_secs(EPOCH);
    let mut writer = Writer::builder(DATABASE_TYPE)
        .description(&[("en", DESCRIPTION)])
        .languages(["en"])
        .build_epoch(built)
        .build();
    let mut order: Vec<&rows::Row> = rows.iter().collect();
    order.sort_by_key(|r| (tree_prefix_len(r.net), r.net));
    for row in order {
        let mut fields = vec![
            ("continent", Value::map([("code", row.continent.as_str())])),
            ("country", Value::map([("iso_code", row.country.as_str())])),
        ];
        if let Some(code) = &row.subdivision {
            let sub = Value::map([("iso_code", code.as_str())]);
            fields.push(("subdivisions", Value::array([sub])));
        }
        if let Some((lat, lon)) = row.coords {
            let at = Value::map([("latitude", lat), ("longitude", lon)]);
            fields.push(("location", at));
        }
        writer.insert_value(row.net, Value::map(fields)).unwrap();
    }
    writer.to_bytes().unwrap()
}

#[test]
fn the_bytes_are_those_mmdb_writer_writes() {
    // Random CSVs (a fixed seed): IPv4 and IPv6 networks of every length, nested ones
    // overriding the ones around them, neighbours with the same data (merged), records
    // shared by several networks, with and without subdivision and coordinates, repeated
    // coordinates (pointers to them), and enough rows for every pointer size. (28- and
    // 32-bit records take tens of millions of nodes: see `mmdb::tests`.)
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for (round, rows) in [(0, 1), (1, 40), (2, 400), (3, 30_000)] {
        let mut csv = String::new();
        let mut seen = std::collections::HashSet::new();
        while seen.len() < rows {
            let net: IpNet = if rnd(5) < 4 {
                let len = 8 + rnd(25) as u8;
                let addr = (rnd(1 << 32) as u32) & (u32::MAX << (32 - len));
                format!("{}/{len}", std::net::Ipv4Addr::from(addr))
                    .parse()
                    .unwrap()
            } else {
                let len = 20 + rnd(45) as u8;
                let addr = (0x2400u128 << 112 | u128::from(rnd(1 << 48)) << 64)
                    & (u128::MAX << (128 - len));
                format!("{}/{len}", std::net::Ipv6Addr::from(addr))
                    .parse()
                    .unwrap()
            };
            if !seen.insert(net) {
                continue;
            }
            let (cont, cc) =
                [("EU", "GB"), ("NA", "US"), ("AS", "JP"), ("OC", "AU")][rnd(4) as usize];
            let sub = match rnd(3) {
                0 => String::new(),
                n => format!("{cc}-{n}{}", rnd(10)),
            };
            let coords = match rnd(4) {
                0 => ",".to_owned(),
                1 => "51.5,-0.09".to_owned(),
                _ => format!("{}.{},{}.{}", rnd(90), rnd(1000), rnd(180), rnd(1000)),
            };
            csv.push_str(&format!("{net},{cont},{cc},{sub},{coords}\n"));
        }
        let ours = build_bytes(&csv, Path::new("t.csv"), EPOCH).unwrap();
        let theirs = mmdb_writer_bytes(&csv);
        assert!(
            ours == theirs,
            "round {round}: {} bytes, mmdb-writer {}",
            ours.len(),
            theirs.len()
        );
    }
    // And the CSV of the other tests.
    assert!(build_bytes(CSV, Path::new("t.csv"), EPOCH).unwrap() == mmdb_writer_bytes(CSV));
}
