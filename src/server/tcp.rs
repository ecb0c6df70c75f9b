//! DNS over TCP (RFC 7766): one task per connection, at most `tcp.max_connections` at
//! once (beyond that a new connection is closed at once), each closed after
//! `tcp.idle_timeout` without a query. Pipelined queries are answered in order, each
//! with its own ID. A query's body must follow its length prefix promptly and a reply
//! must be taken promptly, so a client that announces more than it sends, or never
//! reads, cannot hold a connection slot for long. Both limits are read from the current
//! snapshot, so a reload changes them: a lower `max_connections` refuses new connections
//! until enough open ones close, a new `idle_timeout` applies from the next wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::debug;

use super::answer_from;
use crate::runtime::Shared;

/// Time allowed between a length prefix and the end of its message.
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed to hand a reply to a client that is slow to read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections on `listener` until `stop` turns true, then waits for the open
/// connections to finish the query they are answering.
pub(super) async fn serve(listener: TcpListener, state: Shared, mut stop: watch::Receiver<bool>) {
    let open = Arc::new(AtomicUsize::new(0));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let max = state.snapshot().model.server.tcp.max_connections as usize;
                    if open.load(Relaxed) < max {
                        let slot = Slot::take(&open);
                        conns.spawn(connection(stream, peer, state.clone(), stop.clone(), slot));
                    } else {
                        // Closing at once costs the client one round trip; keeping it
                        // would let a flood of idle connections hold the server.
                        state.runtime().queries.tcp_refused.fetch_add(1, Relaxed);
                        debug!("TCP connection from {peer} closed: max_connections reached");
                    }
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    debug!("TCP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// One open connection, counted while it lives (accepting is one task, so the count
/// cannot pass the limit between the check and the take).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        open.fetch_add(1, Relaxed);
        Slot(open.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Shared,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut msg = Vec::new();
    let mut out = Vec::new();
    let mut frame = Vec::new();
    loop {
        if *stop.borrow() {
            return;
        }
        // Between queries: wait for the next one, the idle timeout, or a stop.
        let idle = state.snapshot().model.server.tcp.idle_timeout;
        let mut len = [0u8; 2];
        tokio::select! {
            r = timeout(idle, rd.read_exact(&mut len)) => match r {
                Ok(Ok(_)) => {}
                _ => return, // idle, closed, or reset
            },
            _ = stop.changed() => return,
        }
        let n = usize::from(u16::from_be_bytes(len));
        if n == 0 {
            return; // nothing sensible to answer
        }
        msg.resize(n, 0);
        match timeout(BODY_TIMEOUT, rd.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return, // announced more than it sent
        }
        answer_from(&msg, peer, &state.load(), true, &mut out);
        if out.is_empty() {
            continue; // e.g. a response sent to us: ignored, as over UDP
        }
        frame.clear();
        frame.extend_from_slice(&(out.len() as u16).to_be_bytes());
        frame.extend_from_slice(&out);
        match timeout(WRITE_TIMEOUT, wr.write_all(&frame)).await {
            Ok(Ok(())) => {}
            _ => return, // a client that does not read its answers
        }
    }
}
