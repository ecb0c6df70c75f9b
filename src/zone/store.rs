//! The RRsets of a zone's nodes, kept compact: a hickory `Record` takes 280 bytes (its
//! owner name alone 80) where an A record's data is 4, so a zone of a million names held
//! as `Record`s took a gigabyte. Each node's RRsets are written once, back to back in one
//! buffer, as their wire RDATA (names uncompressed, letter case kept); the general path
//! decodes the few it answers with. Data that would not come back identical through its
//! wire form (none known) stays as `Record`s.
//!
//! A node's bytes: the owner as written when its letter case differs from the lower-case
//! key (a length byte, 0 when it does not), the number of RRsets (u16), then per RRset
//! its type and record count (u16 each) and per record its TTL (u32), RDLENGTH (u16) and
//! RDATA.

use std::borrow::Cow;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};

/// Where a node's RRsets are in a [`Store`]; the default is a node without any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RRsets(u32);

/// The high bit of an [`RRsets`]: the node's RRsets are `Store::records[low bits]`.
const AS_RECORDS: u32 = 1 << 31;

/// One node's RRsets as hickory records, grouped by type.
pub(super) type Sets = Vec<(RecordType, Vec<Record>)>;

/// Every node's RRsets of one zone.
#[derive(Debug, Clone, Default)]
pub(super) struct Store {
    bytes: Vec<u8>,
    records: Vec<Sets>,
}

impl Store {
    /// A store with room for `bytes` bytes of compact RRsets.
    pub(super) fn with_capacity(bytes: usize) -> Store {
        Store {
            bytes: Vec::with_capacity(bytes),
            records: Vec::new(),
        }
    }

    /// Stores `sets` (non-empty, the records of each owned by the node `key`, a
    /// lower-case wire name).
    pub(super) fn put(&mut self, key: &[u8], sets: Sets) -> RRsets {
        let at = self.bytes.len();
        if at < AS_RECORDS as usize - 1 && self.encode(key, &sets) {
            // An offset of 0 would read as "no RRsets": offsets count from 1.
            return RRsets(at as u32 + 1);
        }
        self.bytes.truncate(at);
        self.records.push(sets);
        RRsets(AS_RECORDS | (self.records.len() - 1) as u32)
    }

    /// Appends the compact form of `sets`; false when some record would not come back
    /// the same (the caller then keeps the records).
    fn encode(&mut self, key: &[u8], sets: &Sets) -> bool {
        let Some(owner) = sets.first().and_then(|(_, rs)| rs.first()).map(|r| &r.name) else {
            return false;
        };
        let owner = wire(owner);
        if owner.len() != key.len() {
            return false;
        }
        if owner == key {
            self.bytes.push(0);
        } else {
            self.bytes.push(owner.len() as u8);
            self.bytes.extend_from_slice(&owner);
        }
        let Ok(n) = u16::try_from(sets.len()) else {
            return false;
        };
        self.bytes.extend_from_slice(&n.to_be_bytes());
        let mut rdata = Vec::with_capacity(64);
        for (t, records) in sets {
            let Ok(count) = u16::try_from(records.len()) else {
                return false;
            };
            self.bytes.extend_from_slice(&u16::from(*t).to_be_bytes());
            self.bytes.extend_from_slice(&count.to_be_bytes());
            for r in records {
                rdata.clear();
                let mut enc = BinEncoder::new(&mut rdata);
                enc.set_name_encoding(NameEncoding::Uncompressed);
                let same = r.data.emit(&mut enc).is_ok()
                    && r.record_type() == *t
                    && r.dns_class == hickory_proto::rr::DNSClass::IN
                    && wire(&r.name) == owner
                    && decode_rdata(*t, &rdata).is_some_and(|d| d == r.data);
                let Ok(len) = u16::try_from(rdata.len()) else {
                    return false;
                };
                if !same {
                    return false;
                }
                self.bytes.extend_from_slice(&r.ttl.to_be_bytes());
                self.bytes.extend_from_slice(&len.to_be_bytes());
                self.bytes.extend_from_slice(&rdata);
            }
        }
        true
    }

    /// The types of the node's RRsets, in stored order.
    pub(super) fn types(&self, h: RRsets) -> Vec<RecordType> {
        match self.view(h) {
            View::None => Vec::new(),
            View::Records(sets) => sets.iter().map(|(t, _)| *t).collect(),
            View::Bytes(b) => Walk::new(b).map(|(t, _, _)| t).collect(),
        }
    }

    /// The type of the node's first RRset.
    pub(super) fn first_type(&self, h: RRsets) -> Option<RecordType> {
        match self.view(h) {
            View::None => None,
            View::Records(sets) => sets.first().map(|(t, _)| *t),
            View::Bytes(b) => Walk::new(b).next().map(|(t, _, _)| t),
        }
    }

    /// Whether the node has an RRset of type `t`.
    pub(super) fn has(&self, h: RRsets, t: RecordType) -> bool {
        match self.view(h) {
            View::None => false,
            View::Records(sets) => sets.iter().any(|(rt, _)| *rt == t),
            View::Bytes(b) => Walk::new(b).any(|(rt, _, _)| rt == t),
        }
    }

    /// The RRset of type `t` of the node `key` (lower-case wire name).
    pub(super) fn get(&self, h: RRsets, key: &[u8], t: RecordType) -> Option<Cow<'_, [Record]>> {
        match self.view(h) {
            View::None => None,
            View::Records(sets) => sets
                .iter()
                .find(|(rt, _)| *rt == t)
                .map(|(_, rs)| Cow::Borrowed(rs.as_slice())),
            View::Bytes(b) => {
                let (_, count, records) = Walk::new(b).find(|(rt, _, _)| *rt == t)?;
                Some(Cow::Owned(decode_set(owner(b, key), t, count, records)))
            }
        }
    }

    /// Whether the node's RRsets are stored compact (every record of class IN, owned by
    /// the node as one letter case).
    pub(super) fn is_compact(&self, h: RRsets) -> bool {
        !matches!(self.view(h), View::Records(_))
    }

    /// The owner of the node `key`'s records, as written (of the first record when
    /// they are not compact).
    pub(super) fn owner(&self, h: RRsets, key: &[u8]) -> Name {
        match self.view(h) {
            View::Records(sets) => (sets.first().and_then(|(_, rs)| rs.first()))
                .map_or_else(|| from_wire(key), |r| r.name.clone()),
            View::Bytes(b) => owner(b, key),
            View::None => from_wire(key),
        }
    }

    /// The first RRset of the node `key`.
    pub(super) fn first(&self, h: RRsets, key: &[u8]) -> Option<Cow<'_, [Record]>> {
        self.get(h, key, self.first_type(h)?)
    }

    /// Every RRset of the node `key`, as records.
    pub(super) fn sets(&self, h: RRsets, key: &[u8]) -> Sets {
        match self.view(h) {
            View::None => Vec::new(),
            View::Records(sets) => sets.clone(),
            View::Bytes(b) => {
                let owner = owner(b, key);
                Walk::new(b)
                    .map(|(t, count, records)| (t, decode_set(owner.clone(), t, count, records)))
                    .collect()
            }
        }
    }

    /// Hands back the room that growing left unused.
    pub(super) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.records.shrink_to_fit();
    }

    fn view(&self, h: RRsets) -> View<'_> {
        if h.0 == 0 {
            View::None
        } else if h.0 & AS_RECORDS != 0 {
            View::Records(&self.records[(h.0 & !AS_RECORDS) as usize])
        } else {
            View::Bytes(&self.bytes[h.0 as usize - 1..])
        }
    }
}

enum View<'s> {
    None,
    Records(&'s Sets),
    /// The node's bytes and everything after them.
    Bytes(&'s [u8]),
}

/// The owner of a node's records: as written, or the lower-case key.
fn owner(b: &[u8], key: &[u8]) -> Name {
    let n = usize::from(b[0]);
    from_wire(if n == 0 { key } else { &b[1..1 + n] })
}

/// The RRsets of a node's bytes: (type, record count, the records' bytes).
struct Walk<'s> {
    b: &'s [u8],
    at: usize,
    left: u16,
}

impl<'s> Walk<'s> {
    fn new(b: &'s [u8]) -> Walk<'s> {
        let at = 1 + usize::from(b[0]);
        Walk {
            b,
            at: at + 2,
            left: u16::from_be_bytes([b[at], b[at + 1]]),
        }
    }
}

impl<'s> Iterator for Walk<'s> {
    type Item = (RecordType, u16, &'s [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let b = self.b;
        let t = RecordType::from(u16::from_be_bytes([b[self.at], b[self.at + 1]]));
        let count = u16::from_be_bytes([b[self.at + 2], b[self.at + 3]]);
        let start = self.at + 4;
        let mut end = start;
        for _ in 0..count {
            end += 6 + usize::from(u16::from_be_bytes([b[end + 4], b[end + 5]]));
        }
        self.at = end;
        Some((t, count, &b[start..end]))
    }
}

fn decode_set(owner: Name, t: RecordType, count: u16, mut b: &[u8]) -> Vec<Record> {
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let ttl = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
        let data = decode_rdata(t, &b[6..6 + len]).expect("checked when stored");
        out.push(Record::from_rdata(owner.clone(), ttl, data));
        b = &b[6 + len..];
    }
    out
}

fn decode_rdata(t: RecordType, rdata: &[u8]) -> Option<RData> {
    let mut dec = BinDecoder::new(rdata);
    let data = RData::read(&mut dec, t, Restrict::new(rdata.len() as u16)).ok()?;
    dec.is_empty().then_some(data)
}

/// `name` in wire format, letter case kept.
pub(super) fn wire(name: &Name) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        k.push(label.len() as u8);
        k.extend_from_slice(label);
    }
    k.push(0);
    k
}

/// The name of a wire-format name (labels and the root byte).
pub(super) fn from_wire(b: &[u8]) -> Name {
    Name::read(&mut BinDecoder::new(b)).expect("a name written by `wire`")
}
