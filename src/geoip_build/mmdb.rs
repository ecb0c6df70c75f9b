//! The MaxMind DB writer behind `gslbd geoip build`, for its one record layout. It writes
//! the bytes the `mmdb-writer` crate (0.1) writes for the same rows (a test compares them),
//! in a few bytes a network: that crate holds each record as a tree of `BTreeMap`s, three
//! times over (its value pool, the pool's index, the data section's deduplication), and
//! its search tree in 16-byte nodes cloned to be written: 5.2 GiB for 452,608 networks
//! with their own coordinates, for a 41 MiB file.
//!
//! The search tree is built as that crate builds it (MaxMind's algorithm): a bit-by-bit
//! trie over the 128-bit address space, IPv4 under `::/96`, networks inserted from short
//! prefixes to long ones, each covering what it spans; then the IPv4-mapped, Teredo and
//! 6to4 ranges made aliases of the IPv4 subtree, leaves with equal data merged, and the
//! nodes numbered in pre-order. The data section holds each record once, with the
//! format's pointers to any map, string or number written before (when shorter).

use std::collections::HashMap;
use std::hash::{BuildHasher, DefaultHasher, Hasher};

use super::rows::{Code, Row};

/// A tree record: no data, a node, the pinned IPv4 root, a record of data, or an alias
/// of the IPv4 root. The kind is in the top three bits, an index in the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec(u32);

const KIND: u32 = 7 << 29;
const INDEX: u32 = !KIND;
const NODE: u32 = 1 << 29;
const FIXED: u32 = 2 << 29;
const DATA: u32 = 3 << 29;
const ALIAS: u32 = 4 << 29;
const NO_DATA: Rec = Rec(0);

impl Rec {
    fn kind(self) -> u32 {
        self.0 & KIND
    }
    fn index(self) -> u32 {
        self.0 & INDEX
    }
    fn is_leaf(self) -> bool {
        matches!(self.kind(), 0 | DATA | ALIAS)
    }
}

/// Why the database cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum TooLarge {
    #[error("the search tree would have more than {} nodes", INDEX)]
    Nodes,
    #[error("the search tree and data need more than 32-bit records")]
    Records,
}

/// The search tree: two records a node.
struct Tree {
    nodes: Vec<[Rec; 2]>,
}

impl Tree {
    fn alloc(&mut self, node: [Rec; 2]) -> Result<u32, TooLarge> {
        let i = u32::try_from(self.nodes.len())
            .ok()
            .filter(|i| *i < INDEX)
            .ok_or(TooLarge::Nodes)?;
        self.nodes.push(node);
        Ok(i)
    }

    /// Puts `data` at every address of the network (`bits`, `prefix`).
    fn insert(&mut self, bits: u128, prefix: u8, data: Rec) -> Result<(), TooLarge> {
        self.insert_at_node(0, 0, bits, prefix, data)
    }

    fn insert_at_node(
        &mut self,
        node: u32,
        depth: u8,
        bits: u128,
        prefix: u8,
        data: Rec,
    ) -> Result<(), TooLarge> {
        let below = depth + 1;
        if below > prefix {
            // Past the prefix: everything below is covered.
            self.insert_at_record(node, 0, below, bits, prefix, data)?;
            self.insert_at_record(node, 1, below, bits, prefix, data)
        } else {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            self.insert_at_record(node, bit, below, bits, prefix, data)
        }
    }

    fn insert_at_record(
        &mut self,
        node: u32,
        side: usize,
        depth: u8,
        bits: u128,
        prefix: u8,
        data: Rec,
    ) -> Result<(), TooLarge> {
        let rec = self.nodes[node as usize][side];
        let child = match rec.kind() {
            NODE => rec.index(),
            FIXED => {
                // The IPv4 root is never merged away.
                return self.insert_at_node(rec.index(), depth, bits, prefix, data);
            }
            ALIAS => return Ok(()),
            _ if depth > prefix => {
                self.nodes[node as usize][side] = data;
                return Ok(());
            }
            // Above the prefix: a node to go on down, whose sides keep what was here.
            _ => {
                let child = self.alloc([rec, rec])?;
                self.nodes[node as usize][side] = Rec(NODE | child);
                child
            }
        };
        self.insert_at_node(child, depth, bits, prefix, data)?;
        let [left, right] = self.nodes[child as usize];
        if left == right && left.is_leaf() {
            self.nodes[node as usize][side] = left;
        }
        Ok(())
    }

    /// Pins the IPv4 subtree's root at `::/96` and points the IPv4-mapped, Teredo and 6to4
    /// ranges at it (nothing without IPv4 networks).
    fn alias_ipv4(&mut self) -> Result<(), TooLarge> {
        let mut at = 0;
        let mut parent = 0;
        for _ in 0..96 {
            let left = self.nodes[at as usize][0];
            if left.kind() != NODE {
                return Ok(());
            }
            parent = at;
            at = left.index();
        }
        self.nodes[parent as usize][0] = Rec(FIXED | at);
        let alias = Rec(ALIAS | at);
        self.mark(0xffff_0000_0000, 96, alias)?;
        self.mark(0x2001 << 112, 32, alias)?;
        self.mark(0x2002 << 112, 16, alias)
    }

    /// Sets the record of the network (`bits`, `prefix`) to `rec`, making the nodes on
    /// the way; nothing when data covers it already.
    fn mark(&mut self, bits: u128, prefix: u8, rec: Rec) -> Result<(), TooLarge> {
        let mut node = 0;
        for depth in 0..prefix {
            let side = ((bits >> (127 - depth)) & 1) as usize;
            let here = self.nodes[node as usize][side];
            if depth == prefix - 1 {
                if here == NO_DATA {
                    self.nodes[node as usize][side] = rec;
                }
                return Ok(());
            }
            node = match here.kind() {
                NODE | FIXED => here.index(),
                0 => {
                    let child = self.alloc([NO_DATA, NO_DATA])?;
                    self.nodes[node as usize][side] = Rec(NODE | child);
                    child
                }
                _ => return Ok(()),
            };
        }
        Ok(())
    }

    /// Merges every node whose two sides hold the same leaf into that leaf, then numbers
    /// the nodes still reachable in pre-order (left first), dropping the others.
    fn compact(&mut self) {
        let root = self.merge(0);
        if root.is_leaf() {
            self.nodes[0] = [root, root];
        }
        const UNSEEN: u32 = u32::MAX;
        let mut new = vec![UNSEEN; self.nodes.len()];
        let mut count = 0;
        let mut stack = vec![0u32];
        while let Some(old) = stack.pop() {
            if new[old as usize] != UNSEEN {
                continue;
            }
            new[old as usize] = count;
            count += 1;
            for side in [1, 0] {
                let rec = self.nodes[old as usize][side];
                if matches!(rec.kind(), NODE | FIXED) {
                    stack.push(rec.index());
                }
            }
        }
        let remap = |rec: Rec| match rec.kind() {
            NODE | FIXED | ALIAS => match new[rec.index() as usize] {
                UNSEEN => NO_DATA,
                n => Rec(rec.kind() | n),
            },
            _ => rec,
        };
        for (old, node) in self.nodes.iter_mut().enumerate() {
            if new[old] != UNSEEN {
                *node = [remap(node[0]), remap(node[1])];
            }
        }
        // Then each node moves to its number (the unreachable ones after the others),
        // in place: a swap puts one node where it belongs.
        let mut next = count;
        for n in &mut new {
            if *n == UNSEEN {
                *n = next;
                next += 1;
            }
        }
        for i in 0..new.len() {
            while new[i] as usize != i {
                let j = new[i] as usize;
                self.nodes.swap(i, j);
                new.swap(i, j);
            }
        }
        self.nodes.truncate(count as usize);
        self.nodes.shrink_to_fit();
    }

    /// What node `i` stands for once merged: itself, or the leaf both its sides hold.
    fn merge(&mut self, i: u32) -> Rec {
        let mut sides = self.nodes[i as usize];
        for rec in &mut sides {
            match rec.kind() {
                NODE => *rec = self.merge(rec.index()),
                FIXED => drop(self.merge(rec.index())),
                _ => {}
            }
        }
        self.nodes[i as usize] = sides;
        if sides[0] == sides[1] && sides[0].is_leaf() {
            sides[0]
        } else {
            Rec(NODE | i)
        }
    }
}

/// One value of the data section.
enum Value<'a> {
    Str(&'a str),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    /// Keys in order.
    Map(Vec<(&'a str, Value<'a>)>),
    Array(Vec<Value<'a>>),
}

impl Value<'_> {
    /// Feeds what identifies the value (type and content) to `h`.
    fn identify(&self, h: &mut impl Hasher) {
        match self {
            Value::Str(s) => {
                h.write_u8(2);
                h.write_usize(s.len());
                h.write(s.as_bytes());
            }
            Value::Double(d) => {
                h.write_u8(3);
                h.write_u64(d.to_bits());
            }
            Value::U16(v) => {
                h.write_u8(5);
                h.write_u16(*v);
            }
            Value::U32(v) => {
                h.write_u8(6);
                h.write_u32(*v);
            }
            Value::U64(v) => {
                h.write_u8(9);
                h.write_u64(*v);
            }
            Value::Map(m) => {
                h.write_u8(7);
                h.write_usize(m.len());
                for (k, v) in m {
                    Value::Str(k).identify(h);
                    v.identify(h);
                }
            }
            Value::Array(a) => {
                h.write_u8(11);
                h.write_usize(a.len());
                for v in a {
                    v.identify(h);
                }
            }
        }
    }

    /// 128 bits that tell values apart (equal values, equal bits; floats by their bits).
    fn id(&self) -> u128 {
        let (mut a, mut b) = (DefaultHasher::new(), DefaultHasher::new());
        b.write_u8(0x5a);
        self.identify(&mut a);
        self.identify(&mut b);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }
}

/// The data section being written, and where each value written inline went.
#[derive(Default)]
struct Data {
    bytes: Vec<u8>,
    /// Value id to (offset, length) of its first writing.
    written: HashMap<u128, (u32, u32)>,
    /// The same for numbers (by their bits; always 9 bytes): a database of a million
    /// places has two million, and they need no more.
    doubles: HashMap<u64, u32>,
}

impl Data {
    /// Writes a record at the top level; its offset.
    fn push(&mut self, v: &Value<'_>) -> u32 {
        let at = self.bytes.len() as u32;
        self.encode(v);
        at
    }

    /// Writes `v` inside a map or array: a pointer to an earlier copy when that is
    /// shorter than writing it again.
    fn inline(&mut self, v: &Value<'_>) {
        if let Value::Double(d) = v {
            let at = self.bytes.len() as u32;
            match self.doubles.get(&d.to_bits()) {
                // 9 bytes: a pointer is always shorter.
                Some(&first) => self.pointer(first),
                None => {
                    self.encode(v);
                    self.doubles.insert(d.to_bits(), at);
                }
            }
            return;
        }
        let id = v.id();
        if let Some(&(at, len)) = self.written.get(&id) {
            if len > pointer_len(at) {
                self.pointer(at);
                return;
            }
        }
        let at = self.bytes.len() as u32;
        self.encode(v);
        let len = self.bytes.len() as u32 - at;
        self.written.entry(id).or_insert((at, len));
    }

    fn encode(&mut self, v: &Value<'_>) {
        match v {
            Value::Str(s) => {
                self.control(2, s.len());
                self.bytes.extend_from_slice(s.as_bytes());
            }
            Value::Double(d) => {
                self.control(3, 8);
                self.bytes.extend_from_slice(&d.to_be_bytes());
            }
            Value::U16(n) => self.uint(5, u64::from(*n)),
            Value::U32(n) => self.uint(6, u64::from(*n)),
            Value::U64(n) => {
                let b = trimmed(*n);
                self.control(0, b.len());
                self.bytes.push(9 - 7);
                self.bytes.extend_from_slice(&b);
            }
            Value::Map(m) => {
                self.control(7, m.len());
                for (k, v) in m {
                    self.inline(&Value::Str(k));
                    self.inline(v);
                }
            }
            Value::Array(a) => {
                self.control(0, a.len());
                self.bytes.push(11 - 7);
                for v in a {
                    self.inline(v);
                }
            }
        }
    }

    fn uint(&mut self, tag: u8, n: u64) {
        let b = trimmed(n);
        self.control(tag, b.len());
        self.bytes.extend_from_slice(&b);
    }

    /// The control byte of type `tag` and `size`, with the size's extension bytes.
    fn control(&mut self, tag: u8, size: usize) {
        let tag = tag << 5;
        if size < 29 {
            self.bytes.push(tag | size as u8);
        } else if size < 29 + 256 {
            self.bytes.extend_from_slice(&[tag | 29, (size - 29) as u8]);
        } else if size < 285 + 65_536 {
            self.bytes.push(tag | 30);
            self.bytes
                .extend_from_slice(&((size - 285) as u16).to_be_bytes());
        } else {
            self.bytes.push(tag | 31);
            let n = (size.saturating_sub(65_821) as u32).to_be_bytes();
            self.bytes.extend_from_slice(&n[1..]);
        }
    }

    fn pointer(&mut self, at: u32) {
        let at = u64::from(at);
        let tag = 1 << 5;
        if at < 2048 {
            self.bytes
                .extend_from_slice(&[tag | (at >> 8) as u8, at as u8]);
        } else if at < 526_336 {
            let a = at - 2048;
            self.bytes.extend_from_slice(&[
                tag | 1 << 3 | (a >> 16 & 7) as u8,
                (a >> 8) as u8,
                a as u8,
            ]);
        } else if at < 134_744_064 {
            let a = at - 526_336;
            self.bytes.extend_from_slice(&[
                tag | 2 << 3 | (a >> 24 & 7) as u8,
                (a >> 16) as u8,
                (a >> 8) as u8,
                a as u8,
            ]);
        } else {
            self.bytes.push(tag | 3 << 3);
            self.bytes.extend_from_slice(&(at as u32).to_be_bytes());
        }
    }
}

fn pointer_len(at: u32) -> u32 {
    match at {
        0..2048 => 2,
        2048..526_336 => 3,
        526_336..134_744_064 => 4,
        _ => 5,
    }
}

/// `n` big-endian without its leading zero bytes.
fn trimmed(n: u64) -> Vec<u8> {
    let b = n.to_be_bytes();
    let zeros = b.iter().take_while(|x| **x == 0).count();
    b[zeros..].to_vec()
}

/// What the metadata section says.
pub(super) struct Meta<'a> {
    pub(super) database_type: &'a str,
    pub(super) description: &'a str,
    pub(super) build_epoch: u64,
}

/// The database of `rows`, which must be in insertion order (shorter prefixes first) and
/// hold no network twice.
pub(super) fn write(rows: Vec<Row>, meta: &Meta<'_>) -> Result<Vec<u8>, TooLarge> {
    // Rows with the same data share one record.
    let mut records: Vec<RecordKey> = Vec::new();
    let mut ids: hashbrown::HashTable<u32> = hashbrown::HashTable::new();
    let hasher = foldhash::fast::FixedState::default();
    let mut tree = Tree {
        nodes: vec![[NO_DATA, NO_DATA]],
    };
    for row in &rows {
        let key = RecordKey::of(row);
        let hash = hasher.hash_one(&key);
        let id = match ids.find(hash, |&i| records[i as usize] == key) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(records.len())
                    .ok()
                    .filter(|i| *i < INDEX)
                    .ok_or(TooLarge::Nodes)?;
                records.push(key);
                ids.insert_unique(hash, id, |&i| hasher.hash_one(&records[i as usize]));
                id
            }
        };
        let (bits, prefix) = tree_prefix(row.net);
        tree.insert(bits, prefix, Rec(DATA | id))?;
    }
    drop((rows, ids));
    tree.alias_ipv4()?;
    tree.compact();

    // The records still reached, in the order the tree reaches them.
    let mut data = Data::default();
    let mut offsets = vec![u32::MAX; records.len()];
    for node in &tree.nodes {
        for rec in node {
            let id = rec.index() as usize;
            if rec.kind() == DATA && offsets[id] == u32::MAX {
                offsets[id] = data.push(&records[id].value());
            }
        }
    }
    drop((records, data.written, data.doubles));
    let data = data.bytes;

    let count = tree.nodes.len() as u64;
    let bits = record_bits(count, data.len() as u64)?;
    let node_bytes = bits as usize * 2 / 8;
    let mut out = Vec::with_capacity(tree.nodes.len() * node_bytes + data.len() + 512);
    let value = |rec: Rec| -> u64 {
        match rec.kind() {
            NODE | FIXED | ALIAS => u64::from(rec.index()),
            DATA => count + 16 + u64::from(offsets[rec.index() as usize]),
            _ => count,
        }
    };
    for [l, r] in &tree.nodes {
        write_node(&mut out, value(*l), value(*r), bits);
    }
    drop(tree);
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    drop(data);
    out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
    let metadata = Value::Map(vec![
        ("binary_format_major_version", Value::U16(2)),
        ("binary_format_minor_version", Value::U16(0)),
        ("build_epoch", Value::U64(meta.build_epoch)),
        ("database_type", Value::Str(meta.database_type)),
        (
            "description",
            Value::Map(vec![("en", Value::Str(meta.description))]),
        ),
        ("ip_version", Value::U16(6)),
        ("languages", Value::Array(vec![Value::Str("en")])),
        ("node_count", Value::U32(count as u32)),
        ("record_size", Value::U16(bits as u16)),
    ]);
    let mut section = Data::default();
    section.push(&metadata);
    out.extend_from_slice(&section.bytes);
    Ok(out)
}

/// The smallest record size (24, 28 or 32 bits) that addresses `nodes` nodes and `data`
/// bytes of data.
fn record_bits(nodes: u64, data: u64) -> Result<u32, TooLarge> {
    [24, 28, 32]
        .into_iter()
        .find(|bits| nodes + 16 + data < 1 << bits)
        .ok_or(TooLarge::Records)
}

/// Appends a node of two records of `bits` bits.
fn write_node(out: &mut Vec<u8>, l: u64, r: u64, bits: u32) {
    match bits {
        24 => out.extend_from_slice(&[
            (l >> 16) as u8,
            (l >> 8) as u8,
            l as u8,
            (r >> 16) as u8,
            (r >> 8) as u8,
            r as u8,
        ]),
        // The middle byte holds the top four bits of each.
        28 => out.extend_from_slice(&[
            (l >> 16) as u8,
            (l >> 8) as u8,
            l as u8,
            ((l >> 24 & 15) << 4 | (r >> 24 & 15)) as u8,
            (r >> 16) as u8,
            (r >> 8) as u8,
            r as u8,
        ]),
        _ => {
            out.extend_from_slice(&(l as u32).to_be_bytes());
            out.extend_from_slice(&(r as u32).to_be_bytes());
        }
    }
}

/// A row's record: what makes two rows' records the same.
#[derive(PartialEq, Eq, Hash)]
struct RecordKey {
    continent: Code,
    country: Code,
    subdivision: Option<Code>,
    /// Latitude and longitude, by their bits.
    coords: Option<(u64, u64)>,
}

impl RecordKey {
    fn of(row: &Row) -> RecordKey {
        RecordKey {
            continent: row.continent,
            country: row.country,
            subdivision: row.subdivision,
            coords: row.coords.map(|(a, b)| (a.to_bits(), b.to_bits())),
        }
    }

    /// The record in the GeoLite2-City layout (see the module doc of `geoip_build`).
    fn value(&self) -> Value<'_> {
        let mut fields = vec![
            (
                "continent",
                Value::Map(vec![("code", Value::Str(self.continent.as_str()))]),
            ),
            (
                "country",
                Value::Map(vec![("iso_code", Value::Str(self.country.as_str()))]),
            ),
        ];
        if let Some((lat, lon)) = self.coords {
            let at = vec![
                ("latitude", Value::Double(f64::from_bits(lat))),
                ("longitude", Value::Double(f64::from_bits(lon))),
            ];
            fields.push(("location", Value::Map(at)));
        }
        if let Some(code) = &self.subdivision {
            let sub = Value::Map(vec![("iso_code", Value::Str(code.as_str()))]);
            fields.push(("subdivisions", Value::Array(vec![sub])));
        }
        Value::Map(fields)
    }
}

/// The network's place in the IPv6 tree: its bits and prefix length, IPv4 under `::/96`.
fn tree_prefix(net: ipnet::IpNet) -> (u128, u8) {
    match net.trunc() {
        ipnet::IpNet::V4(n) => (
            u128::from(u32::from_be_bytes(n.addr().octets())),
            96 + n.prefix_len(),
        ),
        ipnet::IpNet::V6(n) => (u128::from_be_bytes(n.addr().octets()), n.prefix_len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_24_28_and_32_bits() {
        // The layouts of the MaxMind DB spec, and the smallest size that fits.
        let mut out = Vec::new();
        write_node(&mut out, 0x12_3456, 0xAB_CDEF, 24);
        assert_eq!(out, [0x12, 0x34, 0x56, 0xAB, 0xCD, 0xEF]);
        out.clear();
        write_node(&mut out, 0x1AB_CDEF, 0x2FE_DCBA, 28);
        assert_eq!(out, [0xAB, 0xCD, 0xEF, 0x12, 0xFE, 0xDC, 0xBA]);
        out.clear();
        write_node(&mut out, 0x1234_5678, 0x9ABC_DEF0, 32);
        assert_eq!(out, [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0]);
        assert_eq!(record_bits(1000, 1000), Ok(24));
        assert_eq!(record_bits((1 << 24) - 17, 0), Ok(24));
        assert_eq!(record_bits((1 << 24) - 16, 0), Ok(28));
        assert_eq!(record_bits(1 << 24, 1 << 27), Ok(28));
        assert_eq!(record_bits(1 << 28, 0), Ok(32));
        assert_eq!(record_bits(1 << 31, 1 << 31), Err(TooLarge::Records));
    }
}
