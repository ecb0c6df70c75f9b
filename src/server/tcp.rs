//! DNS over TCP (RFC 7766): one task per connection, each closed after
//! `tcp.idle_timeout` without a query. Pipelined queries are answered in order, each
//! with its own ID. A query's body must follow its length prefix promptly and a reply
//! must be taken promptly, so a client that announces more than it sends, or never
//! reads, cannot hold a connection slot for long.
//!
//! Slots: one client network (/24, /56) holds at most `tcp.max_per_client` connections
//! (a further one is closed at once), and when `tcp.max_connections` are open a new
//! connection takes the place of the one idle the longest (see `tcp/table.rs`), so a client
//! that keeps many connections alive cannot shut the others out of TCP, which they need
//! after a truncated answer or a rate limiter's slip. The limits are read from the
//! current snapshot at each accept, so a reload changes them: a lower `max_connections`
//! closes idle connections as new ones arrive, a lower `max_per_client` turns a network
//! away until it holds fewer, a new `idle_timeout` applies from the next wait.

mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::debug;

use super::answer_from;
use crate::runtime::Shared;
pub(super) use table::Table;
use table::{Refused, Ticket};

/// Time allowed between a length prefix and the end of its message.
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed to hand a reply to a client that is slow to read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections on `listener` into `table` (shared by every listener) until
/// `stop` turns true, then waits for the open connections to finish the query they are
/// answering.
pub(super) async fn serve(
    listener: TcpListener,
    table: Arc<Table>,
    state: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let limits = state.snapshot().model.server.tcp;
                    let counters = &state.runtime().queries;
                    match table.admit(peer.ip(), &limits, Instant::now()) {
                        Ok((ticket, closed)) => {
                            if closed > 0 {
                                counters.tcp_idle_closed.fetch_add(closed as u64, Relaxed);
                                debug!("TCP: closed {closed} idle connection(s) for {peer}: max_connections reached");
                            }
                            conns.spawn(connection(stream, peer, state.clone(), stop.clone(), ticket));
                        }
                        Err(why) => {
                            // Closing at once costs the client one round trip; keeping it
                            // would let a flood of connections hold the server.
                            counters.tcp_refused.fetch_add(1, Relaxed);
                            let why = match why {
                                Refused::PerClient => "max_per_client reached by its network",
                                Refused::AllBusy => "max_connections reached, none idle",
                            };
                            debug!("TCP connection from {peer} closed: {why}");
                        }
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

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Shared,
    mut stop: watch::Receiver<bool>,
    ticket: Ticket,
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
        // Between queries: wait for the next one, the idle timeout, a stop, or a new
        // connection that needs this one's slot.
        if !ticket.idle(Instant::now()) {
            return;
        }
        let idle = state.snapshot().model.server.tcp.idle_timeout;
        let mut len = [0u8; 2];
        tokio::select! {
            r = timeout(idle, rd.read_exact(&mut len)) => match r {
                Ok(Ok(_)) => {}
                _ => return, // idle, closed, or reset
            },
            () = ticket.closed() => return,
            _ = stop.changed() => return,
        }
        if !ticket.busy() {
            return; // its slot went to a new connection just before the query came
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
