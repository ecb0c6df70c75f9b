//! UDP: `workers` blocking threads per listen address, each with its own socket bound to
//! the same port with SO_REUSEPORT, so the kernel spreads datagrams across them and
//! across cores. Each thread loops receive → answer → send with buffers it reuses (on
//! Linux a batch of up to 32 datagrams per system call each way): no task per query, no
//! channel, no wake-ups between threads. When the server falls
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

#[cfg(not(target_os = "linux"))]
use super::answer_datagram;
#[cfg(target_os = "linux")]
use super::answer_from;
use crate::runtime::Shared;

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
mod batch {
    //! `recvmmsg`/`sendmmsg` with buffers allocated once per worker.

    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;

    use tracing::debug;

    use super::MAX_UDP_QUERY;

    /// Datagrams per system call.
    pub(super) const SIZE: usize = 32;

    /// Distance between two receive buffers: one cache line more than a buffer, so that
    /// the datagrams of a batch (read mostly from their first bytes) start in different
    /// cache sets. At a multiple of 4 KiB they would all fall in the same L1 set, and
    /// each would evict the ones before it.
    const STRIDE: usize = MAX_UDP_QUERY + 64;

    /// Receive buffers, source addresses and reply buffers for [`SIZE`] datagrams.
    pub(super) struct Batch {
        bufs: Vec<u8>,
        lens: [usize; SIZE],
        names: Vec<libc::sockaddr_storage>,
        name_lens: [libc::socklen_t; SIZE],
        outs: Vec<Vec<u8>>,
        iovs: Vec<libc::iovec>,
        hdrs: Vec<libc::mmsghdr>,
    }

    impl Batch {
        pub(super) fn new() -> Batch {
            // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs for which
            // all-zero bytes are a valid value.
            let (name, iov, hdr) = unsafe { (zeroed(), zeroed(), zeroed()) };
            Batch {
                bufs: vec![0; SIZE * STRIDE],
                lens: [0; SIZE],
                names: vec![name; SIZE],
                name_lens: [0; SIZE],
                outs: (0..SIZE)
                    .map(|_| Vec::with_capacity(usize::from(crate::pipeline::EDNS_UDP_PAYLOAD)))
                    .collect(),
                iovs: vec![iov; SIZE],
                hdrs: vec![hdr; SIZE],
            }
        }

        /// Blocks for at least one datagram (or the socket's read timeout), then takes
        /// whatever else is already queued, up to [`SIZE`]; returns how many.
        pub(super) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
            for i in 0..SIZE {
                self.iovs[i] = libc::iovec {
                    iov_base: self.bufs[i * STRIDE..].as_mut_ptr().cast(),
                    iov_len: MAX_UDP_QUERY,
                };
                let len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                header(
                    &mut self.hdrs[i],
                    &mut self.names[i],
                    len,
                    &mut self.iovs[i],
                );
            }
            // SAFETY: every header points at buffers owned by `self` that outlive the
            // call, with their true lengths; the kernel writes at most that much.
            let n = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    SIZE as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for i in 0..n {
                self.lens[i] = (self.hdrs[i].msg_len as usize).min(MAX_UDP_QUERY);
                self.name_lens[i] = self.hdrs[i].msg_hdr.msg_namelen;
            }
            Ok(n)
        }

        /// Calls `f(datagram, source, reply)` for the first `n` datagrams; a reply left
        /// empty is not sent.
        pub(super) fn answer(
            &mut self,
            n: usize,
            mut f: impl FnMut(&[u8], SocketAddr, &mut Vec<u8>),
        ) {
            for i in 0..n {
                let out = &mut self.outs[i];
                out.clear();
                let Some(src) = socket_addr(&self.names[i]) else {
                    continue;
                };
                let start = i * STRIDE;
                f(&self.bufs[start..start + self.lens[i]], src, out);
            }
        }

        /// Sends the non-empty replies of the first `n` datagrams to their sources.
        pub(super) fn send(&mut self, sock: &UdpSocket, n: usize) {
            let mut m = 0;
            for i in 0..n {
                if self.outs[i].is_empty() {
                    continue;
                }
                self.iovs[m] = libc::iovec {
                    iov_base: self.outs[i].as_mut_ptr().cast(),
                    iov_len: self.outs[i].len(),
                };
                let len = self.name_lens[i];
                header(
                    &mut self.hdrs[m],
                    &mut self.names[i],
                    len,
                    &mut self.iovs[m],
                );
                m += 1;
            }
            let mut sent = 0;
            while sent < m {
                // SAFETY: headers 0..m point at reply buffers and addresses owned by
                // `self`, unchanged during the call.
                let r = unsafe {
                    libc::sendmmsg(
                        sock.as_raw_fd(),
                        self.hdrs[sent..].as_mut_ptr(),
                        (m - sent) as libc::c_uint,
                        0,
                    )
                };
                if r <= 0 {
                    // The first unsent message failed (say, ICMP unreachable surfaced):
                    // skip it, send the rest.
                    debug!("UDP send failed: {}", io::Error::last_os_error());
                    sent += 1;
                } else {
                    sent += r as usize;
                }
            }
        }
    }

    /// Points `h` at one address and one buffer.
    fn header(
        h: &mut libc::mmsghdr,
        name: &mut libc::sockaddr_storage,
        name_len: libc::socklen_t,
        iov: &mut libc::iovec,
    ) {
        h.msg_hdr.msg_name = std::ptr::from_mut(name).cast();
        h.msg_hdr.msg_namelen = name_len;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = std::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }

    /// The source address the kernel wrote.
    fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(s.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for AF_INET; storage is large
                // and aligned enough for it.
                let a = unsafe { &*(std::ptr::from_ref(s).cast::<libc::sockaddr_in>()) };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for AF_INET6 and sockaddr_in6.
                let a = unsafe { &*(std::ptr::from_ref(s).cast::<libc::sockaddr_in6>()) };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
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
