//! UDP: `workers` blocking threads per listen address, each with its own socket bound to
//! the same port with SO_REUSEPORT, so the kernel spreads datagrams across them and
//! across cores. Each thread loops receive → answer → send with buffers it reuses (on
//! Linux a batch of up to 32 datagrams per system call each way): no task per query, no
//! channel, no wake-ups between threads. When the server falls
//! behind, datagrams wait in (and beyond a point are dropped by) the socket's receive
//! buffer; memory never grows.

use std::io;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::debug;

#[cfg(not(target_os = "linux"))]
use super::answer_datagram;
#[cfg(target_os = "linux")]
use super::answer_from;
use crate::runtime::Shared;

/// Largest datagram we read; anything longer is not a query we answer.
const MAX_UDP_QUERY: usize = 4096;
/// How often an idle worker looks at the stop flag.
pub(super) const STOP_POLL: Duration = Duration::from_millis(100);
/// Starts one thread per socket; they stop when `stop` is set.
pub(super) fn spawn_workers(
    sockets: Vec<UdpSocket>,
    state: &Shared,
    stop: &Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, sock)| {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("gslbd-udp-{i}"))
                .spawn(move || worker(&sock, &state, &stop))
        })
        .collect()
}

/// One receive loop: a batch of datagrams in (`recvmmsg`), answers, a batch out
/// (`sendmmsg`). Under load one system call each way carries up to [`batch::SIZE`]
/// queries; when idle, the first datagram wakes the thread at once (MSG_WAITFORONE).
#[cfg(target_os = "linux")]
fn worker(sock: &UdpSocket, state: &Shared, stop: &AtomicBool) {
    let mut b = batch::Batch::new();
    while !stop.load(Relaxed) {
        let n = match b.recv(sock) {
            Ok(n) => n,
            Err(e) => {
                receive_error(&e);
                continue;
            }
        };
        // One view for the whole batch: it is microseconds old at most.
        let view = state.load();
        b.answer(n, |msg, src, out| {
            if src.port() == 0 {
                // Cannot be answered, and a classic reflection trick.
                view.queries().dropped.fetch_add(1, Relaxed);
                out.clear();
            } else {
                answer_from(msg, src, &view, false, out);
            }
        });
        drop(view);
        b.send(sock, n);
    }
}

/// The portable loop: one datagram per system call.
#[cfg(not(target_os = "linux"))]
fn worker(sock: &UdpSocket, state: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_UDP_QUERY];
    let mut out = Vec::with_capacity(usize::from(crate::pipeline::EDNS_UDP_PAYLOAD));
    while !stop.load(Relaxed) {
        let (len, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                receive_error(&e);
                continue;
            }
        };
        if src.port() == 0 {
            state.runtime().queries.dropped.fetch_add(1, Relaxed);
            continue;
        }
        answer_datagram(&buf[..len], src, state, &mut out);
        if !out.is_empty() {
            if let Err(e) = sock.send_to(&out, src) {
                debug!("UDP send to {src} failed: {e}");
            }
        }
    }
}

/// A timeout (time to look at the stop flag), or an ICMP error from an earlier send
/// surfacing here: neither is fatal.
fn receive_error(e: &io::Error) {
    if !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    ) {
        debug!("UDP receive error: {e}");
    }
}

#[cfg(target_os = "linux")]
mod batch;
