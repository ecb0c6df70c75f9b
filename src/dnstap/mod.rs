//! dnstap: every sampled exchange, the query as received and the response as sent, to a
//! collector over Frame Streams (`server.dnstap`), as BIND, Unbound, Knot and PowerDNS
//! send theirs: an AUTH_QUERY event and an AUTH_RESPONSE event, with the client's address
//! and port, UDP or TCP, and both times; identity (the host name) and version
//! (`gslbd x.y.z`) on each.
//!
//! ```text
//! server::answer_from ─► begin (sampled? note the time) ─► fast | general ─► finish
//!                    └─► Pending::end: query + reply bytes ─► Pool (free slot → ready)
//!                                                              │ lock-free, never waits
//! writer thread ◄──────────────────────────────────────────────┘
//!   protobuf (proto.rs) ─► Frame Streams (fstrm.rs) ─► Unix socket or TCP
//! ```
//!
//! The query path neither waits nor allocates on dnstap's account: it copies the two
//! messages into a slot of a pool allocated when dnstap is first configured and queues
//! the slot's index (pool.rs); the one writer thread encodes and writes. With no free
//! slot (the collector slow, gone, or not yet connected) the exchange is dropped and
//! counted (`gslbd_dnstap_dropped_total`). The writer reconnects with backoff, logging
//! once per change of state, not per message; a reload that changes the destination
//! finishes the stream and connects to the new one; the server's stop drains the queue
//! and finishes the stream (STOP, then the collector's FINISH).
//!
//! The sender lives in the [`Runtime`](crate::runtime::Runtime) beside the snapshot, so
//! its queue and counters survive reloads; `server.dnstap.sample` is read from the
//! snapshot, so a reload changes it at once.

mod fstrm;
mod pool;
pub mod proto;
#[cfg(test)]
mod tests;
mod writer;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::Thread;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::metrics::family;
use crate::model::{Dnstap, DnstapDest};
use crate::runtime::View;
use pool::Pool;

/// The dnstap sender of a server: idle (nothing allocated, no thread) until
/// `server.dnstap` is configured.
#[derive(Debug, Default)]
pub struct Tap {
    inner: Arc<Inner>,
}

/// What the query path, the control plane and the writer thread share.
#[derive(Debug, Default)]
struct Inner {
    /// Allocated on the first configuration with a destination.
    pool: OnceLock<Pool>,
    /// Events written to the collector.
    sent: AtomicU64,
    /// Events dropped: no free slot, or lost with a failed write.
    dropped: AtomicU64,
    /// Where the writer should be connected; `None`: nowhere.
    dest: Mutex<Option<DnstapDest>>,
    /// Bumped by every change of `dest`, so the writer notices one cheaply.
    generation: AtomicU64,
    /// Set once the server stops: the writer drains, finishes the stream and exits.
    stop: AtomicBool,
    /// The writer is parked waiting for work: the next producer wakes it.
    sleeping: AtomicBool,
    /// The writer thread, once started.
    writer: OnceLock<Thread>,
    /// Closed by the writer thread when it exits.
    exited: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Tap {
    /// Applies `server.dnstap` (at start and on every reload): a new destination makes
    /// the writer finish its stream and connect there; none makes it disconnect.
    pub fn configure(&self, conf: Option<&Dnstap>) {
        let want = conf.map(|c| &c.dest);
        let inner = &self.inner;
        {
            let mut dest = inner.dest.lock().unwrap_or_else(|e| e.into_inner());
            if dest.as_ref() == want {
                return;
            }
            match (dest.as_ref(), want) {
                (None, Some(to)) => info!(destination = %to, "dnstap: logging queries"),
                (Some(from), Some(to)) => {
                    info!(from = %from, to = %to, "dnstap: destination changed")
                }
                (Some(from), None) => info!(destination = %from, "dnstap: turned off"),
                (None, None) => {}
            }
            dest.clone_from(&want.cloned());
            inner.generation.fetch_add(1, Ordering::AcqRel);
        }
        if want.is_some() {
            inner.pool.get_or_init(Pool::new);
            if inner.writer.get().is_none() {
                self.spawn_writer();
            }
        }
        if let Some(t) = inner.writer.get() {
            t.unpark();
        }
    }

    fn spawn_writer(&self) {
        let (tx, rx) = mpsc::channel::<()>();
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("gslbd-dnstap".into())
            .spawn(move || {
                let _exited = tx;
                writer::run(&inner);
            });
        match spawned {
            Ok(handle) => {
                let _ = self.inner.writer.set(handle.thread().clone());
                *self.inner.exited.lock().unwrap_or_else(|e| e.into_inner()) = Some(rx);
            }
            Err(e) => {
                warn!("dnstap: cannot start the writer thread: {e}; every message is dropped")
            }
        }
    }

    /// Events written to the collector so far.
    pub fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Events dropped so far (queue full, collector slow or gone, failed writes).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Finishes the stream as the server stops: the writer writes what is queued, sends
    /// STOP and waits for the collector's FINISH; at most `within`. Exchanges after this
    /// are never sent (they fill the queue, then are dropped and counted).
    pub fn finish(&self, within: Duration) {
        let inner = &self.inner;
        inner.stop.store(true, Ordering::Release);
        let Some(t) = inner.writer.get() else {
            return;
        };
        t.unpark();
        let exited = inner
            .exited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = exited {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(within) {
                warn!("dnstap: the stream was not finished within {within:?}");
            }
        }
    }

    /// Appends the dnstap counters to `/metrics`, once dnstap has been configured.
    pub fn render(&self, out: &mut String) {
        if self.inner.pool.get().is_none() {
            return;
        }
        family(
            out,
            "gslbd_dnstap_sent_total",
            "counter",
            "dnstap messages (AUTH_QUERY and AUTH_RESPONSE) written to the collector.",
        );
        let _ = writeln!(out, "gslbd_dnstap_sent_total {}", self.sent());
        family(
            out,
            "gslbd_dnstap_dropped_total",
            "counter",
            "dnstap messages dropped: the queue was full (the collector slow, gone or not yet connected), or a write to the collector failed.",
        );
        let _ = writeln!(out, "gslbd_dnstap_dropped_total {}", self.dropped());
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        // The writer holds its own reference: tell it to wind down, without waiting.
        self.inner.stop.store(true, Ordering::Release);
        if let Some(t) = self.inner.writer.get() {
            t.unpark();
        }
    }
}

/// An exchange picked for dnstap, from its start.
#[derive(Debug)]
pub struct Pending<'a> {
    tap: &'a Tap,
    /// When it started; `None` when the queue was full then (so it will be dropped,
    /// and the clock is not read for it).
    at: Option<(u64, u32)>,
}

/// Picks the exchange starting now when `server.dnstap` is set and its `sample` takes
/// it (`rnd` is drawn only for a sample below 1).
pub fn begin<'a>(view: &'a View<'_>, rnd: impl FnOnce() -> u64) -> Option<Pending<'a>> {
    let sample = view.model.server.dnstap.as_ref()?.sample;
    // Compare a random u64 with that share of u64::MAX.
    if sample < 1.0 && (rnd() as f64) >= sample * u64::MAX as f64 {
        return None;
    }
    let tap = view.dnstap();
    let room = tap.inner.pool.get().is_some_and(Pool::has_free);
    Some(Pending {
        tap,
        at: room.then(now),
    })
}

impl Pending<'_> {
    /// Hands the exchange to the writer: `query` from `client` over UDP or `tcp`, and
    /// `reply` as sent (empty: none was sent, e.g. rate limiting dropped it, and only the
    /// query is logged). No allocation, no waiting: without a free slot it is dropped
    /// and counted.
    pub fn end(self, query: &[u8], client: SocketAddr, tcp: bool, reply: &[u8]) {
        // Silence for a message that is no query (shorter than a header, or QR=1) is
        // not an exchange.
        let is_query = query.len() >= 12 && query[2] & 0x80 == 0;
        if reply.is_empty() && !is_query {
            return;
        }
        let inner = &self.tap.inner;
        let responded = !reply.is_empty();
        let events = 1 + u64::from(responded);
        let put = match (inner.pool.get(), self.at) {
            (Some(pool), Some(at)) => pool.put(query, responded.then_some(reply), |slot| {
                slot.client = client;
                slot.tcp = tcp;
                slot.query_time = at;
                slot.response_time = if responded { now() } else { (0, 0) };
            }),
            _ => false,
        };
        if !put {
            inner.dropped.fetch_add(events, Ordering::Relaxed);
            return;
        }
        // Pairs with the writer's fence between announcing that it sleeps and looking
        // at the queue a last time: one of the two sees the other.
        std::sync::atomic::fence(Ordering::SeqCst);
        if inner.sleeping.load(Ordering::Relaxed) && inner.sleeping.swap(false, Ordering::AcqRel) {
            if let Some(t) = inner.writer.get() {
                t.unpark();
            }
        }
    }
}

/// Wall-clock time as dnstap has it: seconds and nanoseconds since the Unix epoch.
fn now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}
