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
    pub(super) fn answer(&mut self, n: usize, mut f: impl FnMut(&[u8], SocketAddr, &mut Vec<u8>)) {
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
