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
        let (udp, tcp) = bind_with_tcp(addr, workers.max(1)).await.map_err(|e| {
            let hint = hint(&e, addr);
            io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}{hint}"))
        })?;
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

/// What to try when `addr` cannot be bound, appended to the error.
fn hint(e: &io::Error, addr: SocketAddr) -> String {
    let other = "choose another address with --listen ADDR (or server.listen)";
    match e.kind() {
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE: the systemd unit grants \
             it, or `setcap cap_net_bind_service=+ep` on the binary; or {other})"
        ),
        io::ErrorKind::AddrInUse => format!(
            " (another process uses port {port}: `ss -lunpt 'sport = :{port}'` shows which; \
             stop it, or {other})",
            port = addr.port()
        ),
        _ => String::new(),
    }
}

/// Binds `workers` UDP sockets and the TCP listener on `addr`. A fixed port binds TCP
/// first, and every port the first UDP socket, without SO_REUSEPORT (see
/// [`udp_sockets`]): either fails loudly when another process holds the port. Port 0
/// lets the kernel choose for the first UDP socket and takes the same port for the rest,
/// retrying in the rare case that some other process holds it for TCP.
async fn bind_with_tcp(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(Vec<UdpSocket>, TcpListener)> {
    if addr.port() != 0 {
        let tcp = TcpListener::bind(addr).await?;
        return Ok((udp_sockets(addr, workers)?, tcp));
    }
    let mut last = None;
    for _ in 0..16 {
        let first = udp_socket(addr, false)?;
        let bound = first.local_addr()?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((share_port(first, bound, workers)?, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

/// `workers` UDP sockets on `addr` sharing its port. The first binds without
/// SO_REUSEPORT, so the bind fails when any other socket holds the port: a foreign
/// socket of the same user that set SO_REUSEPORT would otherwise be joined silently,
/// and the kernel would hand it a share of our queries. SO_REUSEPORT is set on it once
/// it is bound, and the kernel then puts the others in its group.
fn udp_sockets(addr: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    let first = udp_socket(addr, false)?;
    share_port(first, addr, workers)
}

fn share_port(first: UdpSocket, addr: SocketAddr, workers: usize) -> io::Result<Vec<UdpSocket>> {
    if workers > 1 {
        socket2::SockRef::from(&first).set_reuse_port(true)?;
    }
    let mut udp = vec![first];
    for _ in 1..workers {
        udp.push(udp_socket(addr, true)?);
    }
    Ok(udp)
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

    /// A foreign UDP socket with SO_REUSEPORT on the port: binding there must fail as
    /// for any taken port, not join its group (which would hand it a share of queries).
    #[tokio::test]
    async fn a_port_shared_by_a_foreign_reuseport_socket_is_taken() {
        // Bound alone first, so the kernel picks a port nobody else shares.
        let foreign = udp_socket("127.0.0.1:0".parse().unwrap(), false).unwrap();
        socket2::SockRef::from(&foreign)
            .set_reuse_port(true)
            .unwrap();
        let addr = foreign.local_addr().unwrap();
        // TCP is free there, so only the UDP group could make the bind fail.
        drop(std::net::TcpListener::bind(addr).expect("TCP port free"));
        for workers in [1, 2] {
            let err = bind(&[addr], workers)
                .await
                .expect_err("joined a foreign socket");
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("cannot listen on {addr}")) && msg.contains("--listen"),
                "{msg}"
            );
        }
    }

    /// SO_REUSEPORT set on the first socket after its bind still puts the workers in
    /// one group: every worker receives its share of the datagrams.
    #[tokio::test]
    async fn workers_share_the_port() {
        let sockets = bind(&["127.0.0.1:0".parse().unwrap()], 2).await.unwrap();
        let addr = sockets.udp_addrs()[0];
        assert_eq!(sockets.udp.len(), 2);
        // 64 source ports: the kernel spreads them by hash over the group.
        let clients: Vec<UdpSocket> = (0..64)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for c in &clients {
            c.send_to(b"x", addr).unwrap();
        }
        let mut got = [0; 2];
        for (i, s) in sockets.udp.iter().enumerate() {
            s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0; 16];
            while s.recv(&mut buf).is_ok() {
                got[i] += 1;
            }
        }
        assert_eq!(got[0] + got[1], 64, "{got:?}");
        assert!(got[0] > 0 && got[1] > 0, "one worker got nothing: {got:?}");
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let h = hint(&denied, "0.0.0.0:53".parse().unwrap());
        assert!(
            h.contains("CAP_NET_BIND_SERVICE") && h.contains("--listen"),
            "{h}"
        );
        assert_eq!(hint(&denied, "0.0.0.0:5300".parse().unwrap()), "");
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        let h = hint(&in_use, "127.0.0.1:5353".parse().unwrap());
        assert!(h.contains("sport = :5353") && h.contains("--listen"), "{h}");
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
