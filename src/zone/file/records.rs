//! Parses the expanded text with hickory a chunk at a time (see `include::Chunk`) and
//! gathers the records into a zone's compact nodes as they come, so that loading a zone
//! of millions of records never holds hickory's map of them all (600 bytes a record).
//! Errors are found as hickory would find them in the whole text: the first entry at
//! which a prefix of the text stops parsing.

use hickory_proto::rr::{Name, Record, RecordSet, RecordType};
use hickory_proto::serialize::txt::{ParseError, Parser};

use super::include::Expander;
use crate::zone::names::NameMap;
use crate::zone::store::{self, Store};
use crate::zone::{Key, Node};

/// The records of a zone file, by owner.
#[derive(Debug, Default)]
pub(super) struct Gathered {
    pub(super) nodes: NameMap<Node>,
    pub(super) store: Store,
}

/// Why the text does not parse: hickory's message, and the entry (index of
/// `Expander::pieces`) it is about, if any.
pub(super) struct Failed {
    pub(super) msg: String,
    pub(super) piece: Option<usize>,
}

/// Parses the expanded entries of `text` (the zone file's; `origin` the initial origin)
/// chunk by chunk into `nodes` (the owners the expander found).
pub(super) fn parse(
    ex: &Expander,
    text: &str,
    nodes: NameMap<Node>,
    origin: &Name,
) -> Result<Gathered, Failed> {
    let mut g = Gathered {
        nodes,
        store: Store::with_capacity(text.len()),
    };
    let n = ex.pieces.len();
    let starts: Vec<(usize, &str)> = std::iter::once((0, ""))
        .chain(ex.chunks.iter().map(|c| (c.first, c.context.as_str())))
        .collect();
    for (c, &(first, context)) in starts.iter().enumerate() {
        let last = starts.get(c + 1).map_or(n, |s| s.0);
        if first == last {
            continue;
        }
        // The chunk's first `k` entries, after its context. (`path: None`: no `$INCLUDE`
        // survives expansion, and this way hickory could not follow one if it did.)
        let parse = |k: usize| {
            let mut chunk = String::with_capacity(context.len() + 64 * k);
            chunk.push_str(context);
            for p in &ex.pieces[first..first + k] {
                let entry = ex.text(text, p);
                chunk.push_str(entry);
                if !entry.ends_with('\n') {
                    chunk.push('\n');
                }
            }
            Parser::new(chunk, None, Some(origin.clone())).parse()
        };
        // hickory refuses a second SOA at a name; one in an earlier chunk it cannot see.
        let second_soa = |k: usize| {
            ex.pieces[first..first + k].iter().position(|p| {
                p.key
                    .is_some_and(|(owner, t)| t == RecordType::SOA && g.has_soa(owner as usize))
            })
        };
        let fails = |k: usize| match (parse(k), second_soa(k)) {
            (Err(e), _) => Some(e.to_string()),
            (Ok(_), Some(_)) => Some(ParseError::from("SOA is already specified").to_string()),
            (Ok(_), None) => None,
        };
        match (parse(last - first), second_soa(last - first)) {
            (Ok((_, map)), None) => {
                // The map is in owner order: each owner's RRsets are added at once.
                let mut owner: Vec<RecordSet> = Vec::new();
                for (_, set) in map {
                    if owner.first().is_some_and(|o| o.name() != set.name()) {
                        g.add(std::mem::take(&mut owner));
                    }
                    owner.push(set);
                }
                g.add(owner);
            }
            _ => {
                // The shortest failing prefix: failure is monotonic, prefixes of a zone
                // file being zone files.
                let (mut lo, mut hi) = (1, last - first);
                let mut msg = fails(hi).unwrap_or_default();
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    match fails(mid) {
                        None => lo = mid + 1,
                        Some(m) => (hi, msg) = (mid, m),
                    }
                }
                return Err(Failed {
                    msg,
                    piece: Some(first + hi - 1),
                });
            }
        }
    }
    Ok(g)
}

impl Gathered {
    fn has_soa(&self, i: usize) -> bool {
        self.store.has(self.nodes.value(i).rrsets, RecordType::SOA)
    }

    /// Adds one owner's RRsets as hickory parsed them, merged with what earlier chunks
    /// had at the owner the way hickory's `RecordSet` would have.
    fn add(&mut self, owner: Vec<RecordSet>) {
        let Some(first) = owner.first() else { return };
        let key = Key::of(first.name());
        let i = self.nodes.index_or_insert_with(key.bytes(), Node::default);
        let h = self.nodes.value(i).rrsets;
        let mut sets = self.store.sets(h, key.bytes());
        for set in owner {
            let t = set.record_type();
            let records: Vec<Record> = set.into_iter().collect();
            match sets.iter_mut().find(|(rt, _)| *rt == t) {
                Some((_, old)) => {
                    let mut merged = RecordSet::new(old[0].name.clone(), t, 0);
                    for r in old.drain(..).chain(records) {
                        merged.insert(r, 0);
                    }
                    *old = merged.into_iter().collect();
                }
                None => sets.push((t, records)),
            }
        }
        // In type order, as hickory's map of the whole file would give them.
        sets.sort_by_key(|(t, _)| u16::from(*t));
        self.nodes.value_mut(i).rrsets = self.store.put(key.bytes(), sets);
    }

    /// The RRsets of the node at index `i`.
    pub(super) fn sets(&self, i: usize) -> store::Sets {
        self.store
            .sets(self.nodes.value(i).rrsets, self.nodes.key(i))
    }
}
