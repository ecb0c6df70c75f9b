//! Binding the listen addresses: `workers` UDP sockets per address sharing the port
//! with SO_REUSEPORT, one TCP listener, each bound address logged (a line tests and
//! supervisors read), and the socket options every reply relies on.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tracing::info;

use super::udp::STOP_POLL;

/// Receive buffer asked of the kernel per socket: room for a burst of ~10k queries.
const RECV_BUFFER: usize = 4 << 20;

/// Sockets bound for every listen address, ready for [`run`](super::run).
#[derive(Debug, Default)]
pub struct Sockets {
    /// UDP sockets: `workers` per listen address, sharing the port with SO_REUSEPORT.
    pub udp: Vec<UdpSocket>,
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
        let (udp, tcp) = bind_with_tcp(addr, workers.max(1))
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

/// Binds `workers` UDP sockets and the TCP listener on `addr`. A fixed port binds TCP
/// first: unlike SO_REUSEPORT UDP, it fails loudly when another instance holds the port.
/// Port 0 lets the kernel choose for the first UDP socket and takes the same port for
/// the rest, retrying in the rare case that some other process holds it for TCP.
async fn bind_with_tcp(
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
    #[cfg(target_os = "linux")]
    ignore_path_mtu(&s, addr.is_ipv6())?;
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(STOP_POLL))?;
    Ok(s.into())
}

/// Replies ignore path MTU information (`IP_PMTUDISC_OMIT`, as BIND, Knot, NSD and gdnsd
/// set on their UDP sockets): a spoofed ICMP "fragmentation needed" can then not shrink
/// the MTU towards a resolver to make our replies fragment, the opening of
/// fragment-injection cache poisoning. Our replies are at most 1232 bytes, which every
/// link carries whole; the kernel also skips the per-reply path MTU lookup. Kernels
/// before 3.15 lack OMIT and get `IP_PMTUDISC_DONT`, which also ignores it.
#[cfg(target_os = "linux")]
fn ignore_path_mtu(s: &Socket, v6: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (level, name, omit, dont) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_OMIT,
            libc::IPV6_PMTUDISC_DONT,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_OMIT,
            libc::IP_PMTUDISC_DONT,
        )
    };
    let set = |value: libc::c_int| {
        // SAFETY: a valid socket, and an int option passed with its true size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                level,
                name,
                std::ptr::from_ref(&value).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(omit).or_else(|_| set(dont))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// The socket's `IP_MTU_DISCOVER` (or IPv6) setting.
    fn mtu_discover(s: &UdpSocket, v6: bool) -> libc::c_int {
        let (level, name) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER)
        } else {
            (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
        };
        let mut value: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid socket; the value and its length point at a live int.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                level,
                name,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn replies_ignore_path_mtu() {
        let v4 = udp_socket("127.0.0.1:0".parse().unwrap(), false).unwrap();
        assert_eq!(mtu_discover(&v4, false), libc::IP_PMTUDISC_OMIT);
        // Hosts without IPv6 cannot bind ::1; the setting is then moot.
        if let Ok(v6) = udp_socket("[::1]:0".parse().unwrap(), false) {
            assert_eq!(mtu_discover(&v6, true), libc::IPV6_PMTUDISC_OMIT);
        }
    }
}
