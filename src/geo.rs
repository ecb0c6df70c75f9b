//! Client address → [`Location`], through a MaxMind-format database (GeoLite2/GeoIP2 City
//! or Country, DB-IP, or one built by `gslbd geoip build`). The only module that names
//! maxminddb types.
//!
//! A lookup reads the continent code, the country ISO code, the first subdivision ISO
//! code, the coordinates when present, and always the prefix length of the database
//! network the address fell in — with or without data — which bounds the EDNS Client
//! Subnet scope of any answer that depends on the location.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Coords;

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

/// A short ASCII code (`EU`, `JP`, `US-CA`) stored inline, so locating a client
/// allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Code {
    buf: [u8; 8],
    len: u8,
}

impl Code {
    /// `s` when it is 1..=8 ASCII letters, digits or hyphens, upper-cased.
    pub fn new(s: &str) -> Option<Code> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 8 || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        {
            return None;
        }
        let mut buf = [0u8; 8];
        for (d, s) in buf.iter_mut().zip(b) {
            *d = s.to_ascii_uppercase();
        }
        Some(Code {
            buf,
            len: b.len() as u8,
        })
    }

    /// `COUNTRY-SUB` (`US` and `CA` make `US-CA`), when it fits.
    pub fn joined(country: Code, sub: &str) -> Option<Code> {
        let (c, s) = (country.as_str().as_bytes(), sub.as_bytes());
        let len = c.len() + 1 + s.len();
        if s.is_empty() || len > 8 {
            return None;
        }
        let mut buf = [0u8; 8];
        buf[..c.len()].copy_from_slice(c);
        buf[c.len()] = b'-';
        buf[c.len() + 1..len].copy_from_slice(s);
        Code::new(std::str::from_utf8(&buf[..len]).ok()?)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

/// Alphabetical, compared as two integers: the geo rules' tables are searched with it.
impl Ord for Code {
    fn cmp(&self, other: &Code) -> std::cmp::Ordering {
        (u64::from_be_bytes(self.buf), self.len).cmp(&(u64::from_be_bytes(other.buf), other.len))
    }
}

impl PartialOrd for Code {
    fn partial_cmp(&self, other: &Code) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a client is, as far as the database knows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Location {
    /// Continent code (`EU`).
    pub continent: Option<Code>,
    /// ISO 3166-1 country code (`GB`).
    pub country: Option<Code>,
    /// ISO 3166-2 subdivision with its country, as written in geo rules (`GB-ENG`).
    pub subdivision: Option<Code>,
    /// Coordinates, when the database has them (City databases).
    pub coords: Option<Coords>,
    /// The database network the address fell in, as (address, prefix length); `None`
    /// without a database. Present even when the network has no data.
    pub network: Option<(IpAddr, u8)>,
}

impl Location {
    /// True when the database had any data for the address.
    pub fn found(&self) -> bool {
        self.continent.is_some() || self.country.is_some() || self.coords.is_some()
    }

    /// Prefix length of the database network (0 without a database).
    pub fn prefix(&self) -> u8 {
        self.network.map_or(0, |(_, p)| p)
    }
}

/// The fields we read; everything else in the record is skipped by serde.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    continent: Option<Coded<'a>>,
    #[serde(borrow, default)]
    country: Option<Iso<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<First<Iso<'a>>>,
    #[serde(default)]
    location: Option<Loc>,
}

/// The first element of a sequence, the rest skipped: decoding allocates nothing (a
/// `Vec` would, for every City record with subdivisions).
struct First<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<First<T>, A::Error> {
                let first = seq.next_element()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Coded<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Iso<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Loc {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

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
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| cannot_open(path, e))?;
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
        let file = std::fs::File::open(path)
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

    /// Locates `addr`. A lookup error (a corrupt region of the file) is treated as "not
    /// in the database": the policy falls back to its defaults rather than failing.
    pub fn locate(&self, addr: IpAddr) -> Location {
        let addr = addr.to_canonical();
        subnet_cached(self.id, addr, || match &self.reader {
            Source::Read(r) => locate(r, self.id, addr),
            Source::Mapped(r) => locate(r, self.id, addr),
        })
    }
}

impl GeoDb {
    /// Calls `f(first address, prefix length, value)` for every network of one family,
    /// in address order, networks without data included. Addresses are integers (IPv4 in
    /// the low 32 bits). For IPv6 the IPv4 part of the tree comes out as `::a.b.c.d`;
    /// its aliases (subtrees that point back to it, such as `::ffff:0:0/96`, 6to4 and
    /// Teredo) are left out, so they are the only gaps between networks. `value`
    /// turns a network's location (without `network`) into what `f` gets; it is called
    /// once per database record, however many networks share that record. An IPv4-only
    /// database has no IPv6 networks: nothing is called.
    pub fn networks<T: Copy>(
        &self,
        v6: bool,
        value: impl FnMut(&Location) -> T,
        f: impl FnMut(u128, u8, T),
    ) -> Result<(), String> {
        match &self.reader {
            Source::Read(r) => networks(r, v6, value, f),
            Source::Mapped(r) => networks(r, v6, value, f),
        }
        .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

fn networks<S: AsRef<[u8]>, T: Copy>(
    reader: &maxminddb::Reader<S>,
    v6: bool,
    mut value: impl FnMut(&Location) -> T,
    mut f: impl FnMut(u128, u8, T),
) -> Result<(), maxminddb::MaxMindDbError> {
    use maxminddb::WithinOptions;
    let options = WithinOptions::default().include_networks_without_data();
    let (all, options) = if v6 {
        if reader.metadata().ip_version != 6 {
            return Ok(());
        }
        ("::/0", options)
    } else {
        ("0.0.0.0/0", options)
    };
    let all = all
        .parse()
        .map_err(|_| maxminddb::MaxMindDbError::invalid_input("network"))?;
    let no_data = value(&Location::default());
    let mut decoded: std::collections::HashMap<usize, T> = std::collections::HashMap::new();
    for item in reader.within(all, options)? {
        let item = item?;
        let net = item.network()?;
        let (start, prefix) = match (net.network(), v6) {
            (IpAddr::V4(a), false) => (u128::from(u32::from(a)), net.prefix()),
            // The IPv4 subtree of an IPv6 database, seen from IPv6: `::a.b.c.d/96+p`.
            (IpAddr::V4(a), true) => (u128::from(u32::from(a)), 96 + net.prefix()),
            (IpAddr::V6(a), true) => (u128::from(a), net.prefix()),
            (IpAddr::V6(_), false) => continue,
        };
        let v = match item.offset() {
            Some(offset) => {
                *decoded
                    .entry(offset)
                    .or_insert_with(|| match item.decode::<Record<'_>>() {
                        Ok(Some(rec)) => value(&decoded_location(rec)),
                        _ => no_data,
                    })
            }
            None => no_data,
        };
        f(start, prefix, v);
    }
    Ok(())
}

/// Per-thread cache of whole lookups, placed by client subnet (/24 for IPv4, /48 for
/// IPv6) in a two-way set: an entry answers for an address when the database network
/// it holds contains the address, since every address of a database network has the
/// same location. ECS clients send such subnets, and a resolver's subnets repeat.
fn subnet_cached(db: usize, addr: IpAddr, lookup: impl FnOnce() -> Location) -> Location {
    // 8192 entries of 96 bytes: 768 KiB per thread that answers queries.
    const SLOTS: usize = 8192;
    let key = match addr {
        IpAddr::V4(a) => u64::from(u32::from(a) >> 8),
        IpAddr::V6(a) => (u128::from(a) >> 80) as u64 | 1 << 63,
    };
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<(usize, Location)>> =
            std::cell::RefCell::new(vec![(0, Location::default()); SLOTS]);
    }
    // Fibonacci hashing of the subnet onto the sets (pairs of slots).
    let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let set = (h >> (64 - SLOTS.trailing_zeros())) as usize & !1;
    let holds = |e: &(usize, Location)| e.0 == db && e.1.network.is_some_and(|n| within(addr, n));
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let Some(pair) = c.get_mut(set..set + 2) else {
            return lookup();
        };
        if holds(&pair[0]) {
            return pair[0].1;
        }
        if holds(&pair[1]) {
            pair.swap(0, 1);
            return pair[0].1;
        }
        let loc = lookup();
        if loc.network.is_some() {
            // The older entry goes; the newer one moves second.
            pair[1] = pair[0];
            pair[0] = (db, loc);
        }
        loc
    })
}

/// True when `addr` is in the network `(net, prefix)`.
fn within(addr: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            (u32::from(a) ^ u32::from(n)).checked_shr(32 - u32::from(prefix.min(32))) == Some(0)
                || prefix == 0
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            (u128::from(a) ^ u128::from(n)).checked_shr(128 - u32::from(prefix.min(128))) == Some(0)
                || prefix == 0
        }
        _ => false,
    }
}

fn cannot_open(path: &Path, e: maxminddb::MaxMindDbError) -> String {
    format!("cannot open GeoIP database {}: {e}", path.display())
}

/// [`GeoDb::locate`] in `reader`, whatever holds its bytes; `db` keys the decode cache.
fn locate<S: AsRef<[u8]>>(reader: &maxminddb::Reader<S>, db: usize, addr: IpAddr) -> Location {
    // An IPv4-mapped address must be looked up as IPv4 to get an IPv4 prefix.
    let addr = addr.to_canonical();
    let Ok(result) = reader.lookup(addr) else {
        return Location::default();
    };
    let network = result.network().ok().map(|n| (n.network(), n.prefix()));
    // Decoding a record costs several times the tree walk; many networks share a
    // record, so decoded records are cached per thread by their data offset.
    let Some(offset) = result.offset() else {
        return Location {
            network,
            ..Location::default()
        };
    };
    let mut loc = cached(db, offset, || {
        let Ok(Some(rec)) = result.decode::<Record<'_>>() else {
            return Location::default();
        };
        decoded_location(rec)
    });
    loc.network = network;
    loc
}

/// Direct-mapped per-thread cache of decoded records: (database, data offset) → location.
fn cached(db: usize, offset: usize, decode: impl FnOnce() -> Location) -> Location {
    const SLOTS: usize = 1024;
    thread_local! {
        static CACHE: std::cell::RefCell<Vec<(usize, usize, Location)>> =
            std::cell::RefCell::new(vec![(0, usize::MAX, Location::default()); SLOTS]);
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let slot = &mut c[offset % SLOTS];
        if slot.0 == db && slot.1 == offset {
            return slot.2;
        }
        let loc = decode();
        *slot = (db, offset, loc);
        loc
    })
}

/// The location fields of a decoded record.
fn decoded_location(rec: Record<'_>) -> Location {
    let mut loc = Location::default();
    {
        loc.continent = rec.continent.and_then(|c| c.code).and_then(Code::new);
        loc.country = rec.country.and_then(|c| c.iso_code).and_then(Code::new);
        let sub = rec.subdivisions.and_then(|s| s.0).and_then(|s| s.iso_code);
        if let (Some(country), Some(sub)) = (loc.country, sub) {
            // Geo rules write subdivisions with their country: `US-CA`.
            loc.subdivision = Code::joined(country, sub);
        }
        if let Some(Loc {
            latitude: Some(lat),
            longitude: Some(lon),
        }) = rec.location
        {
            if lat.is_finite() && lon.is_finite() {
                loc.coords = Some(Coords { lat, lon });
            }
        }
    }
    loc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/sample.mmdb")
    }

    #[test]
    fn the_subnet_cache_never_changes_an_answer() {
        let db = GeoDb::open(&sample()).unwrap();
        let Source::Read(reader) = &db.reader else {
            unreachable!()
        };
        // Networks narrower than the cached subnets (89.160.20.128/25, 216.160.83.56/29)
        // next to addresses outside them, wide networks, IPv6 and nothing at all; in an
        // order that fills the cache from one address and asks for its neighbours.
        let addrs = [
            "89.160.20.200",
            "89.160.20.1",
            "89.160.20.129",
            "89.160.20.127",
            "216.160.83.57",
            "216.160.83.1",
            "216.160.83.60",
            "216.160.83.200",
            "81.2.69.160",
            "81.2.69.1",
            "81.2.69.255",
            "8.8.8.8",
            "8.8.8.9",
            "2a02:d3c0::1",
            "2a02:d3c0:0:ffff::1",
            "2001:db8:1::1",
            "10.1.2.3",
            "10.1.2.4",
        ];
        for _ in 0..3 {
            for a in addrs {
                let addr: IpAddr = a.parse().unwrap();
                assert_eq!(db.locate(addr), locate(reader, db.id, addr), "{a}");
            }
        }
        let inside = db.locate("89.160.20.200".parse().unwrap());
        let outside = db.locate("89.160.20.1".parse().unwrap());
        assert_eq!(inside.country.map(|c| c.to_string()).as_deref(), Some("SE"));
        assert_ne!(inside, outside);
    }

    #[test]
    fn the_subnet_cache_survives_evictions() {
        // More subnets than slots, in and around the sample's networks (so that sets
        // overflow, entries move within their pair and narrow networks share subnets
        // with their neighbours), compared with the uncached lookup.
        let db = GeoDb::open(&sample()).unwrap();
        let Source::Read(reader) = &db.reader else {
            unreachable!()
        };
        let bases: [[u8; 2]; 6] = [[81, 2], [89, 160], [216, 160], [8, 8], [1, 0], [10, 1]];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..40_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let [a, b] = bases[i as usize % bases.len()];
            let [c, d, ..] = x.to_le_bytes();
            let addr = IpAddr::from([a, b, c, d]);
            assert_eq!(db.locate(addr), locate(reader, db.id, addr), "{addr}");
        }
    }

    #[test]
    fn within_checks_the_prefix() {
        let net = |s: &str| {
            let n: ipnet::IpNet = s.parse().unwrap();
            (n.network(), n.prefix_len())
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(within(ip("89.160.20.200"), net("89.160.20.128/25")));
        assert!(!within(ip("89.160.20.1"), net("89.160.20.128/25")));
        assert!(within(ip("1.2.3.4"), net("0.0.0.0/0")));
        assert!(within(ip("1.2.3.4"), net("1.2.3.4/32")));
        assert!(!within(ip("1.2.3.5"), net("1.2.3.4/32")));
        assert!(within(ip("2001:db8::1"), net("2001:db8::/32")));
        assert!(!within(ip("2001:db9::1"), net("2001:db8::/32")));
        assert!(within(ip("::1"), net("::/0")));
        assert!(!within(ip("1.2.3.4"), net("::/0")), "families never mix");
    }

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
