//! `gslbd geoip build`: turns a CSV of networks (`network,continent,country,subdivision,
//! lat,lon`) into a MaxMind DB file, for private overrides and for test fixtures such as
//! `geoip/sample.mmdb`.
//!
//! # Output
//!
//! A MaxMind DB format 2.0 file with `database_type` `GeoLite2-City`, because its records
//! use GeoLite2-City's field layout, so any GeoIP2 City reader (gslbd's, `mmdblookup`,
//! `maxminddb::geoip2::City`) decodes it:
//!
//! ```text
//! { continent:    { code: "NA" },
//!   country:      { iso_code: "US" },
//!   subdivisions: [ { iso_code: "CA" } ],              // only when the row has one
//!   location:     { latitude: 37.39, longitude: -122.08 } }   // doubles; only when given
//! ```
//!
//! No `names`: a name equal to the code would add nothing, and inventing names would be
//! data we do not have. `ip_version` is 6: IPv4 rows live in the `::/96` subtree and are
//! also reachable as `::ffff:a.b.c.d` (plus the 6to4 and Teredo aliases MaxMind's own
//! databases carry). `languages` is `["en"]`, the record size 24, 28 or 32 bits, whichever is
//! the smallest that fits.
//!
//! Overlapping rows: a more specific network overrides a less specific one inside its
//! range, as in MaxMind's writer when networks are inserted from short prefixes to long
//! ones (which is what [`build_bytes`] does, whatever the CSV order). The same network
//! twice is an error. Neighbouring networks with identical data may be merged, so a
//! lookup's `network()` can be wider than the row but never covers different data.
//!
//! # Why its own writer
//!
//! `mmdb.rs` writes the format for this one record layout, byte for byte what the
//! maintained pure-Rust `mmdb-writer` crate writes (a test compares them on random CSVs,
//! and the committed `geoip/sample.mmdb` was written by that crate): MaxMind's
//! search-tree algorithm, `ip_version` 6 with the IPv4 subtree and its aliases, automatic
//! 24/28/32-bit records, a byte layout that depends only on the rows and `build_epoch`,
//! files that both the `maxminddb` crate and Debian's C `mmdblookup` read. That crate
//! holds every record as a tree of `BTreeMap`s three times over and clones its search
//! tree to write it: 5.2 GiB and 40 s for 452,608 networks each with its own coordinates
//! (a 41 MiB file). `mmdb.rs` keeps a record in 40 bytes and a node in 8: 104 MiB and
//! 2.7 s for the same networks (`bench/memory.py`).

mod mmdb;
mod rows;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::diag::{Diagnostic, Diagnostics};
use rows::Row;

/// The `database_type` written to the metadata: the record layout is GeoLite2-City's.
pub const DATABASE_TYPE: &str = "GeoLite2-City";

/// The environment variable that fixes the build time (<https://reproducible-builds.org>).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Kept free of the CSV's path and of the time, so output depends on the rows and the
/// epoch only.
const DESCRIPTION: &str =
    "Built by `gslbd geoip build` from a CSV of networks (GeoLite2-City record layout)";

/// What [`build`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildSummary {
    /// Rows (networks) in the CSV.
    pub networks: usize,
    /// How many of them are IPv4.
    pub v4: usize,
    /// How many of them are IPv6.
    pub v6: usize,
    /// Size of the written file.
    pub bytes: usize,
}

/// Parses the CSV text (errors name `path:line`, every bad row is reported) and returns
/// the MMDB bytes, with `build_epoch` (seconds since 1970) as the build time. The same
/// text and epoch always give the same bytes.
pub fn build_bytes(csv: &str, csv_path: &Path, build_epoch: u64) -> Result<Vec<u8>, Diagnostics> {
    let rows = rows::parse(csv, csv_path)?;
    write_db(rows, csv_path, build_epoch)
}

/// Reads `csv`, builds the database and writes it to `out` atomically: a temporary file
/// in `out`'s folder, then a rename, so a server that has the old file open or mapped
/// keeps a consistent copy. The build time is `SOURCE_DATE_EPOCH` when set (for
/// reproducible builds), else now.
pub fn build(csv: &Path, out: &Path) -> Result<BuildSummary, Diagnostics> {
    let epoch = build_epoch(std::env::var_os(SOURCE_DATE_EPOCH))?;
    build_with_epoch(csv, out, epoch)
}

/// [`build`] with an explicit build time, so tests need not set the environment.
fn build_with_epoch(csv: &Path, out: &Path, epoch: u64) -> Result<BuildSummary, Diagnostics> {
    let text = fs::read_to_string(csv)
        .map_err(|e| Diagnostic::new(csv, format!("cannot read the CSV: {e}")))?;
    let rows = rows::parse(&text, csv)?;
    drop(text);
    let (networks, v4) = (
        rows.len(),
        rows.iter()
            .filter(|r| matches!(r.net, IpNet::V4(_)))
            .count(),
    );
    let bytes = write_db(rows, csv, epoch)?;
    write_atomically(out, &bytes)
        .map_err(|e| Diagnostic::new(out, format!("cannot write the database: {e}")))?;
    Ok(BuildSummary {
        networks,
        v4,
        v6: networks - v4,
        bytes: bytes.len(),
    })
}

/// The build time from `SOURCE_DATE_EPOCH`'s value: unset or empty means now; anything
/// else must be whole seconds since 1970, as the reproducible-builds spec says.
fn build_epoch(var: Option<std::ffi::OsString>) -> Result<u64, Diagnostic> {
    let bad = |v: &dyn std::fmt::Debug| {
        Diagnostic::new(
            SOURCE_DATE_EPOCH,
            format!("{v:?} is not a whole number of seconds since 1970-01-01"),
        )
    };
    match var {
        Some(v) if !v.is_empty() => {
            let s = v.to_str().ok_or_else(|| bad(&v))?;
            s.trim().parse().map_err(|_| bad(&s))
        }
        _ => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())),
    }
}

fn write_db(mut rows: Vec<Row>, csv_path: &Path, build_epoch: u64) -> Result<Vec<u8>, Diagnostics> {
    // `+` would panic past the platform's time range (SOURCE_DATE_EPOCH=99999999999999999999).
    if UNIX_EPOCH
        .checked_add(Duration::from_secs(build_epoch))
        .is_none()
    {
        let msg = format!("build time {build_epoch} is out of range");
        return Err(Diagnostic::new(csv_path, msg).into());
    }
    // Short prefixes first, so a more specific network is written over a less specific
    // one (MaxMind's insert-order semantics); rows with equal prefix lengths cannot
    // overlap (duplicates were rejected), and address order keeps the build independent
    // of the CSV's row order. IPv4 prefixes count from the `::/96` subtree root.
    rows.sort_unstable_by_key(|r| (tree_prefix_len(r.net), r.net));
    let meta = mmdb::Meta {
        database_type: DATABASE_TYPE,
        description: DESCRIPTION,
        build_epoch,
    };
    mmdb::write(rows, &meta)
        .map_err(|e| Diagnostic::new(csv_path, format!("cannot encode the database: {e}")).into())
}

/// The depth of the network in the IPv6 search tree.
fn tree_prefix_len(net: IpNet) -> u8 {
    match net {
        IpNet::V4(n) => 96 + n.prefix_len(),
        IpNet::V6(n) => n.prefix_len(),
    }
}

/// Writes `bytes` to a fresh temporary file next to `out`, flushes it to disk, then
/// renames it over `out`: readers see the old file or the new one, never a torn one, and
/// a reader that mapped the old file keeps its (now unlinked) copy intact.
fn write_atomically(out: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, out)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Ok(d) = fs::File::open(&dir) {
        // Persist the rename itself; failure only weakens crash safety, not correctness.
        let _ = d.sync_all();
    }
    result
}
