//! The hand-over between the query path and the dnstap writer: a fixed pool of slots,
//! each with a byte buffer allocated once, and two bounded lock-free queues of slot
//! indices. A query thread takes a free index, copies its exchange into that slot and
//! queues the index as ready; the writer takes ready indices, encodes their slots and
//! gives the indices back. Whoever holds an index owns its slot, so each slot's mutex is
//! never contended: it only makes the ownership visible to the compiler. Nothing here
//! allocates after [`Pool::new`], and nothing waits: no free slot means the exchange is
//! dropped (and counted by the caller).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest query kept: the largest UDP datagram the server reads.
pub(crate) const MAX_QUERY: usize = 4096;
/// The largest response: a DNS message over TCP.
pub(crate) const MAX_RESPONSE: usize = 65535;
/// Slots for everyday exchanges (query and response together at most [`SMALL`] bytes):
/// a few milliseconds of a busy server's traffic.
const SMALL_SLOTS: usize = 1024;
/// Bytes of a small slot: a large query plus a full EDNS UDP reply fit.
pub(crate) const SMALL: usize = 2048;
/// Slots for the rare large exchange (a TCP answer of up to 64 KiB).
const LARGE_SLOTS: usize = 8;

/// One exchange: the query's bytes, then the response's, with what dnstap says of them.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The query, then the response (when there is one).
    pub(crate) bytes: Vec<u8>,
    /// Where the query ends in `bytes`.
    pub(crate) query_len: usize,
    /// Whether a response follows the query (none when rate limiting dropped it).
    pub(crate) responded: bool,
    /// The client's address and port.
    pub(crate) client: SocketAddr,
    /// Over TCP (else UDP).
    pub(crate) tcp: bool,
    /// When the query arrived and when the response was ready: seconds and nanoseconds
    /// since the Unix epoch.
    pub(crate) query_time: (u64, u32),
    /// See `query_time`.
    pub(crate) response_time: (u64, u32),
}

/// The slots and the queues of their indices.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Box<[Mutex<Slot>]>,
    free_small: IndexQueue,
    free_large: IndexQueue,
    /// Filled slots, in the order they were queued, for the writer.
    pub(crate) ready: IndexQueue,
}

impl Pool {
    /// Allocates every slot (a little over 2.5 MB).
    pub(crate) fn new() -> Pool {
        let slot = |cap| {
            Mutex::new(Slot {
                bytes: Vec::with_capacity(cap),
                query_len: 0,
                responded: false,
                client: SocketAddr::from(([0, 0, 0, 0], 0)),
                tcp: false,
                query_time: (0, 0),
                response_time: (0, 0),
            })
        };
        let slots: Box<[_]> = (0..SMALL_SLOTS)
            .map(|_| slot(SMALL))
            .chain((0..LARGE_SLOTS).map(|_| slot(MAX_QUERY + MAX_RESPONSE)))
            .collect();
        let free_small = IndexQueue::new(SMALL_SLOTS);
        let free_large = IndexQueue::new(LARGE_SLOTS);
        for i in 0..SMALL_SLOTS {
            free_small.push(i);
        }
        for i in 0..LARGE_SLOTS {
            free_large.push(SMALL_SLOTS + i);
        }
        Pool {
            slots,
            free_small,
            free_large,
            ready: IndexQueue::new(SMALL_SLOTS + LARGE_SLOTS),
        }
    }

    /// Copies an exchange into a free slot and queues it; `false` when no slot of its
    /// size is free (or the query is larger than any UDP query).
    pub(crate) fn put(
        &self,
        query: &[u8],
        response: Option<&[u8]>,
        fill: impl FnOnce(&mut Slot),
    ) -> bool {
        let len = query.len() + response.map_or(0, <[u8]>::len);
        if query.len() > MAX_QUERY || len > MAX_QUERY + MAX_RESPONSE {
            return false;
        }
        let taken = if len <= SMALL {
            self.free_small.pop().or_else(|| self.free_large.pop())
        } else {
            self.free_large.pop()
        };
        let Some(i) = taken else {
            return false;
        };
        {
            let mut slot = self.lock(i);
            slot.bytes.clear();
            // Within the capacity allocated in `new`: never reallocates.
            slot.bytes.extend_from_slice(query);
            slot.query_len = query.len();
            slot.responded = response.is_some();
            if let Some(r) = response {
                slot.bytes.extend_from_slice(r);
            }
            fill(&mut slot);
        }
        // Cannot fail: the ready queue has room for every slot.
        self.ready.push(i);
        true
    }

    /// True when a slot may be free (a hint: other threads take and give back slots).
    pub(crate) fn has_free(&self) -> bool {
        !self.free_small.is_empty() || !self.free_large.is_empty()
    }

    /// The slot `i`, taken from [`Pool::ready`]; give it back with [`Pool::release`].
    pub(crate) fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Slot> {
        // A panic while a slot was held cannot leave it half-written in a way that
        // matters (it is overwritten before its next use).
        self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns slot `i` to the free slots.
    pub(crate) fn release(&self, i: usize) {
        if i < SMALL_SLOTS {
            self.free_small.push(i);
        } else {
            self.free_large.push(i);
        }
    }
}

/// A bounded multi-producer multi-consumer queue of `usize` (Dmitry Vyukov's bounded
/// MPMC queue): each cell carries a sequence number saying whose turn it is, so a push
/// or pop is one compare-and-swap on a position and never waits for another thread.
#[derive(Debug)]
pub(crate) struct IndexQueue {
    cells: Box<[Cell]>,
    mask: usize,
    enqueue: AtomicUsize,
    dequeue: AtomicUsize,
}

#[derive(Debug)]
struct Cell {
    seq: AtomicUsize,
    value: AtomicUsize,
}

impl IndexQueue {
    /// A queue holding at least `capacity` values (rounded up to a power of two).
    pub(crate) fn new(capacity: usize) -> IndexQueue {
        let n = capacity.max(2).next_power_of_two();
        IndexQueue {
            cells: (0..n)
                .map(|i| Cell {
                    seq: AtomicUsize::new(i),
                    value: AtomicUsize::new(0),
                })
                .collect(),
            mask: n - 1,
            enqueue: AtomicUsize::new(0),
            dequeue: AtomicUsize::new(0),
        }
    }

    /// Appends `v`; `false` when the queue is full.
    pub(crate) fn push(&self, v: usize) -> bool {
        let mut pos = self.enqueue.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[pos & self.mask];
            let seq = cell.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as isize;
            if diff == 0 {
                match self.enqueue.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        cell.value.store(v, Ordering::Relaxed);
                        cell.seq.store(pos.wrapping_add(1), Ordering::Release);
                        return true;
                    }
                    Err(p) => pos = p,
                }
            } else if diff < 0 {
                return false;
            } else {
                pos = self.enqueue.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest value; `None` when the queue is empty.
    pub(crate) fn pop(&self) -> Option<usize> {
        let mut pos = self.dequeue.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[pos & self.mask];
            let seq = cell.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as isize;
            if diff == 0 {
                match self.dequeue.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let v = cell.value.load(Ordering::Relaxed);
                        cell.seq
                            .store(pos.wrapping_add(self.mask + 1), Ordering::Release);
                        return Some(v);
                    }
                    Err(p) => pos = p,
                }
            } else if diff < 0 {
                return None;
            } else {
                pos = self.dequeue.load(Ordering::Relaxed);
            }
        }
    }

    /// True when nothing is queued (a hint: another thread may push at once).
    pub(crate) fn is_empty(&self) -> bool {
        let pos = self.dequeue.load(Ordering::Acquire);
        let seq = self.cells[pos & self.mask].seq.load(Ordering::Acquire);
        (seq.wrapping_sub(pos.wrapping_add(1)) as isize) < 0
    }
}
