//! Walking every network of a database, for compiling the geo rules into trees
//! (`policy::geomap`): each record is decoded once however many networks share it.

use std::net::IpAddr;

use super::locate::{Record, decoded_location};
use super::{GeoDb, Location, Source};

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
