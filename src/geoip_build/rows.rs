//! Parses and validates the CSV that `gslbd geoip build` reads: one network per row,
//! `network,continent,country,subdivision,lat,lon`. Every bad row is reported with its
//! `file:line`, not only the first, so one run shows everything to fix.

use std::collections::BTreeMap;
use std::path::Path;

use ipnet::IpNet;

use crate::diag::{Diagnostic, Diagnostics};

/// The column names, in order; a first line with exactly these is a header, not data.
pub(super) const COLUMNS: [&str; 6] = [
    "network",
    "continent",
    "country",
    "subdivision",
    "lat",
    "lon",
];

/// The seven continent codes GeoLite2 uses in `continent.code`.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// IPv6 space the database gives to IPv4: `::/96` holds the IPv4 networks, and the writer
/// points the other three at that subtree (as MaxMind's own databases do), so an IPv6 row
/// there would either shadow IPv4 data or be shadowed by it. Rejecting such rows keeps a
/// lookup's answer obvious from the CSV.
const IPV4_SPACE: [(&str, &str); 4] = [
    ("::/96", "where the IPv4 networks are stored"),
    (
        "::ffff:0:0/96",
        "IPv4-mapped addresses, an alias of the IPv4 networks",
    ),
    ("2001::/32", "Teredo, an alias of the IPv4 networks"),
    ("2002::/16", "6to4, an alias of the IPv4 networks"),
];

/// One valid row (a CSV may have millions: 64 bytes, nothing on the heap).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    /// 1-based line in the CSV, for errors found later (the writer).
    pub(super) line: usize,
    /// The network, host bits clear.
    pub(super) net: IpNet,
    /// `EU`.
    pub(super) continent: Code,
    /// `GB`.
    pub(super) country: Code,
    /// The part after the country and hyphen: `ENG` for `GB-ENG` (GeoLite2 stores it so).
    pub(super) subdivision: Option<Code>,
    /// (latitude, longitude) in degrees.
    pub(super) coords: Option<(f64, f64)>,
}

/// A code of 1 to 3 ASCII letters or digits (continent, country, subdivision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Code {
    bytes: [u8; 3],
    len: u8,
}

impl Code {
    /// `s` when it is 1 to 3 ASCII characters (the parser checked which).
    fn new(s: &str) -> Code {
        let mut bytes = [0; 3];
        let len = s.len().min(3);
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Code {
            bytes,
            len: len as u8,
        }
    }

    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

/// Every valid row, or every problem found (each naming `path:line`).
pub(super) fn parse(text: &str, path: &Path) -> Result<Vec<Row>, Diagnostics> {
    let mut rows = Vec::new();
    let mut errors = Diagnostics::default();
    let mut seen: BTreeMap<IpNet, usize> = BTreeMap::new();
    let mut first_data_line = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        if fields == COLUMNS {
            if !std::mem::take(&mut first_data_line) {
                errors.push(
                    Diagnostic::new(path, "a header line is only allowed before the first row")
                        .at_line(line),
                );
            }
            continue;
        }
        first_data_line = false;
        match parse_row(line, &fields) {
            Ok(row) => {
                if let Some(first) = seen.insert(row.net, line) {
                    errors.push(
                        Diagnostic::new(
                            path,
                            format!("network {} is already defined on line {first}", row.net),
                        )
                        .at_line(line),
                    );
                } else {
                    rows.push(row);
                }
            }
            Err(messages) => {
                for m in messages {
                    errors.push(Diagnostic::new(path, m).at_line(line));
                }
            }
        }
    }
    if rows.is_empty() && errors.is_empty() {
        errors.push(Diagnostic::new(
            path,
            format!("no networks: expected rows of {}", COLUMNS.join(",")),
        ));
    }
    errors.into_result(rows)
}

/// One row, or every problem in it (a row can have several).
fn parse_row(line: usize, fields: &[&str]) -> Result<Row, Vec<String>> {
    let &[network, continent, country, subdivision, lat, lon] = fields else {
        return Err(vec![format!(
            "expected 6 comma-separated fields ({}), found {}",
            COLUMNS.join(","),
            fields.len()
        )]);
    };
    let mut errors = Vec::new();
    let net = parse_network(network).map_err(|e| errors.push(e)).ok();
    if !CONTINENTS.contains(&continent) {
        errors.push(format!(
            "continent {continent:?} is not one of {}",
            CONTINENTS.join(" ")
        ));
    }
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    if !country_ok {
        errors.push(format!(
            "country {country:?} must be two upper-case letters (ISO 3166-1 alpha-2, like GB)"
        ));
    }
    let subdivision = match subdivision {
        "" => None,
        s => parse_subdivision(s, country, country_ok)
            .map_err(|e| errors.push(e))
            .ok(),
    };
    let coords = match (lat, lon) {
        ("", "") => None,
        ("", _) | (_, "") => {
            errors.push(format!("lat {lat:?} and lon {lon:?}: give both or neither"));
            None
        }
        _ => {
            let lat = parse_degrees("lat", lat, 90.0).map_err(|e| errors.push(e));
            let lon = parse_degrees("lon", lon, 180.0).map_err(|e| errors.push(e));
            lat.ok().zip(lon.ok())
        }
    };
    match net {
        Some(net) if errors.is_empty() => Ok(Row {
            line,
            net,
            continent: Code::new(continent),
            country: Code::new(country),
            subdivision,
            coords,
        }),
        _ => Err(errors),
    }
}

fn parse_network(s: &str) -> Result<IpNet, String> {
    let net: IpNet = match s.parse() {
        Ok(net) => net,
        // A bare address is the likeliest slip; say what the CIDR form would be.
        Err(_) => {
            return Err(match s.parse::<std::net::IpAddr>() {
                Ok(ip) => format!(
                    "network {s:?} has no prefix length; did you mean {}?",
                    IpNet::from(ip)
                ),
                Err(_) => format!(
                    "network {s:?} is not an IPv4 or IPv6 CIDR (like 192.0.2.0/24 or 2001:db8::/32)"
                ),
            });
        }
    };
    if net.trunc() != net {
        return Err(format!(
            "network {s:?} has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    if let IpNet::V6(_) = net {
        for (name, why) in IPV4_SPACE {
            let reserved: IpNet = name.parse().expect("valid constant CIDR");
            // Messages print `name`: ipnet would show ::ffff:0:0/96 as ::ffff:0.0.0.0/96.
            if reserved.contains(&net) {
                return Err(format!(
                    "network {s:?} is inside {name} ({why}); write IPv4 networks in dotted form"
                ));
            }
            if net.contains(&reserved) {
                return Err(format!(
                    "network {s:?} covers {name} ({why}); split it into networks around it"
                ));
            }
        }
    }
    Ok(net)
}

/// `US-CA` → `CA`: the form gslbd's geo rules use, stored the way GeoLite2 does (the
/// subdivision's own code, under the country).
fn parse_subdivision(s: &str, country: &str, country_ok: bool) -> Result<Code, String> {
    let shape = |code: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    match s.split_once('-') {
        Some((c, code)) if shape(c, 2..=2) && shape(code, 1..=3) => {
            // With a bad country the row is already rejected; do not pile a second,
            // confusing error about the mismatch onto it.
            if c == country || !country_ok {
                Ok(Code::new(code))
            } else {
                Err(format!(
                    "subdivision {s:?} does not belong to country {country} (it must start with \"{country}-\")"
                ))
            }
        }
        _ => Err(format!(
            "subdivision {s:?} must be the country, a hyphen and 1-3 upper-case letters or digits (ISO 3166-2, like US-CA)"
        )),
    }
}

fn parse_degrees(what: &str, s: &str, limit: f64) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (-limit..=limit).contains(&v) => Ok(v),
        Ok(v) if v.is_finite() => Err(format!("{what} {s:?} is out of range -{limit}..={limit}")),
        _ => Err(format!("{what} {s:?} is not a number of degrees")),
    }
}
