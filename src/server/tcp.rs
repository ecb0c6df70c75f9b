//! DNS over TCP (RFC 7766): one task per connection, at most `tcp.max_connections` at
//! once (beyond that a new connection is closed at once), each closed after
//! `tcp.idle_timeout` without a query. Pipelined queries are answered in order, each
//! with its own ID. A query's body must follow its length prefix promptly and a reply
//! must be taken promptly, so a client that announces more than it sends, or never
//! reads, cannot hold a connection slot for long.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::debug;

use super::answer_message;
use crate::model::TcpLimits;
use crate::snapshot::Shared;

/// Time allowed between a length prefix and the end of its message.
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed to hand a reply to a client that is slow to read it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections on `listener` until `stop` turns true, then waits for the open
/// connections to finish the query they are answering.
pub(super) async fn serve(
    listener: TcpListener,
    state: Shared,
    limits: TcpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        conns.spawn(connection(stream, peer, state.clone(), limits, stop.clone(), slot));
                    }
                    Err(_) => {
                        // Closing at once costs the client one round trip; keeping it
                        // would let a flood of idle connections hold the server.
                        state.load().queries.tcp_refused.fetch_add(1, Relaxed);
                        debug!("TCP connection from {peer} closed: max_connections reached");
                    }
                },
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
    limits: TcpLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
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
        let mut len = [0u8; 2];
        tokio::select! {
            r = timeout(limits.idle_timeout, rd.read_exact(&mut len)) => match r {
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
        answer_message(&msg, peer, &state, true, &mut out);
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
