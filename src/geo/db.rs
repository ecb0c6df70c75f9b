//! Opening a GeoIP database: read into memory or mapped from the file, rejected when its
//! type carries no locations; checking its structure (`check`); and giving a mapping's
//! pages back after the load-time walk, so that RSS counts only what queries touch.

use std::path::Path;

use super::{GeoDb, Source};

/// Database types that carry no location, rejected so that a mix-up is caught at load.
const NOT_LOCATION: [&str; 6] = [
    "ASN",
    "ISP",
    "Anonymous",
    "Connection-Type",
    "Domain",
    "User-Connection",
];

impl GeoDb {
    /// Reads the database at `path` into memory and checks that it carries locations.
    pub fn open(path: &Path) -> Result<GeoDb, String> {
        // Only a regular file: a FIFO would block the load that opens it.
        let bytes = crate::files::read_regular(path)
            .map_err(|e| format!("cannot open GeoIP database {}: {e}", path.display()))?;
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| cannot_open(path, e))?;
        GeoDb::new(Source::Read(reader), path)
    }

    /// Maps the database at `path` into memory (shared, read-only) and checks that it
    /// carries locations. Nothing is copied: lookups read the page cache, whose pages
    /// are clean, reclaimable and shared by every process that maps the file.
    ///
    /// The file must not be modified or truncated while the database is open: an
    /// in-place overwrite changes what the mapping reads (or, when the file shrinks,
    /// makes touching the lost pages raise SIGBUS). Replacing it by rename, as
    /// `geoipupdate` does, is safe: the mapping keeps the old inode until a reload
    /// opens the new file.
    pub fn open_mapped(path: &Path) -> Result<GeoDb, String> {
        let file = crate::files::open_regular(path)
            .map_err(|e| format!("cannot open GeoIP database {}: {e}", path.display()))?;
        // SAFETY: mapping a file is unsafe because the file must stay unchanged while
        // the mapping lives. That is the operator's side of `server.geoip_mmap`
        // (documented in docs/CONFIG.md and the README): the database is replaced by
        // renaming a new file over it, never written in place.
        let map = unsafe { maxminddb::Mmap::map(&file) }
            .map_err(|e| format!("cannot map GeoIP database {}: {e}", path.display()))?;
        // The mapping stays where it is when the `Mmap` moves into the reader.
        let region = (map.as_ptr() as usize, map.len());
        let reader = maxminddb::Reader::from_source(map).map_err(|e| cannot_open(path, e))?;
        let mut db = GeoDb::new(Source::Mapped(reader), path)?;
        db.region = Some(region);
        Ok(db)
    }

    /// For a mapped file, drops its pages from this process's resident set; they stay in
    /// the page cache, and lookups fault back in the ones they touch. Compiling the geo
    /// trees reads the whole file once at load: without this, RSS would count all of it
    /// from then on although queries only touch what latency records and `explain` look
    /// up.
    pub fn release_pages(&self) {
        #[cfg(target_os = "linux")]
        if let Some((addr, len)) = self.region {
            // SAFETY: the region is this database's own read-only shared file mapping,
            // alive while `self` is. MADV_DONTNEED on such a mapping discards no data:
            // the next read of a page maps it again from the page cache.
            unsafe {
                libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
            }
        }
    }

    /// [`GeoDb::open_mapped`] when `mmap`, else [`GeoDb::open`].
    pub fn open_with(path: &Path, mmap: bool) -> Result<GeoDb, String> {
        if mmap {
            GeoDb::open_mapped(path)
        } else {
            GeoDb::open(path)
        }
    }

    fn new(reader: Source, path: &Path) -> Result<GeoDb, String> {
        let kind = &reader.metadata().database_type;
        if NOT_LOCATION.iter().any(|t| kind.contains(t)) {
            return Err(format!(
                "{}: database type {kind:?} has no location data; use a City or Country database",
                path.display()
            ));
        }
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(GeoDb {
            reader,
            region: None,
            path: path.to_path_buf(),
            id,
        })
    }

    /// Walks the whole database and checks its structure (slow on big files: for `check`).
    pub fn verify(&self) -> Result<(), String> {
        match &self.reader {
            Source::Read(r) => r.verify(),
            Source::Mapped(r) => r.verify(),
        }
        .map_err(|e| format!("{}: corrupt GeoIP database: {e}", self.path.display()))
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file is mapped rather than read into memory.
    pub fn mapped(&self) -> bool {
        matches!(self.reader, Source::Mapped(_))
    }

    /// `database_type` from the metadata, e.g. `GeoLite2-City`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }
}

fn cannot_open(path: &Path, e: maxminddb::MaxMindDbError) -> String {
    format!("cannot open GeoIP database {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::geo::sample;

    mod smaps {
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/smaps.rs"
        ));
    }

    /// Resident KiB of this process's mappings of `path`.
    #[cfg(target_os = "linux")]
    fn resident_kib(path: &Path) -> u64 {
        let name = path.canonicalize().unwrap();
        smaps::resident_kib(std::process::id(), &name.to_string_lossy()).unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn released_pages_leave_the_resident_set_and_come_back_on_use() {
        // A copy of its own, so no other test's mapping of the sample counts.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("own.mmdb");
        std::fs::copy(sample(), &path).unwrap();
        let db = GeoDb::open_mapped(&path).unwrap();
        let uk: IpAddr = "81.2.69.160".parse().unwrap();
        let before = db.locate(uk);
        db.networks(true, |l| l.country, |_, _, _| {}).unwrap();
        assert!(resident_kib(&path) > 0, "the walk read the file");
        db.release_pages();
        assert_eq!(resident_kib(&path), 0);
        // Lookups read it again: same answer (past the per-thread cache: a new address
        // of another network).
        assert_eq!(db.locate(uk).country, before.country);
        assert!(db.locate("175.16.199.1".parse().unwrap()).found());
        assert!(resident_kib(&path) > 0);
        // A database read into memory has nothing to release.
        GeoDb::open(&sample()).unwrap().release_pages();
    }

    #[test]
    fn mapped_and_read_databases_locate_alike() {
        let read = GeoDb::open(&sample()).unwrap();
        let mapped = GeoDb::open_mapped(&sample()).unwrap();
        assert!(!read.mapped() && mapped.mapped());
        assert_eq!(read.database_type(), mapped.database_type());
        assert_ne!(
            read.id, mapped.id,
            "each open gets its own decode-cache key"
        );
        let addrs = [
            // In the database: with coordinates and subdivision, country only, IPv6.
            "81.2.69.160",
            "81.2.5.1",
            "1.0.16.1",
            "8.8.8.8",
            "192.0.2.1",
            "2a02:d3c0::1",
            "2001:218::1",
            "2001:db8:1::1",
            "::ffff:8.8.8.8",
            // Not in the database: loopback, private, unallocated IPv6.
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "fd00::1",
        ];
        let mut found = 0;
        // Twice, so that the second round is answered from the per-thread decode cache.
        for _ in 0..2 {
            for a in addrs {
                let addr: IpAddr = a.parse().unwrap();
                let (r, m) = (read.locate(addr), mapped.locate(addr));
                assert_eq!(r, m, "{a}");
                assert!(r.network.is_some(), "{a}: the network is always known");
                found += usize::from(r.found());
            }
        }
        assert_eq!(found, 2 * 9, "found and not-found addresses both covered");
        let uk = mapped.locate("81.2.69.160".parse().unwrap());
        assert_eq!(
            uk.subdivision.map(|c| c.to_string()).as_deref(),
            Some("GB-ENG")
        );
        assert!(uk.coords.is_some());
        let v4 = mapped.locate("::ffff:8.8.8.8".parse().unwrap());
        assert_eq!(v4.prefix(), 24, "IPv4-mapped looked up as IPv4");
        read.verify().unwrap();
        mapped.verify().unwrap();
    }

    #[test]
    fn open_with_chooses_and_both_report_a_missing_file() {
        assert!(GeoDb::open_with(&sample(), true).unwrap().mapped());
        assert!(!GeoDb::open_with(&sample(), false).unwrap().mapped());
        let missing = Path::new("/nonexistent/geo.mmdb");
        for mmap in [false, true] {
            let e = GeoDb::open_with(missing, mmap).unwrap_err();
            assert!(
                e.starts_with("cannot open GeoIP database /nonexistent/geo.mmdb: "),
                "{e}"
            );
        }
    }
}
