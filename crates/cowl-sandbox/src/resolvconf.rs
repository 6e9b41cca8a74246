//! The box's /etc/resolv.conf in the network modes with a namespace of
//! their own (`none`, `proxy`): it names the box's resolver on 127.0.0.1
//! ([`crate::resolver`]). cowl writes it on the box's scratch filesystem
//! and binds it read-only over whatever the box's view has at
//! /etc/resolv.conf: the host's file, a symlink of the host's (to
//! systemd-resolved's stub file, say), or a file bind-mounted there. So
//! nothing is written to the host or to the box's layer, and no change of
//! the host's file while the box runs reaches the box. `host` and `ports`
//! keep the host's file: they use the host's resolver.

use crate::error::SetupError;
use crate::mountapi::{fd_path, InRoot, Warn, OPEN_TREE_CLONE};
use crate::policy::NetMode;
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// Where the box's resolver configuration is, in the box.
pub const PATH: &str = "/etc/resolv.conf";

/// The file's contents for box `name` in network mode `net`. One attempt
/// (`attempts:1`): the answer is a refusal, asking again changes nothing.
pub fn contents(net: NetMode, name: &str) -> String {
    let why = match net {
        NetMode::Proxy => format!(
            "# cowl: box {name} reaches the network only through its proxies\n\
             # (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY), which resolve names themselves.\n"
        ),
        _ => format!("# cowl: box {name} has no network (net = none).\n"),
    };
    format!(
        "{why}# Every name looked up here is refused and logged: `cowl netlog {name}`.\n\
         nameserver 127.0.0.1\n\
         options attempts:1\n"
    )
}

/// Writes the file on the scratch filesystem and binds it read-only over
/// [`PATH`] in the new root. Where the box has no /etc/resolv.conf (or a
/// dangling symlink), nothing is placed: glibc and musl then ask
/// 127.0.0.1, the box's resolver, all the same. Where the file cannot be
/// placed, a warning says so and the box starts as before.
pub(crate) fn place(
    net: NetMode,
    name: &str,
    scratch: &OwnedFd,
    root: &OwnedFd,
    in_root: &InRoot,
    warn: Warn,
) -> Result<(), SetupError> {
    let op = |what: &'static str| {
        move |source| SetupError::Mount {
            what,
            path: Path::new(PATH).to_owned(),
            source,
        }
    };
    let file = sys::openat(
        Some(scratch.as_raw_fd()),
        Path::new("resolv.conf"),
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0o644,
    )
    .map_err(op("create the box's"))?;
    sys::write_all(file.as_raw_fd(), contents(net, name).as_bytes())
        .and_then(|()| sys::fchmod(file.as_raw_fd(), 0o644))
        .map_err(op("write the box's"))?;
    let tree = sys::open_tree(libc::AT_FDCWD, Path::new(&fd_path(&file)), OPEN_TREE_CLONE)
        .and_then(|t| {
            sys::mount_setattr(
                t.as_raw_fd(),
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                false,
            )
            .map(|()| t)
        })
        .map_err(op("bind the box's"))?;
    let unplaced = |warn: Warn, e: std::io::Error| {
        warn(format!(
            "the box's {PATH} is the host's ({e}): names the box looks up are not logged, and fail as they would without cowl's resolver"
        ));
        Ok(())
    };
    // The entry itself, not followed: a symlink is covered where it is.
    let target = match in_root(Path::new(PATH), 0) {
        Ok(t) => t,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return unplaced(warn, e),
    };
    let Err(first) = sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()) else {
        return Ok(());
    };
    // A kernel that mounts on no symlink: cover the file it leads to in
    // the box's view (resolved inside the new root, never the host's).
    let is_link = rustix::fs::fstat(&target)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink());
    if !is_link {
        return unplaced(warn, first);
    }
    match sys::openat2(
        root.as_raw_fd(),
        &crate::plan::rel(Path::new(PATH)),
        libc::O_PATH as u64,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(file) => match sys::move_mount_fd(tree.as_raw_fd(), file.as_raw_fd()) {
            Ok(()) => Ok(()),
            Err(e) => unplaced(warn, e),
        },
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => unplaced(warn, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_the_boxs_resolver_and_says_why() {
        let none = contents(NetMode::None, "b");
        assert!(none.lines().any(|l| l == "nameserver 127.0.0.1"), "{none}");
        assert_eq!(
            none.lines().filter(|l| l.starts_with("nameserver")).count(),
            1
        );
        assert!(none.contains("no network") && none.contains("cowl netlog b"));
        assert!(contents(NetMode::Proxy, "b").contains("through its proxies"));
    }
}
