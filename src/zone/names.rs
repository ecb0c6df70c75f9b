//! A map keyed by lower-case wire-format names, built for zones of millions of names:
//! the names lie back to back in one buffer and the hash table holds 4-byte indices, so
//! a name costs its own bytes and a few more, instead of an allocation of its own and an
//! 80-byte hickory `Name` (or a boxed key) in a table that may be half empty.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Names (lower-case wire format, each ending with the root byte) to values, in insertion
/// order. Nothing is ever removed.
pub(crate) struct NameMap<V> {
    /// Every name, back to back.
    bytes: Vec<u8>,
    slots: Vec<Slot<V>>,
    /// Indices into `slots`, hashed by their name. Keyed with foldhash: every query
    /// hashes its name here; keys come from zone files, so collision attacks have
    /// nothing to aim at.
    table: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

/// A value and where its name is in `bytes` (beside it: a lookup reads both).
#[derive(Debug, Clone)]
struct Slot<V> {
    at: u32,
    len: u8,
    value: V,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            bytes: Vec::new(),
            slots: Vec::new(),
            table: HashTable::new(),
            hasher: Default::default(),
        }
    }
}

impl<V> std::fmt::Debug for NameMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameMap")
            .field("names", &self.len())
            .finish_non_exhaustive()
    }
}

impl<V: Clone> Clone for NameMap<V> {
    fn clone(&self) -> Self {
        NameMap {
            bytes: self.bytes.clone(),
            slots: self.slots.clone(),
            table: self.table.clone(),
            hasher: self.hasher.clone(),
        }
    }
}

impl<V> NameMap<V> {
    /// A map with room for `n` names of `bytes` bytes in all.
    pub(crate) fn with_capacity(n: usize, bytes: usize) -> Self {
        NameMap {
            bytes: Vec::with_capacity(bytes),
            slots: Vec::with_capacity(n),
            table: HashTable::with_capacity(n),
            hasher: Default::default(),
        }
    }

    /// The bytes of all names.
    pub(crate) fn name_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// How many names.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The index of `key`.
    #[inline]
    pub(crate) fn index_of(&self, key: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        let found = self.table.find(hash, |&i| self.key(i as usize) == key)?;
        Some(*found as usize)
    }

    /// The value of `key`.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        self.index_of(key).map(|i| &self.slots[i].value)
    }

    /// The name at `index`.
    #[inline]
    pub(crate) fn key(&self, index: usize) -> &[u8] {
        name(&self.bytes, &self.slots[index])
    }

    /// The value at `index`.
    pub(crate) fn value(&self, index: usize) -> &V {
        &self.slots[index].value
    }

    /// The value at `index`, to change.
    pub(crate) fn value_mut(&mut self, index: usize) -> &mut V {
        &mut self.slots[index].value
    }

    /// The index of `key` (at most 255 bytes), inserted with `make()` when it is new.
    pub(crate) fn index_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> V) -> usize {
        if let Some(i) = self.index_of(key) {
            return i;
        }
        let i = self.slots.len();
        let index = u32::try_from(i).expect("fewer than 2^32 names");
        let at = u32::try_from(self.bytes.len()).expect("names take less than 4 GiB");
        let len = u8::try_from(key.len()).expect("a name has at most 255 bytes");
        self.bytes.extend_from_slice(key);
        self.slots.push(Slot {
            at,
            len,
            value: make(),
        });
        let NameMap {
            bytes,
            slots,
            table,
            hasher,
        } = self;
        let rehash = |&j: &u32| hasher.hash_one(name(bytes, &slots[j as usize]));
        table.insert_unique(hasher.hash_one(key), index, rehash);
        i
    }

    /// Hands back the room that growing left unused (a finished map only is read).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.slots.shrink_to_fit();
        let NameMap {
            bytes,
            slots,
            table,
            hasher,
        } = self;
        table.shrink_to_fit(|&j| hasher.hash_one(name(bytes, &slots[j as usize])));
    }
}

#[inline]
fn name<'b, V>(bytes: &'b [u8], slot: &Slot<V>) -> &'b [u8] {
    &bytes[slot.at as usize..][..usize::from(slot.len)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let mut m: NameMap<u32> = NameMap::default();
        let names: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| {
                let label = format!("h{i}");
                let mut k = vec![label.len() as u8];
                k.extend_from_slice(label.as_bytes());
                k.extend_from_slice(b"\x07example\0");
                k
            })
            .collect();
        for (i, k) in names.iter().enumerate() {
            assert_eq!(m.index_or_insert_with(k, || i as u32 * 2), i);
        }
        // Inserting again finds the first value.
        assert_eq!(m.index_or_insert_with(&names[7], || 99), 7);
        m.shrink_to_fit();
        for (i, k) in names.iter().enumerate() {
            assert_eq!(m.get(k), Some(&(i as u32 * 2)));
            assert_eq!(m.key(i), &k[..]);
        }
        assert_eq!(m.get(b"\x07example\0"), None);
        assert_eq!(m.get(b""), None);
        assert_eq!(m.len(), 5000);
    }
}
