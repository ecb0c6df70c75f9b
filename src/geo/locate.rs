//! Locating a client: [`Code`] and [`Location`], what a lookup answers; [`GeoDb::locate`];
//! and decoding the few fields we read from a database record without allocating
//! (also used by the walk in `networks.rs`).

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use super::cache::{cached, subnet_cached};
use super::{GeoDb, Source};
use crate::model::Coords;

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
pub(super) struct Record<'a> {
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

impl GeoDb {
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

/// [`GeoDb::locate`] in `reader`, whatever holds its bytes; `db` keys the decode cache.
pub(super) fn locate<S: AsRef<[u8]>>(
    reader: &maxminddb::Reader<S>,
    db: usize,
    addr: IpAddr,
) -> Location {
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

/// The location fields of a decoded record.
pub(super) fn decoded_location(rec: Record<'_>) -> Location {
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
