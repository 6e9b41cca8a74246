//! Thin, safe wrappers over the system calls the sandbox needs, including the
//! ones libc has no function for (the new mount API, clone3, pidfd).
//! Each returns `io::Result` with errno; callers add what failed.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open(2)` relative to `dir` (or the cwd), returning an owned descriptor.
pub fn openat(dir: Option<RawFd>, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe {
        libc::openat(
            dir.unwrap_or(libc::AT_FDCWD),
            c.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode,
        )
    };
    owned(fd as libc::c_long)
}

/// `openat2(2)` with resolve flags.
pub fn openat2(dir: RawFd, path: &Path, flags: u64, resolve: u64) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: flags | libc::O_CLOEXEC as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: c and how live across the call; the size matches the struct.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    owned(fd)
}

/// `mkdirat(2)`; an existing entry is not an error.
pub fn mkdirat(dir: RawFd, name: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(name)?;
    // SAFETY: valid C string.
    match cvt(unsafe { libc::mkdirat(dir, c.as_ptr(), mode) }) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r.map(drop),
    }
}

/// `mkdirat(2)` that says whether it made the directory (`false`: it existed).
pub fn mkdirat_new(dir: RawFd, name: &Path, mode: u32) -> io::Result<bool> {
    let c = cpath(name)?;
    // SAFETY: valid C string.
    match cvt(unsafe { libc::mkdirat(dir, c.as_ptr(), mode) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &Path, dir: RawFd, name: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    let n = cpath(name)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir, n.as_ptr()) }).map(drop)
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
    let f = cpath(from)?;
    let t = cpath(to)?;
    // SAFETY: valid C strings for the duration of the call.
    cvt(unsafe { libc::renameat2(from_dir, f.as_ptr(), to_dir, t.as_ptr(), flags) }).map(drop)
}

/// `unlinkat(2)`; `dir_entry`: remove an (empty) directory.
pub fn unlinkat(dir: RawFd, name: &Path, dir_entry: bool) -> io::Result<()> {
    let c = cpath(name)?;
    let flags = if dir_entry { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid C string.
    cvt(unsafe { libc::unlinkat(dir, c.as_ptr(), flags) }).map(drop)
}

/// `mkfifoat(3)`.
pub fn mkfifoat(dir: RawFd, name: &Path, mode: u32) -> io::Result<()> {
    let c = cpath(name)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkfifoat(dir, c.as_ptr(), mode) }).map(drop)
}

/// What `fstatat(2)` says of `name` in `dir`, not following a symlink:
/// `(mode, size, mtime seconds, mtime nanoseconds, inode, device)`.
pub fn lstatat(dir: RawFd, name: &Path) -> io::Result<(u32, u64, i64, i64, u64, u64)> {
    let c = cpath(name)?;
    // SAFETY: stat is plain data; zeroed is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and a stat buffer we own.
    cvt(unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok((
        st.st_mode,
        st.st_size as u64,
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ino,
        st.st_dev,
    ))
}

/// `futimens(2)`: sets the access and modification times.
pub fn futimens(fd: RawFd, sec: i64, nsec: i64) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    };
    let times = [t, t];
    // SAFETY: two timespecs, as the call reads.
    cvt(unsafe { libc::futimens(fd, times.as_ptr()) }).map(drop)
}

/// `readlinkat(2)`.
pub fn readlinkat(dir: RawFd, name: &Path) -> io::Result<std::path::PathBuf> {
    let c = cpath(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the buffer is ours and its length is passed.
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = cvt(n)? as usize;
    buf.truncate(n);
    Ok(std::path::PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(buf),
    ))
}

/// `fsync(2)`.
pub fn fsync(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor.
    cvt(unsafe { libc::fsync(fd) }).map(drop)
}

/// `fchmod(2)`.
pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor.
    cvt(unsafe { libc::fchmod(fd, mode) }).map(drop)
}

/// `fchown(2)`.
pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor.
    cvt(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
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
    // SAFETY: valid C string; FSOPEN_CLOEXEC is the only flag.
    owned(unsafe {
        libc::syscall(
            libc::SYS_fsopen,
            fstype.as_ptr(),
            1, /* FSOPEN_CLOEXEC */
        )
    })
}

/// The `fsconfig(2)` commands cowl uses.
pub const FSCONFIG_SET_FLAG: u32 = 0;
/// Set a string parameter.
pub const FSCONFIG_SET_STRING: u32 = 1;
/// Create the superblock.
pub const FSCONFIG_CMD_CREATE: u32 = 6;

/// `fsconfig(2)`.
pub fn fsconfig(fs: RawFd, cmd: u32, key: Option<&CStr>, value: Option<&CStr>) -> io::Result<()> {
    let k = key.map_or(std::ptr::null(), |k| k.as_ptr());
    let v = value.map_or(std::ptr::null(), |v| v.as_ptr());
    // SAFETY: key and value are NULL or valid C strings; aux is 0.
    cvt(unsafe { libc::syscall(libc::SYS_fsconfig, fs, cmd, k, v, 0) }).map(drop)
}

/// `fsmount(2)` with mount attributes.
pub fn fsmount(fs: RawFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; FSMOUNT_CLOEXEC = 1.
    owned(unsafe { libc::syscall(libc::SYS_fsmount, fs, 1, attrs) })
}

/// `open_tree(2)`.
pub fn open_tree(dir: RawFd, path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    owned(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir,
            c.as_ptr(),
            flags | libc::O_CLOEXEC as u32,
        )
    })
}

/// `move_mount(2)` of a mount descriptor onto the object `to` refers to.
pub fn move_mount_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    let empty = c"";
    // SAFETY: empty C strings with the EMPTY_PATH flags name the descriptors themselves.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            empty.as_ptr(),
            to,
            empty.as_ptr(),
            0x4 | 0x40, /* MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH */
        )
    })
    .map(drop)
}

/// Mount attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// Mount attribute: ignore setuid and file capabilities.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// Mount attribute: no device files.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// Mount attribute: no execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

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
    let n = cpath(new_root)?;
    let o = cpath(put_old)?;
    // SAFETY: valid C strings.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }).map(drop)
}

/// `chdir(2)`.
pub fn chdir(p: &Path) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::chdir(c.as_ptr()) }).map(drop)
}

/// `fchdir(2)`.
pub fn fchdir(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fchdir(fd) }).map(drop)
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// `pidfd_send_signal(2)`: a signal to the process the descriptor names,
/// never to a later process that reused its pid.
pub fn pidfd_send_signal(fd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; no siginfo.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
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
pub fn fs_magic(fd: RawFd) -> io::Result<i64> {
    // SAFETY: statfs is plain data; zeroed is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-pointer.
    cvt(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st.f_type as i64)
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
