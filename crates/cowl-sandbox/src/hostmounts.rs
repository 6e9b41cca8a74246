//! The host's mounts, each with its class: how a box shows it. Read once per
//! run from the mount table; decided by what a mount is (its filesystem
//! type, its flags, its device and the part of it it shows, the type of the
//! object mounted), never by the path it happens to have.
//!
//! | class | shown as |
//! |---|---|
//! | writable directory | an overlay: the box's layers over it |
//! | read-only (`ro`, squashfs, erofs, iso9660, udf, cramfs) | a read-only bind |
//! | kernel filesystem | the box's own (/proc, /dev, /sys) or left out |
//! | unreachable (another user's FUSE mount, a network mount not answering) | an empty directory |
//! | file | the file, bound read-only |
//! | socket | closed: never the host's listener |
//! | a second path to a hidden directory or the store | hidden there too |

use crate::mountinfo::MountEntry;
use serde::Serialize;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Filesystems of the kernel's own: never overlaid, never entered.
pub const KERNEL_FS: [&str; 22] = [
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "devtmpfs",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "fusectl",
    "binfmt_misc",
    "configfs",
    "pstore",
    "efivarfs",
    "hugetlbfs",
    "autofs",
    "rpc_pipefs",
    "nsfs",
    "selinuxfs",
    "nfsd",
];

/// Filesystems that cannot be written: shown read-only whatever their flags.
pub const READ_ONLY_FS: [&str; 5] = ["squashfs", "erofs", "iso9660", "udf", "cramfs"];

/// Filesystems on another machine: entered only once they answer.
const NETWORK_FS: [&str; 10] = [
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "9p",
    "glusterfs",
    "afs",
    "fuse.sshfs",
];

/// How long a network mount may take to answer before it counts as dead.
const NETWORK_ANSWER: Duration = Duration::from_millis(500);

/// How a host mount is shown in a box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "class", rename_all = "kebab-case")]
pub enum MountClass {
    /// A directory the app may write to: an overlay with the box's layers.
    Writable,
    /// Read-only: bound read-only (writes fail with EROFS, as on the host).
    ReadOnly,
    /// A kernel filesystem: the box's own, or left out.
    Kernel,
    /// A mount the caller cannot enter: an empty directory.
    Unreachable {
        /// Why.
        why: String,
    },
    /// A file bound onto a file: the file, read-only.
    File,
    /// A socket or a FIFO bound onto a file: closed, never the host's
    /// listener or pipe (a read-only bind of either still connects or
    /// opens for writing).
    Socket,
    /// A second path to a hidden directory or the store: hidden there too.
    Hidden {
        /// The hidden path it shows.
        of: PathBuf,
    },
}

impl MountClass {
    /// Whether the box may write below this mount on the host's terms.
    pub fn is_writable(&self) -> bool {
        *self == MountClass::Writable
    }
}

/// One mount of the host as the box shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostMount {
    /// Where it is mounted.
    pub path: PathBuf,
    /// Its filesystem type.
    pub fstype: String,
    /// Its class.
    #[serde(flatten)]
    pub class: MountClass,
}

/// Classifies the mounts a process sees (`mountinfo::visible`), except `/`
/// and the kernel's trees the box makes its own. `hidden`: paths the box must
/// not see (the store among them), as resolved on the host. Returns the
/// mounts and the hidden paths as seen through every other mount of the
/// same filesystem (a bind mount of /home elsewhere, a btrfs subvolume seen
/// twice), to be hidden too.
pub fn classify(
    visible: &[MountEntry],
    hidden: &[PathBuf],
    caller_uid: u32,
    skip: &dyn Fn(&Path) -> bool,
) -> (Vec<HostMount>, Vec<PathBuf>) {
    let aliases = second_paths(visible, hidden);
    let mut out = Vec::new();
    for m in visible {
        let p = &m.mount_point;
        if p == Path::new("/") || skip(p) {
            continue;
        }
        let class = match aliases.iter().find(|(alias, _)| p.starts_with(alias)) {
            Some((_, of)) => MountClass::Hidden { of: of.clone() },
            None => class_of(m, caller_uid),
        };
        out.push(HostMount {
            path: p.clone(),
            fstype: m.fstype.clone(),
            class,
        });
    }
    let alias_paths = aliases.into_iter().map(|(a, _)| a).collect();
    (out, alias_paths)
}

/// The class of one mount, by what it is.
fn class_of(m: &MountEntry, caller_uid: u32) -> MountClass {
    let t = m.fstype.as_str();
    if KERNEL_FS.contains(&t) {
        return MountClass::Kernel;
    }
    let fuse = t == "fuse" || t == "fuseblk" || t.starts_with("fuse.");
    if fuse
        && m.super_opt("user_id") != Some(caller_uid.to_string().as_str())
        && !m.has_super_opt("allow_other")
    {
        // FUSE refuses anyone but its user without allow_other, root too.
        return MountClass::Unreachable {
            why: "another user's FUSE mount".into(),
        };
    }
    if NETWORK_FS.contains(&t) && !answers(&m.mount_point, NETWORK_ANSWER) {
        return MountClass::Unreachable {
            why: format!("a {t} mount that does not answer"),
        };
    }
    // What is mounted there: a directory, a file, a socket. (Looking at the
    // mount's root does not reach into a FUSE or network filesystem's
    // server beyond what the checks above allowed.)
    match std::fs::symlink_metadata(&m.mount_point) {
        Ok(md) if md.file_type().is_socket() || md.file_type().is_fifo() => MountClass::Socket,
        Ok(md) if !md.is_dir() => MountClass::File,
        Ok(_) if m.read_only() || READ_ONLY_FS.contains(&t) => MountClass::ReadOnly,
        Ok(_) => MountClass::Writable,
        Err(e) => MountClass::Unreachable {
            why: format!("cannot be entered ({e})"),
        },
    }
}

/// Whether a path answers `statfs` within `limit`, asked by a child so
/// that a dead server hangs only that child.
fn answers(path: &Path, limit: Duration) -> bool {
    let Ok(c) = crate::sys::cpath(path) else {
        return false;
    };
    // SAFETY: planning runs in cowl's single-threaded CLI, before any box.
    match unsafe { crate::process::fork() } {
        Ok(0) => {
            // SAFETY: statfs into a buffer of its type; then leaving the child.
            unsafe {
                let mut st: libc::statfs = std::mem::zeroed();
                let ok = libc::statfs(c.as_ptr(), &mut st) == 0;
                libc::_exit(if ok { 0 } else { 1 })
            }
        }
        Ok(pid) => {
            let start = std::time::Instant::now();
            loop {
                let mut status = 0;
                // SAFETY: polling our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    return libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                }
                if start.elapsed() > limit {
                    // Left to hang on its own; the kernel reaps it with us.
                    let _ = crate::sys::kill(pid, libc::SIGKILL);
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Err(_) => false,
    }
}

/// Every other path at which `path` is seen (a second mount of the part of
/// its filesystem it is).
pub fn aliases_of(visible: &[MountEntry], path: &Path) -> Vec<PathBuf> {
    second_paths(visible, &[path.to_owned()])
        .into_iter()
        .map(|(a, _)| a)
        .collect()
}

/// Every other path at which a hidden path is seen: for each hidden path,
/// the part of its filesystem it is (the mount's root joined with the rest
/// of the path); then each other mount of the same device whose root holds
/// that part shows it at its own path too, and a mount whose root lies
/// inside it shows nothing but hidden things. Returns (alias, hidden path).
fn second_paths(visible: &[MountEntry], hidden: &[PathBuf]) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for h in hidden {
        let Some(home) = visible
            .iter()
            .filter(|m| h.starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.components().count())
        else {
            continue;
        };
        let Ok(rest) = h.strip_prefix(&home.mount_point) else {
            continue;
        };
        let part = home.root.join(rest);
        for m in visible
            .iter()
            .filter(|m| m.dev == home.dev && m.id != home.id)
        {
            let alias = if let Ok(below) = part.strip_prefix(&m.root) {
                m.mount_point.join(below)
            } else if m.root.starts_with(&part) {
                m.mount_point.clone()
            } else {
                continue;
            };
            if alias != *h && !out.iter().any(|(a, _)| *a == alias) {
                out.push((alias, h.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse;

    #[test]
    fn a_bind_of_home_elsewhere_shows_the_hidden_paths_there_too() {
        // /home is part of the root filesystem; /srv/alias binds it.
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 8:1 /home /srv/alias rw - ext4 /dev/sda1 rw\n\
                    3 1 8:1 /home/u/.ssh /mnt/keys rw - ext4 /dev/sda1 rw\n\
                    4 1 0:40 / /data rw - xfs /dev/sdb rw\n";
        let m = parse(text);
        let hidden = [
            PathBuf::from("/home/u/.ssh"),
            PathBuf::from("/home/u/.local/share/cowl"),
        ];
        let (mounts, aliases) = classify(&m, &hidden, 1000, &|_| false);
        assert!(aliases.contains(&PathBuf::from("/srv/alias/u/.ssh")));
        assert!(aliases.contains(&PathBuf::from("/srv/alias/u/.local/share/cowl")));
        assert!(aliases.contains(&PathBuf::from("/mnt/keys")));
        let keys = mounts.iter().find(|x| x.path == Path::new("/mnt/keys"));
        assert!(matches!(
            keys.map(|k| &k.class),
            Some(MountClass::Hidden { .. })
        ));
        assert!(!aliases.iter().any(|a| a.starts_with("/data")));
    }

    #[test]
    fn fuse_of_another_user_is_unreachable_and_kernel_filesystems_are_kernel() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 0:50 / /run/user/1001/doc rw - fuse.portal portal rw,user_id=1001,group_id=1001\n\
                    3 1 0:51 / /mnt/shared rw - fuse.bindfs bindfs rw,user_id=1001,group_id=1001,allow_other\n\
                    4 1 0:52 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n";
        let (mounts, _) = classify(&parse(text), &[], 1000, &|_| false);
        assert!(matches!(mounts[0].class, MountClass::Unreachable { .. }));
        // allow_other lets everyone in: classified by what it is (it need
        // not exist in this test, so it cannot be entered here).
        assert!(!matches!(mounts[1].class, MountClass::Kernel));
        assert_eq!(mounts[2].class, MountClass::Kernel);
    }
}
