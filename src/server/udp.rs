//! UDP: `workers` blocking threads per listen address, each with its own socket bound to
//! the same port with SO_REUSEPORT, so the kernel spreads datagrams across them and
//! across cores. Each thread loops receive → answer → send with buffers it reuses: no
//! task per query, no channel, no wake-ups between threads. When the server falls
//! behind, datagrams wait in (and beyond a point are dropped by) the socket's receive
//! buffer; memory never grows.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tracing::debug;

use super::answer_datagram;
use crate::snapshot::Shared;

/// Largest datagram we read; anything longer is not a query we answer.
const MAX_UDP_QUERY: usize = 4096;
/// How often an idle worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Receive buffer asked of the kernel per socket: room for a burst of ~10k queries.
const RECV_BUFFER: usize = 4 << 20;

/// Binds `workers` UDP sockets and the TCP listener on `addr`. A fixed port binds TCP
/// first: unlike SO_REUSEPORT UDP, it fails loudly when another instance holds the port.
/// Port 0 lets the kernel choose for the first UDP socket and takes the same port for
/// the rest, retrying in the rare case that some other process holds it for TCP.
pub(super) async fn bind_with_tcp(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(Vec<UdpSocket>, TcpListener)> {
    let reuse = workers > 1;
    if addr.port() != 0 {
        let tcp = TcpListener::bind(addr).await?;
        let udp = (0..workers)
            .map(|_| udp_socket(addr, reuse))
            .collect::<io::Result<Vec<_>>>()?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..16 {
        let first = udp_socket(addr, reuse)?;
        let bound = first.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => {
                let mut udp = vec![first];
                for _ in 1..workers {
                    udp.push(udp_socket(bound, reuse)?);
                }
                return Ok((udp, tcp));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Keep IPv4 clients off IPv6 sockets, so they never appear as ::ffff:a.b.c.d.
        s.set_only_v6(true)?;
    }
    // Never SO_REUSEADDR on UDP: on Linux it lets an unrelated socket steal datagrams.
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(STOP_POLL))?;
    Ok(s.into())
}

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

fn worker(sock: &UdpSocket, state: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_UDP_QUERY];
    let mut out = Vec::with_capacity(usize::from(crate::answer::EDNS_UDP_PAYLOAD));
    while !stop.load(Relaxed) {
        let (len, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            // Timeout (time to look at the stop flag), or an ICMP error from an earlier
            // send surfacing here: neither is fatal.
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    debug!("UDP receive error: {e}");
                }
                continue;
            }
        };
        if src.port() == 0 {
            // Cannot be answered, and a classic reflection trick.
            state.load().queries.dropped.fetch_add(1, Relaxed);
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
