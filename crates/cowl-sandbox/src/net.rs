//! The network of a box with its own network namespace: loopback only; and
//! the host's own addresses, which the proxy keeps names from leading to.

use crate::sys::cvt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Brings up `lo` in the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket for the ioctl; closed below.
    let sock =
        cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: req is a valid ifreq for these ioctls.
    let r = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == -1 {
            -1
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req)
        }
    };
    let err = io::Error::last_os_error();
    // SAFETY: closing our own socket.
    unsafe { libc::close(sock) };
    if r == -1 {
        Err(err)
    } else {
        Ok(())
    }
}

/// The addresses of this host's own interfaces as `getifaddrs(3)` lists
/// them now: what a connection to one of them reaches is this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAddresses {
    /// Every interface's address, loopback included.
    pub own: Vec<IpAddr>,
    /// The broadcast addresses of the interfaces that have one.
    pub broadcast: Vec<IpAddr>,
}

/// Lists this host's interface addresses (in the caller's network namespace).
pub fn host_addresses() -> io::Result<HostAddresses> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: head is a valid out-pointer; freed below.
    cvt(unsafe { libc::getifaddrs(&mut head) })?;
    let mut out = HostAddresses::default();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is an entry of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        // SAFETY: the entry's address pointers are null or valid sockaddrs.
        if let Some(ip) = unsafe { sockaddr_ip(ifa.ifa_addr) } {
            out.own.push(ip);
        }
        if ifa.ifa_flags & libc::IFF_BROADCAST as libc::c_uint != 0 {
            // SAFETY: with IFF_BROADCAST the union holds the broadcast address.
            if let Some(ip) = unsafe { sockaddr_ip(ifa.ifa_ifu) } {
                out.broadcast.push(ip);
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: freeing the list getifaddrs returned, once; no reference into it is kept.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IP address of an `AF_INET` or `AF_INET6` sockaddr; `None` for other
/// families and null.
///
/// # Safety
/// `sa` is null or points to a sockaddr as large as its family says.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: sa is a valid sockaddr (the caller's promise), its family tells its size.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*sa.cast::<libc::sockaddr_in>();
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*sa.cast::<libc::sockaddr_in6>();
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}
