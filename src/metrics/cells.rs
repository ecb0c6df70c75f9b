//! Sharded counters for the query path: each thread adds to its own copy, in its own
//! cache lines, and a scrape sums the copies. With one shared copy every UDP worker on
//! every core would write the same line for the same answer (`udp`/`NOERROR`/`A`,
//! `www`/`eu`), and the line would bounce between cores on each query: 4.5 ns a count
//! alone, 34 ns beside one other counting thread on a 2-core VM (`cargo bench --bench
//! query_path -- counters`), and worse with more cores.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Counters a cache line holds.
const PER_LINE: usize = 8;
/// Most shards a set of cells has.
const MAX_SHARDS: usize = 64;
/// Memory a set of cells may take for all its shards; a large config gets fewer shards.
const MAX_BYTES: usize = 4 << 20;

/// Two cache lines: the adjacent-line prefetcher fetches pairs, so a shard ending in one
/// line of a pair would still share it with the next shard.
#[derive(Debug)]
#[repr(align(128))]
struct Line([AtomicU64; PER_LINE * 2]);

impl Line {
    fn zero() -> Line {
        Line([const { AtomicU64::new(0) }; PER_LINE * 2])
    }
}

/// `len` counters, one copy per shard; a thread adds to the copy of its shard
/// ([`thread_shard`]), reads sum the copies.
#[derive(Debug)]
pub struct Cells {
    len: usize,
    /// Lines per shard.
    stride: usize,
    /// A power of two.
    shards: usize,
    lines: Box<[Line]>,
}

impl Cells {
    /// `len` zeroed counters with one shard per core (a power of two, at most
    /// `MAX_SHARDS`), fewer when that would pass `MAX_BYTES`.
    pub fn new(len: usize) -> Cells {
        Cells::with_shards(len, shard_count())
    }

    /// `len` zeroed counters in up to `shards` shards (rounded down to a power of two).
    fn with_shards(len: usize, shards: usize) -> Cells {
        let stride = len.div_ceil(PER_LINE * 2).max(1);
        let fit = (MAX_BYTES / (stride * size_of::<Line>())).max(1);
        let shards = prev_power_of_two(shards.min(fit));
        Cells {
            len,
            stride,
            shards,
            lines: (0..stride * shards).map(|_| Line::zero()).collect(),
        }
    }

    fn cell(&self, shard: usize, i: usize) -> &AtomicU64 {
        let n = (shard & (self.shards - 1)) * self.stride * PER_LINE * 2 + i;
        &self.lines[n / (PER_LINE * 2)].0[n % (PER_LINE * 2)]
    }

    /// Adds one to counter `i` (ignored past the end).
    pub fn add(&self, i: usize) {
        if i < self.len {
            self.cell(thread_shard(), i).fetch_add(1, Relaxed);
        }
    }

    /// Counter `i`: the sum of its copies.
    pub fn get(&self, i: usize) -> u64 {
        if i >= self.len {
            return 0;
        }
        (0..self.shards)
            .map(|s| self.cell(s, i).load(Relaxed))
            .sum()
    }

    /// How many counters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

/// Shards per set of cells: the number of cores rounded up to a power of two, at most
/// [`MAX_SHARDS`].
fn shard_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// This thread's shard number: threads are numbered in the order they first count, so
/// the UDP workers, which count from their first query on, get shards of their own.
pub fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        let mut v = s.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Relaxed);
            s.set(v);
        }
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_all_add_up() {
        let cells = Cells::with_shards(100, 4);
        assert_eq!(cells.shards, 4);
        std::thread::scope(|s| {
            for t in 0..8 {
                let cells = &cells;
                s.spawn(move || {
                    for n in 0..10_000 {
                        cells.add((t * 7 + n) % 100);
                    }
                });
            }
        });
        assert_eq!((0..100).map(|i| cells.get(i)).sum::<u64>(), 80_000);
        assert_eq!(cells.get(3), 800);
        cells.add(100);
        assert_eq!(cells.get(100), 0, "past the end: ignored");
    }

    #[test]
    fn each_shard_has_cache_lines_of_its_own() {
        for len in [1, 15, 16, 17, 272, 1000] {
            let cells = Cells::with_shards(len, 8);
            assert_eq!(cells.shards, 8);
            let addr = |s: usize, i: usize| std::ptr::from_ref(cells.cell(s, i)) as usize;
            for s in 0..8 {
                assert_eq!(
                    addr(s, 0) % 128,
                    0,
                    "len {len}: shard {s} starts a line pair"
                );
                assert!(addr(s, len - 1) - addr(s, 0) < cells.stride * 128);
                if s > 0 {
                    assert!(
                        addr(s, 0) > addr(s - 1, len - 1),
                        "len {len}: shards in order"
                    );
                }
            }
        }
        assert_ne!(
            std::thread::spawn(thread_shard).join().unwrap(),
            std::thread::spawn(thread_shard).join().unwrap(),
            "two threads, two shards"
        );
    }

    #[test]
    fn a_large_config_gets_fewer_shards() {
        // 1M counters are 8 MiB a copy: one copy only.
        let big = Cells::with_shards(1 << 20, 64);
        assert_eq!(big.shards, 1);
        let mid = Cells::with_shards(100_000, 64);
        assert!(mid.shards * mid.stride * 128 <= MAX_BYTES, "{}", mid.shards);
        assert_eq!(mid.shards, 4);
        assert_eq!(Cells::with_shards(10, 3).shards, 2, "a power of two");
    }
}
