//! Thin, safe wrappers over the system calls the sandbox needs. The file
//! calls (openat, openat2, renameat2, the `*at` family, fsync, fchmod,
//! fchown, futimens, fstatfs), the new mount API, pivot_root, chdir and
//! pidfd go through rustix, so no syscall number or kernel struct is
//! written here but `mount_setattr`'s, which rustix lacks. The others
//! (mount, umount2, setns, unshare, kill, the signal masks, read, write,
//! poll, the socket pair and SCM_RIGHTS passing) are still libc calls,
//! each `unsafe` block with what makes it sound. Each returns `io::Result`
//! with errno; callers add what failed.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount as mnt;

/// A descriptor the caller of a wrapper passed, for the rustix call the
/// wrapper makes: the caller holds it open for the call (every wrapper
/// takes the raw descriptors its callers hold), and it lives no longer. A
/// negative number other than `AT_FDCWD` is no descriptor: `EBADF`, as the
/// kernel would say.
fn fd<'a>(raw: RawFd) -> io::Result<BorrowedFd<'a>> {
    if raw < 0 && raw != libc::AT_FDCWD {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: see above; AT_FDCWD is a valid value for the `*at` calls.
    Ok(unsafe { BorrowedFd::borrow_raw(raw) })
}

/// Turns a -1 return into the current errno.
pub fn cvt<T: PartialEq + From<i8>>(r: T) -> io::Result<T> {
    if r == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A path as a C string. Paths from the kernel or the user cannot hold NUL
/// in practice; one that does is reported as invalid input.
pub fn cpath(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str())
}

/// Any OS string as a C string.
pub fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `open(2)` relative to `dir` (or the cwd), returning an owned descriptor.
pub fn openat(dir: Option<RawFd>, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let oflags = OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC;
    let dir = match dir {
        Some(d) => fd(d)?,
        None => rustix::fs::CWD,
    };
    Ok(rustix::fs::openat(
        dir,
        path,
        oflags,
        Mode::from_raw_mode(mode),
    )?)
}

/// `openat2(2)` with resolve flags.
pub fn openat2(dir: RawFd, path: &Path, flags: u64, resolve: u64) -> io::Result<OwnedFd> {
    let oflags = OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC;
    let resolve = rustix::fs::ResolveFlags::from_bits_retain(resolve);
    Ok(rustix::fs::openat2(
        fd(dir)?,
        path,
        oflags,
        Mode::empty(),
        resolve,
    )?)
}

/// `mkdirat(2)`; an existing entry is not an error.
pub fn mkdirat(dir: RawFd, name: &Path, mode: u32) -> io::Result<()> {
    mkdirat_new(dir, name, mode).map(drop)
}

/// `mkdirat(2)` that says whether it made the directory (`false`: it existed).
pub fn mkdirat_new(dir: RawFd, name: &Path, mode: u32) -> io::Result<bool> {
    match rustix::fs::mkdirat(fd(dir)?, name, Mode::from_raw_mode(mode)) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &Path, dir: RawFd, name: &Path) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, fd(dir)?, name)?)
}

/// `renameat2(2)` within one directory pair; `flags`: `RENAME_EXCHANGE`,
/// `RENAME_NOREPLACE` or 0.
pub fn renameat2(
    from_dir: RawFd,
    from: &Path,
    to_dir: RawFd,
    to: &Path,
    flags: u32,
) -> io::Result<()> {
    let flags = rustix::fs::RenameFlags::from_bits_retain(flags);
    Ok(rustix::fs::renameat_with(
        fd(from_dir)?,
        from,
        fd(to_dir)?,
        to,
        flags,
    )?)
}

/// `unlinkat(2)`; `dir_entry`: remove an (empty) directory.
pub fn unlinkat(dir: RawFd, name: &Path, dir_entry: bool) -> io::Result<()> {
    let flags = if dir_entry {
        rustix::fs::AtFlags::REMOVEDIR
    } else {
        rustix::fs::AtFlags::empty()
    };
    Ok(rustix::fs::unlinkat(fd(dir)?, name, flags)?)
}

/// `mkfifoat(3)`.
pub fn mkfifoat(dir: RawFd, name: &Path, mode: u32) -> io::Result<()> {
    let fifo = rustix::fs::FileType::Fifo;
    Ok(rustix::fs::mknodat(
        fd(dir)?,
        name,
        fifo,
        Mode::from_raw_mode(mode),
        0,
    )?)
}

/// What `fstatat(2)` says of `name` in `dir`, not following a symlink:
/// `(mode, size, mtime seconds, mtime nanoseconds, inode, device)`.
pub fn lstatat(dir: RawFd, name: &Path) -> io::Result<(u32, u64, i64, i64, u64, u64)> {
    let st = rustix::fs::statat(fd(dir)?, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    Ok((
        st.st_mode,
        st.st_size as u64,
        st.st_mtime,
        st.st_mtime_nsec as i64,
        st.st_ino,
        st.st_dev,
    ))
}

/// `futimens(2)`: sets the access and modification times.
pub fn futimens(of: RawFd, sec: i64, nsec: i64) -> io::Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    Ok(rustix::fs::futimens(fd(of)?, &times)?)
}

/// `readlinkat(2)`.
pub fn readlinkat(dir: RawFd, name: &Path) -> io::Result<std::path::PathBuf> {
    let target = rustix::fs::readlinkat(fd(dir)?, name, Vec::new())?;
    Ok(std::path::PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(target.into_bytes()),
    ))
}

/// `fsync(2)`.
pub fn fsync(of: RawFd) -> io::Result<()> {
    Ok(rustix::fs::fsync(fd(of)?)?)
}

/// `fchmod(2)`.
pub fn fchmod(of: RawFd, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd(of)?, Mode::from_raw_mode(mode))?)
}

/// `fchown(2)`.
pub fn fchown(of: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // -1, as for the libc call: that id is left as it is.
    let uid = (uid != u32::MAX).then(|| rustix::fs::Uid::from_raw(uid));
    let gid = (gid != u32::MAX).then(|| rustix::fs::Gid::from_raw(gid));
    Ok(rustix::fs::fchown(fd(of)?, uid, gid)?)
}

/// `mount(2)` with optional source, type and data.
pub fn mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(|s| cstr(OsStr::new(s))).transpose()?;
    let fstype = fstype.map(|s| cstr(OsStr::new(s))).transpose()?;
    let data = data.map(|s| cstr(OsStr::new(s))).transpose()?;
    let target = cpath(target)?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are NULL or valid C strings living across the call.
    cvt(unsafe {
        libc::mount(
            p(&src),
            target.as_ptr(),
            p(&fstype),
            flags,
            p(&data) as *const libc::c_void,
        )
    })
    .map(drop)
}

/// `umount2(2)`.
pub fn umount2(target: &Path, flags: i32) -> io::Result<()> {
    let c = cpath(target)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::umount2(c.as_ptr(), flags) }).map(drop)
}

/// `fsopen(2)`.
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    Ok(mnt::fsopen(fstype, mnt::FsOpenFlags::FSOPEN_CLOEXEC)?)
}

/// The `fsconfig(2)` commands cowl uses.
pub const FSCONFIG_SET_FLAG: u32 = 0;
/// Set a string parameter.
pub const FSCONFIG_SET_STRING: u32 = 1;
/// Create the superblock.
pub const FSCONFIG_CMD_CREATE: u32 = 6;

/// `fsconfig(2)`: one of the commands above.
pub fn fsconfig(fs: RawFd, cmd: u32, key: Option<&CStr>, value: Option<&CStr>) -> io::Result<()> {
    let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
    match (cmd, key, value) {
        (FSCONFIG_SET_FLAG, Some(k), None) => Ok(mnt::fsconfig_set_flag(fd(fs)?, k)?),
        (FSCONFIG_SET_STRING, Some(k), Some(v)) => Ok(mnt::fsconfig_set_string(fd(fs)?, k, v)?),
        (FSCONFIG_CMD_CREATE, None, None) => Ok(mnt::fsconfig_create(fd(fs)?)?),
        _ => Err(invalid()),
    }
}

/// `fsmount(2)` with mount attributes.
pub fn fsmount(fs: RawFd, attrs: u64) -> io::Result<OwnedFd> {
    let attrs = mnt::MountAttrFlags::from_bits_retain(attrs as u32);
    Ok(mnt::fsmount(
        fd(fs)?,
        mnt::FsMountFlags::FSMOUNT_CLOEXEC,
        attrs,
    )?)
}

/// `open_tree(2)`.
pub fn open_tree(dir: RawFd, path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let flags = mnt::OpenTreeFlags::from_bits_retain(flags) | mnt::OpenTreeFlags::OPEN_TREE_CLOEXEC;
    Ok(mnt::open_tree(fd(dir)?, path, flags)?)
}

/// `move_mount(2)` of a mount descriptor onto the object `to` refers to.
pub fn move_mount_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    let flags =
        mnt::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | mnt::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    Ok(mnt::move_mount(fd(from)?, c"", fd(to)?, c"", flags)?)
}

/// Mount attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = mnt::MountAttrFlags::MOUNT_ATTR_RDONLY.bits() as u64;
/// Mount attribute: ignore setuid and file capabilities.
pub const MOUNT_ATTR_NOSUID: u64 = mnt::MountAttrFlags::MOUNT_ATTR_NOSUID.bits() as u64;
/// Mount attribute: no device files.
pub const MOUNT_ATTR_NODEV: u64 = mnt::MountAttrFlags::MOUNT_ATTR_NODEV.bits() as u64;
/// Mount attribute: no execution.
pub const MOUNT_ATTR_NOEXEC: u64 = mnt::MountAttrFlags::MOUNT_ATTR_NOEXEC.bits() as u64;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on the mount `fd` refers to, recursively when asked.
pub fn mount_setattr(fd: RawFd, set: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH
        | if recursive {
            0x8000 /* AT_RECURSIVE */
        } else {
            0
        };
    // SAFETY: attr lives across the call and its size is passed.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    Ok(rustix::process::pivot_root(new_root, put_old)?)
}

/// `chdir(2)`.
pub fn chdir(p: &Path) -> io::Result<()> {
    Ok(rustix::process::chdir(p)?)
}

/// `fchdir(2)`.
pub fn fchdir(dir: RawFd) -> io::Result<()> {
    Ok(rustix::process::fchdir(fd(dir)?)?)
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let pid = (pid > 0)
        .then(|| rustix::process::Pid::from_raw(pid))
        .flatten()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// `pidfd_send_signal(2)`: a signal to the process the descriptor names,
/// never to a later process that reused its pid.
pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    let sig = rustix::process::Signal::from_named_raw(sig)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_send_signal(fd(pidfd)?, sig)?)
}

/// Blocks `sigs` in this thread; returns the mask before.
pub fn block_signals(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; the calls
    // only read and write the sets we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Sets this thread's signal mask (as `block_signals` returned it).
pub fn set_signal_mask(mask: &libc::sigset_t) {
    // SAFETY: a valid set we own.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

/// `setns(2)`.
pub fn setns(fd: RawFd, nstype: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::setns(fd, nstype) }).map(drop)
}

/// `unshare(2)`.
pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `kill(2)`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `fstatfs(2)`'s filesystem magic.
pub fn fs_magic(of: RawFd) -> io::Result<i64> {
    Ok(rustix::fs::fstatfs(fd(of)?)?.f_type as i64)
}

/// The effective uid.
pub fn geteuid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::geteuid() }
}

/// The effective gid.
pub fn getegid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::getegid() }
}

/// Writes all of `buf` to `fd`, retrying on EINTR.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// One `read(2)`, retrying on EINTR.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `fd` is a terminal.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: plain query.
    unsafe { libc::isatty(fd) == 1 }
}

/// A close-on-exec socket pair for messages between the supervisor and the
/// box's init.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two ints.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: the kernel returned two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads one message (at most 4 KiB) from a seqpacket socket, with the
/// descriptor it carries, if any; an empty message at end of stream.
pub fn recv_msg(fd: &OwnedFd) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = [0u64; 8];
    // SAFETY: msghdr is plain data; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    let n = loop {
        // SAFETY: msg points at valid buffers.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    buf.truncate(n);
    let mut passed = None;
    // SAFETY: walking the control messages the kernel filled in.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                passed = Some(OwnedFd::from_raw_fd(fd));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((buf, passed))
}

/// Sends one message carrying the descriptor `pass`.
pub fn send_with_fd(sock: &OwnedFd, data: &[u8], pass: RawFd) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cmsg = [0u64; 8];
    // SAFETY: msghdr is plain data; CMSG macros stay within `cmsg`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, pass);
        cvt(libc::sendmsg(sock.as_raw_fd(), &msg, 0) as isize).map(drop)
    }
}

/// The start time of `pid` in clock ticks after boot (field 22 of its stat).
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Restores the default action of SIGPIPE (the Rust runtime ignores it), so
/// `cowl log | head` ends quietly instead of failing on a closed pipe.
pub fn default_sigpipe() {
    // SAFETY: setting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `poll(2)` on `fds` for at most `timeout_ms` milliseconds; the number of
/// descriptors with events, 0 when the time ran out. An interrupted call
/// returns 0 too: callers loop on their own deadline.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a valid array of pollfd for its length.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::Interrupted {
        Ok(0)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A number that is no descriptor is an error of the call, as the
    /// kernel's would be, never a borrowed descriptor (-1 cannot be one).
    #[test]
    fn a_negative_descriptor_is_ebadf_not_a_panic() {
        for bad in [-1, -2, i32::MIN] {
            assert_eq!(fsync(bad).unwrap_err().raw_os_error(), Some(libc::EBADF));
            assert_eq!(
                fchmod(bad, 0o644).unwrap_err().raw_os_error(),
                Some(libc::EBADF)
            );
            let e = mkdirat(bad, Path::new("x"), 0o700).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        }
        // AT_FDCWD is the working directory for the `*at` calls.
        let e = lstatat(libc::AT_FDCWD, Path::new("/nonexistent-cowl-test")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn pidfd_open_refuses_pids_that_name_no_process() {
        for pid in [0, -1, -5] {
            assert_eq!(
                pidfd_open(pid).unwrap_err().raw_os_error(),
                Some(libc::EINVAL)
            );
        }
        assert!(pidfd_open(std::process::id() as i32).is_ok());
    }
}
