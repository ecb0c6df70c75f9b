//! Signatures made on first use: the denial of a name that does not exist and answers
//! synthesised from a wildcard, which cannot be signed in advance (there are as many as
//! there are names to ask for).
//!
//! They are kept in a fixed table of slots (a direct-mapped cache, one `ArcSwapOption`
//! a slot: readers take no lock, memory is bounded whatever names are asked), and made at
//! most [`Fresh::per_second`] a second: a flood of random names cannot turn the server
//! into a signing machine. Over the cap, a name not in the cache is answered SERVFAIL
//! (what a validator would conclude of an unsigned answer anyway), counted in
//! `gslbd_dnssec_signing_capped_total`.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use hickory_proto::rr::Record;

/// Slots in the cache.
pub const SLOTS: usize = 16_384;
/// Fresh signing operations allowed per second (each costs ~20 µs of CPU for ECDSA P-256).
pub const PER_SECOND: u64 = 5_000;

struct Entry {
    key: Box<[u8]>,
    records: Box<[Record]>,
}

/// The cache and its rate cap.
pub struct Fresh {
    slots: Box<[ArcSwapOption<Entry>]>,
    hasher: foldhash::fast::RandomState,
    /// Token bucket: tokens available, scaled by 1000, and the last refill (ms).
    tokens: AtomicU64,
    refilled_ms: AtomicU64,
    started: Instant,
    per_second: u64,
    /// Signing operations done.
    pub signed: AtomicU64,
    /// Answers refused for the cap.
    pub capped: AtomicU64,
    /// Answers served from the cache.
    pub hits: AtomicU64,
}

/// Process-wide totals of every cache (a reload or a renewal starts a new cache), for
/// `/metrics`: made, capped, served from the cache.
pub static TOTALS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

impl std::fmt::Debug for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fresh")
            .field("slots", &self.slots.len())
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

impl Default for Fresh {
    fn default() -> Self {
        Fresh::new(SLOTS, PER_SECOND)
    }
}

impl Fresh {
    /// A cache of `slots` entries allowing `per_second` signing operations a second (with
    /// a burst of as many).
    pub fn new(slots: usize, per_second: u64) -> Fresh {
        Fresh {
            slots: (0..slots.max(1)).map(|_| ArcSwapOption::empty()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            tokens: AtomicU64::new(per_second * 1000),
            refilled_ms: AtomicU64::new(0),
            started: Instant::now(),
            per_second,
            signed: AtomicU64::new(0),
            capped: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// The records cached under `key`, or made by `sign` (and cached) when the cap
    /// allows; `None` over the cap.
    pub fn get_or_sign(
        &self,
        key: &[u8],
        sign: impl FnOnce() -> Vec<Record>,
    ) -> Option<Arc<[Record]>> {
        let slot = &self.slots[(self.hasher.hash_one(key) as usize) % self.slots.len()];
        if let Some(e) = slot.load().as_ref().filter(|e| *e.key == *key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            TOTALS[2].fetch_add(1, Ordering::Relaxed);
            return Some(e.records.iter().cloned().collect());
        }
        if !self.take() {
            self.capped.fetch_add(1, Ordering::Relaxed);
            TOTALS[1].fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.signed.fetch_add(1, Ordering::Relaxed);
        TOTALS[0].fetch_add(1, Ordering::Relaxed);
        let records: Box<[Record]> = sign().into_boxed_slice();
        let out: Arc<[Record]> = records.iter().cloned().collect();
        slot.store(Some(Arc::new(Entry {
            key: key.into(),
            records,
        })));
        Some(out)
    }

    /// Takes one token from the bucket, refilling it for the time passed.
    fn take(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.refilled_ms.swap(now, Ordering::AcqRel);
        let full = self.per_second * 1000;
        if now > last {
            let add = (now - last) * self.per_second;
            let _ = self
                .tokens
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    Some((t + add).min(full))
                });
        }
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1000))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_caps() {
        let f = Fresh::new(64, 3);
        let mut made = 0;
        for i in 0..3u8 {
            assert!(
                f.get_or_sign(&[i], || {
                    made += 1;
                    Vec::new()
                })
                .is_some()
            );
        }
        assert_eq!(made, 3);
        // Cached: no token needed.
        assert!(f.get_or_sign(&[1], || unreachable!()).is_some());
        // The bucket is empty: a new key is refused.
        assert!(f.get_or_sign(&[9], Vec::new).is_none());
        assert_eq!(f.capped.load(Ordering::Relaxed), 1);
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(f.get_or_sign(&[9], Vec::new).is_some());
    }
}
