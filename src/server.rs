//! DNS transports: binding the listen addresses, our own UDP receive loop, and TCP
//! through hickory-server's `Server` with our [`RequestHandler`].
//!
//! UDP is driven here rather than by hickory's `Server` so that we decide what a bad
//! datagram gets (FORMERR or silence), how an oversized answer is truncated, and so the
//! steady state needs no task per query and no bounded channel that drops answers.

use std::cell::Cell;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tracing::{debug, info, warn};

use crate::answer;
use crate::model::TcpLimits;
use crate::snapshot::{Shared, Snapshot};

/// How long a stop waits for TCP connections to finish their answers.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Largest datagram we read; anything longer is not a query we answer.
const MAX_UDP_QUERY: usize = 4096;

/// Sockets bound for every listen address, ready for [`run`].
#[derive(Debug, Default)]
pub struct Sockets {
    /// One UDP socket per listen address.
    pub udp: Vec<UdpSocket>,
    /// One TCP listener per listen address.
    pub tcp: Vec<TcpListener>,
}

impl Sockets {
    /// The UDP addresses actually bound (port 0 resolved).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The TCP addresses actually bound.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// Binds UDP and TCP on each address and logs each bound address. Port 0 picks one free
/// port for both protocols.
pub async fn bind(addrs: &[SocketAddr]) -> io::Result<Sockets> {
    let mut sockets = Sockets::default();
    for &addr in addrs {
        let (udp, tcp) = bind_pair(addr)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        info!("listening for UDP on {}", udp.local_addr()?);
        info!("listening for TCP on {}", tcp.local_addr()?);
        sockets.udp.push(udp);
        sockets.tcp.push(tcp);
    }
    Ok(sockets)
}

async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        // TCP first: unlike UDP it fails loudly when another instance holds the port.
        let tcp = TcpListener::bind(addr).await?;
        let udp = udp_socket(addr)?;
        return Ok((udp, tcp));
    }
    // Port 0: let the kernel choose for UDP, then take the same port for TCP; retry in
    // the rare case that some other process holds that TCP port.
    let mut last = None;
    for _ in 0..16 {
        let udp = udp_socket(addr)?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol as SockProto, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(SockProto::UDP))?;
    if addr.is_ipv6() {
        // Keep IPv4 clients off IPv6 sockets, so they never appear as ::ffff:a.b.c.d.
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// Serves DNS on the bound sockets from the shared snapshot until `shutdown` completes;
/// then stops accepting and lets in-flight TCP answers finish.
pub async fn run(
    sockets: Sockets,
    state: Shared,
    tcp: TcpLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut udp_tasks = tokio::task::JoinSet::new();
    for sock in sockets.udp {
        udp_tasks.spawn(serve_udp(Arc::new(sock), state.clone(), stop_rx.clone()));
    }
    let mut server = Server::new(Handler { state });
    for listener in sockets.tcp {
        server.register_listener(listener, tcp.idle_timeout, 64);
    }
    shutdown.await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    while udp_tasks.join_next().await.is_some() {}
    // In-flight TCP answers finish; idle keep-alive connections are not waited for
    // beyond the grace period, so a stop always completes within a few seconds.
    match tokio::time::timeout(SHUTDOWN_GRACE, server.shutdown_gracefully()).await {
        Ok(r) => r.map_err(|e| io::Error::other(e.to_string())),
        Err(_) => {
            info!("closing TCP connections still open after {SHUTDOWN_GRACE:?}");
            Ok(())
        }
    }
}

async fn serve_udp(
    sock: Arc<UdpSocket>,
    state: Shared,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_UDP_QUERY];
    let mut out = Vec::with_capacity(usize::from(answer::EDNS_UDP_PAYLOAD));
    loop {
        let (len, src) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // e.g. ICMP errors surfacing from an earlier send: not fatal.
                    debug!("UDP receive error: {e}");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        if src.port() == 0 {
            // Cannot be answered, and a classic reflection trick.
            state.load().queries.dropped.fetch_add(1, Relaxed);
            continue;
        }
        udp_datagram(&buf[..len], src, &state, &mut out);
        if !out.is_empty() {
            if let Err(e) = sock.send_to(&out, src).await {
                debug!("UDP send to {src} failed: {e}");
            }
        }
    }
}

/// Answers one datagram into `out` (left empty when nothing is to be sent).
fn udp_datagram(datagram: &[u8], src: SocketAddr, state: &Shared, out: &mut Vec<u8>) {
    out.clear();
    let snap = state.load();
    match Request::from_bytes(datagram.to_vec(), src, Protocol::Udp) {
        Ok(request) => {
            if request.metadata.message_type == MessageType::Response {
                snap.queries.dropped.fetch_add(1, Relaxed);
                return; // never answer answers (reflection loops)
            }
            let reply = answer::answer(&request, &snap, rnd());
            answer::encode_udp(&request, &reply, answer::udp_limit(&request), out);
            answered(&request, &reply, &snap, false);
        }
        Err(_) => {
            formerr(datagram, out);
            if out.is_empty() {
                snap.queries.dropped.fetch_add(1, Relaxed);
            } else {
                snap.queries
                    .count(false, u16::from(ResponseCode::FormErr), 0);
            }
        }
    }
}

/// Counts an answered query and, when sampled, writes it to the query log.
fn answered(request: &Request, reply: &answer::Reply<'_>, snap: &Snapshot, tcp: bool) {
    let query = request.queries.queries().first().map(|q| q.original());
    let qtype = query.map_or(0, |q| u16::from(q.query_type()));
    snap.queries
        .count(tcp, u16::from(reply.metadata.response_code), qtype);
    let Some(sample) = snap.model.server.query_log else {
        return;
    };
    // `sample` of all queries: compare a random u64 with that share of u64::MAX.
    if (rnd() as f64) >= sample * u64::MAX as f64 {
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

/// A cheap per-thread xorshift for rotating addresses; not for anything secret.
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

/// The TCP request handler: the same answer path, encoded by hickory (no size limit).
struct Handler {
    state: Shared,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // An owned Arc (not a guard): the future must be Send across the await.
        let snap = self.state.load_full();
        let reply = answer::answer(request, &snap, rnd());
        answered(request, &reply, &snap, true);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &reply.edns {
            builder.edns(e);
        }
        let response = builder.build(
            reply.metadata,
            reply.answers.iter().map(|r| r.as_ref()),
            reply.authority.iter().map(|r| r.as_ref()),
            std::iter::empty(),
            reply.additionals.iter().map(|r| r.as_ref()),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                warn!("TCP send to {} failed: {e}", request.src());
                let mut metadata = reply.metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
