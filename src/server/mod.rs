//! DNS transports: binding the listen addresses, UDP worker threads ([`udp`]) and TCP
//! connection tasks ([`tcp`]), both answering through [`answer_message`].
//!
//! Both transports are our own rather than hickory-server's `Server`: we decide what a
//! bad message gets (FORMERR or silence), how an oversized answer is truncated, how many
//! TCP connections may be open and for how long, and the UDP steady state needs no task
//! per query and no bounded channel that silently drops answers. hickory-proto still
//! parses and encodes every message.

mod tcp;
mod udp;

use std::cell::Cell;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use tokio::net::TcpListener;
use tracing::info;

use crate::answer;
use crate::model::TcpLimits;
use crate::rrl::Verdict;
use crate::snapshot::{Shared, Snapshot};

/// How long a stop waits for TCP connections to finish their answers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Sockets bound for every listen address, ready for [`run`].
#[derive(Debug, Default)]
pub struct Sockets {
    /// UDP sockets: `workers` per listen address, sharing the port with SO_REUSEPORT.
    pub udp: Vec<std::net::UdpSocket>,
    /// One TCP listener per listen address.
    pub tcp: Vec<TcpListener>,
}

impl Sockets {
    /// The UDP addresses actually bound (port 0 resolved), one per listen address.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect();
        v.dedup();
        v
    }

    /// The TCP addresses actually bound.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// The number of UDP workers when the config does not say: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Binds UDP (`workers` sockets each) and TCP on each address and logs each bound
/// address. Port 0 picks one free port for both protocols.
pub async fn bind(addrs: &[SocketAddr], workers: usize) -> io::Result<Sockets> {
    let mut sockets = Sockets::default();
    for &addr in addrs {
        let (udp, tcp) = udp::bind_with_tcp(addr, workers.max(1))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        info!(
            "listening for UDP on {} ({} workers)",
            udp[0].local_addr()?,
            udp.len()
        );
        info!("listening for TCP on {}", tcp.local_addr()?);
        sockets.udp.extend(udp);
        sockets.tcp.push(tcp);
    }
    Ok(sockets)
}

/// Serves DNS on the bound sockets from the shared snapshot until `shutdown` completes;
/// then stops accepting, lets TCP answers in flight finish (at most a few seconds) and
/// returns.
pub async fn run(
    sockets: Sockets,
    state: Shared,
    limits: TcpLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let workers = udp::spawn_workers(sockets.udp, &state, &stop)?;
    let (tcp_stop, tcp_stopped) = tokio::sync::watch::channel(false);
    let mut tcp_tasks = tokio::task::JoinSet::new();
    for listener in sockets.tcp {
        tcp_tasks.spawn(tcp::serve(
            listener,
            state.clone(),
            limits,
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
    // UDP workers notice the flag within their receive timeout.
    tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
    })
    .await
    .map_err(io::Error::other)
}

/// Answers one UDP datagram from `src` into `out` (left empty when nothing is to be
/// sent): the whole per-query path, bytes in and bytes out, also used by the fuzzers.
pub fn answer_datagram(datagram: &[u8], src: SocketAddr, state: &Shared, out: &mut Vec<u8>) {
    answer_message(datagram, src, state, false, out);
}

/// Answers one DNS message (a UDP datagram, or a TCP frame without its length) into
/// `out`. UDP replies are limited to the client's payload size; TCP ones are not.
pub(crate) fn answer_message(
    msg: &[u8],
    src: SocketAddr,
    state: &Shared,
    tcp: bool,
    out: &mut Vec<u8>,
) {
    answer_from(msg, src, &state.load(), tcp, out);
}

/// [`answer_message`] from a snapshot the caller already holds (a UDP worker loads one
/// per batch of datagrams).
pub(crate) fn answer_from(
    msg: &[u8],
    src: SocketAddr,
    snap: &Snapshot,
    tcp: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    let rnd = rnd();
    // A query picked for the query log is answered by the general path, which has the
    // decoded request to write out; the others may take the fast path.
    let log = sampled(snap);
    if !log && crate::fast::answer(msg, src, snap, tcp, rnd, now_ms, out) {
        return;
    }
    general(msg, src, snap, tcp, rnd, log, out);
}

/// True for the share `server.query_log.sample` of queries.
fn sampled(snap: &Snapshot) -> bool {
    // Compare a random u64 with that share of u64::MAX.
    snap.model
        .server
        .query_log
        .is_some_and(|sample| (rnd() as f64) < sample * u64::MAX as f64)
}

/// The general path: the message decoded by hickory-proto and answered by
/// [`answer::answer`], for everything the fast path leaves (and for tests comparing the
/// two).
pub fn answer_general(
    msg: &[u8],
    src: SocketAddr,
    snap: &Snapshot,
    tcp: bool,
    rnd: u64,
    out: &mut Vec<u8>,
) {
    general(msg, src, snap, tcp, rnd, sampled(snap), out);
}

fn general(
    msg: &[u8],
    src: SocketAddr,
    snap: &Snapshot,
    tcp: bool,
    rnd: u64,
    log: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
    match Request::from_bytes(msg.to_vec(), src, protocol) {
        Ok(_) if question_points_into_header(msg) => {
            // The reply echoes the question bytes as they came; a pointer into the
            // header would then point into *our* header and name something else (or
            // nothing parsable). The first name of a message has nothing before it to
            // point to, so such a question is malformed: FORMERR, without echoing it.
            formerr(msg, out);
            snap.queries.count(tcp, u16::from(ResponseCode::FormErr), 0);
        }
        Ok(request) => {
            if request.metadata.message_type == MessageType::Response {
                snap.queries.dropped.fetch_add(1, Relaxed);
                return; // never answer answers (reflection loops)
            }
            let reply = answer::answer(&request, snap, rnd);
            // Response rate limiting applies to UDP only: over TCP the source address is
            // verified by the handshake, so it cannot be a spoofed amplification victim.
            let verdict = match (&snap.rrl, tcp) {
                (Some(rrl), false) => rrl.check(src.ip(), answer::rrl_kind(&reply), now_ms()),
                _ => Verdict::Send,
            };
            match verdict {
                Verdict::Send => {
                    let limit = if tcp {
                        u16::MAX
                    } else {
                        answer::udp_limit(&request)
                    };
                    answer::encode(&request, &reply, limit, out);
                    answered(&request, &reply, snap, tcp, log);
                }
                Verdict::Slip => {
                    let limit = answer::udp_limit(&request);
                    answer::encode_truncated(&request, &reply, limit, out);
                }
                Verdict::Drop => {}
            }
        }
        Err(_) => {
            formerr(msg, out);
            if out.is_empty() {
                snap.queries.dropped.fetch_add(1, Relaxed);
            } else {
                snap.queries.count(tcp, u16::from(ResponseCode::FormErr), 0);
            }
        }
    }
}

/// Counts an answered query and, when `log`, writes it to the query log.
fn answered(request: &Request, reply: &answer::Reply<'_>, snap: &Snapshot, tcp: bool, log: bool) {
    let query = request.queries.queries().first().map(|q| q.original());
    let qtype = query.map_or(0, |q| u16::from(q.query_type()));
    snap.queries
        .count(tcp, u16::from(reply.metadata.response_code), qtype);
    if !log {
        return;
    }
    let ecs = match request
        .edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Subnet))
    {
        Some(EdnsOption::Subnet(cs)) => format!("{}/{}", cs.addr(), cs.source_prefix()),
        _ => "-".into(),
    };
    let region = reply
        .picked
        .map_or("-", |id| snap.model.region(id).name.as_str());
    let answer: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    info!(
        target: "gslbd::query",
        client = %request.src(),
        ecs = %ecs,
        transport = if tcp { "tcp" } else { "udp" },
        name = %query.map(|q| q.name().to_string()).unwrap_or_default(),
        qtype = %query.map(|q| q.query_type().to_string()).unwrap_or_default(),
        rcode = %reply.metadata.response_code,
        region = %region,
        answer = %answer.join(" "),
        "query"
    );
}

/// True when a name in the question section reaches the 12-byte header through a
/// compression pointer (found by fuzzing: hickory accepts any backward pointer).
pub fn question_points_into_header(msg: &[u8]) -> bool {
    let qdcount = match msg.get(4..6) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => return false,
    };
    let mut pos = 12;
    for _ in 0..qdcount {
        // Walk this name; `pos` ends up after it (past a pointer, or the root label).
        let mut at = pos;
        let mut next = None;
        for _ in 0..128 {
            let Some(&len) = msg.get(at) else {
                return false;
            };
            if len & 0xC0 == 0xC0 {
                let Some(&low) = msg.get(at + 1) else {
                    return false;
                };
                let target = usize::from(len & 0x3F) << 8 | usize::from(low);
                if target < 12 {
                    return true;
                }
                next.get_or_insert(at + 2);
                at = target;
            } else if len == 0 {
                next.get_or_insert(at + 1);
                break;
            } else {
                at += 1 + usize::from(len);
            }
        }
        let Some(end) = next else { return false };
        pos = end + 4; // type and class
    }
    false
}

/// FORMERR for a query whose header parsed but whose body did not; silence for anything
/// shorter than a header or claiming to be a response (RFC 1035 §4.1.1).
fn formerr(datagram: &[u8], out: &mut Vec<u8>) {
    let mut decoder = BinDecoder::new(datagram);
    let Ok(header) = Header::read(&mut decoder) else {
        return;
    };
    if header.metadata.message_type == MessageType::Response {
        return;
    }
    let mut metadata = Metadata::response_from_request(&header.metadata);
    metadata.response_code = ResponseCode::FormErr;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut encoder = BinEncoder::new(out);
    if header.emit(&mut encoder).is_err() {
        out.clear();
    }
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
