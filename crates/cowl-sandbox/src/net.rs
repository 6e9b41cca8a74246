//! The network of a box with its own network namespace: loopback only.

use crate::sys::cvt;
use std::io;

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
