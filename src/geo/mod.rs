//! Client address → [`Location`], through a MaxMind-format database (GeoLite2/GeoIP2 City
//! or Country, DB-IP, or one built by `gslbd geoip build`). The only module that names
//! maxminddb types.
//!
//! A lookup reads the continent code, the country ISO code, the first subdivision ISO
//! code, the coordinates when present, and always the prefix length of the database
//! network the address fell in — with or without data — which bounds the EDNS Client
//! Subnet scope of any answer that depends on the location.
//!
//! The submodules, one job each:
//!
//! ```text
//! db.rs        open (read or map) a database, reject non-location types, verify it,
//!              release a mapping's pages
//! locate.rs    Code, Location, decoding a record's fields, GeoDb::locate
//! cache.rs     the per-thread caches a lookup goes through: by client subnet, then by
//!              decoded record
//! networks.rs  GeoDb::networks: every network of one family, for compiling geo trees
//! ```
//!
//! This file holds the database handle itself, [`GeoDb`], and where its bytes live
//! (`Source`): every submodule reads them, and defining them here keeps their fields
//! private to this module.

use std::fmt;
use std::path::PathBuf;

mod cache;
mod db;
mod locate;
mod networks;

pub use locate::{Code, Location};

/// An open GeoIP database.
pub struct GeoDb {
    reader: Source,
    /// Address and length of the mapping, for a mapped file.
    region: Option<(usize, usize)>,
    path: PathBuf,
    /// Unique per opened file, so the decode cache never mixes two databases (an
    /// address could be reused after a reload frees the old one).
    id: usize,
}

/// Where the database bytes live: read into the heap, or mapped from the file. Lookups
/// are the same code for both (generic over the buffer), chosen by one `match`.
enum Source {
    Read(maxminddb::Reader<Vec<u8>>),
    Mapped(maxminddb::Reader<maxminddb::Mmap>),
}

impl Source {
    fn metadata(&self) -> &maxminddb::Metadata {
        match self {
            Source::Read(r) => r.metadata(),
            Source::Mapped(r) => r.metadata(),
        }
    }
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("type", &self.database_type())
            .field("mapped", &self.mapped())
            .finish()
    }
}

/// The sample database the submodules' tests open (`geoip/sample.mmdb`).
#[cfg(test)]
fn sample() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample.mmdb")
}
