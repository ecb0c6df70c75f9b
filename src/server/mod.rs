//! DNS transports: binding the listen addresses, UDP worker threads (`udp`) and TCP
//! connection tasks (`tcp`), both answering through `answer_from`: the fast path
//! ([`crate::fast`]) when it can, else the general path ([`crate::general`]).
//!
//! Both transports are our own rather than hickory-server's `Server`: we decide what a
//! bad message gets (FORMERR or silence), how an oversized answer is truncated, how many
//! TCP connections may be open and for how long, and the UDP steady state needs no task
//! per query and no bounded channel that silently drops answers. hickory-proto still
//! parses and encodes every message.

mod bind;
mod tcp;
mod udp;

pub use bind::{Sockets, bind, default_workers};

use std::cell::Cell;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tracing::info;

use crate::runtime::{Shared, View};
use crate::snapshot::Snapshot;

/// How long a stop waits for TCP connections to finish their answers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long a stop waits for dnstap's collector to take the rest of the stream.
const DNSTAP_GRACE: Duration = Duration::from_secs(3);

/// Serves DNS on the bound sockets from the shared snapshot until `shutdown` completes;
/// then stops accepting, lets TCP answers in flight finish (at most a few seconds),
/// finishes the dnstap stream (when `server.dnstap` is set) and returns.
pub async fn run(
    sockets: Sockets,
    state: Shared,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let workers = udp::spawn_workers(sockets.udp, &state, &stop)?;
    let (tcp_stop, tcp_stopped) = tokio::sync::watch::channel(false);
    let mut tcp_tasks = tokio::task::JoinSet::new();
    // One table for every listener: the limits are on the server's connections.
    let tcp_table = Arc::new(tcp::Table::default());
    for listener in sockets.tcp {
        let table = tcp_table.clone();
        tcp_tasks.spawn(tcp::serve(
            listener,
            table,
            state.clone(),
            tcp_stopped.clone(),
        ));
    }
    shutdown.await;
    info!("shutting down");
    stop.store(true, Relaxed);
    let _ = tcp_stop.send(true);
    let joined = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tcp_tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        info!("closing TCP connections still open after {SHUTDOWN_GRACE:?}");
        tcp_tasks.abort_all();
    }
    // UDP workers notice the flag within their receive timeout. Then, with no query
    // left to log, dnstap writes what is queued and finishes its stream.
    tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
        state.runtime().dnstap.finish(DNSTAP_GRACE);
    })
    .await
    .map_err(io::Error::other)
}

/// Answers one UDP datagram from `src` into `out` (left empty when nothing is to be
/// sent): the whole per-query path, bytes in and bytes out, also used by the fuzzers.
pub fn answer_datagram(datagram: &[u8], src: SocketAddr, state: &Shared, out: &mut Vec<u8>) {
    answer_from(datagram, src, &state.load(), false, out);
}

/// Answers one DNS message (a UDP datagram, or a TCP frame without its length) into
/// `out` from a view the caller already holds (a UDP worker takes one per batch of
/// datagrams). UDP replies are limited to the client's payload size; TCP ones are not.
pub(crate) fn answer_from(
    msg: &[u8],
    src: SocketAddr,
    view: &View<'_>,
    tcp: bool,
    out: &mut Vec<u8>,
) {
    let rnd = rnd();
    // Every exchange of both paths passes here, with its request bytes and its reply as
    // sent (empty when there is none): the one place dnstap needs.
    let tapped = crate::dnstap::begin(view, self::rnd);
    // A query picked for the query log is answered by the general path, which has the
    // decoded request to write out; the others may take the fast path.
    let log = sampled(view);
    if log || !crate::fast::answer(msg, src, view, tcp, rnd, now_ms, out) {
        crate::general::answer(msg, src, view, tcp, rnd, log, now_ms, out);
    }
    if let Some(t) = tapped {
        t.end(msg, src, tcp, out);
    }
}

/// True for the share `server.query_log.sample` of queries.
fn sampled(snap: &Snapshot) -> bool {
    // Compare a random u64 with that share of u64::MAX.
    snap.model
        .server
        .query_log
        .is_some_and(|sample| (rnd() as f64) < sample * u64::MAX as f64)
}

/// The general path alone, for everything the fast path leaves and for tests comparing
/// the two (`rnd` as the fast path got it; the rate limiter's clock stands at 0).
pub fn answer_general(
    msg: &[u8],
    src: SocketAddr,
    view: &View<'_>,
    tcp: bool,
    rnd: u64,
    out: &mut Vec<u8>,
) {
    crate::general::answer(msg, src, view, tcp, rnd, sampled(view), || 0, out);
}

/// Milliseconds on a monotonic clock shared by every thread (the rate limiter's time).
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// A cheap per-thread xorshift for rotating addresses and sampling; not for anything secret.
fn rnd() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish() | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}
