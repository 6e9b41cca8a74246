//! The host's mount table, read from `/proc/self/mountinfo`: what each
//! mount is (its device, the part of its filesystem it shows, its type and
//! flags), and which of them a process sees — a mount covered by a later
//! one on the same point, or on a directory above it, is not seen.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's id.
    pub id: u32,
    /// The id of the mount it is mounted on.
    pub parent: u32,
    /// The device of its filesystem (`major`, `minor`): two mounts with the
    /// same device show the same filesystem.
    pub dev: (u32, u32),
    /// The directory of its filesystem it shows (`/` for all of it; a bind
    /// mount shows a part).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its filesystem type (`ext4`, `tmpfs`, `overlay`, `fuse.sshfs` …).
    pub fstype: String,
    /// Where it comes from (a device, a server path, `tmpfs` …).
    pub source: String,
    /// The mount's own options (`ro` or `rw`, `nosuid` …).
    pub mount_opts: Vec<String>,
    /// The filesystem's options (`ro` or `rw`, `user_id=` for FUSE …).
    pub super_opts: Vec<String>,
}

impl MountEntry {
    /// Whether the mount or its filesystem is read-only.
    pub fn read_only(&self) -> bool {
        self.mount_opts.iter().any(|o| o == "ro") || self.super_opts.iter().any(|o| o == "ro")
    }

    /// The value of a filesystem option (`user_id` of a FUSE mount).
    pub fn super_opt(&self, key: &str) -> Option<&str> {
        self.super_opts
            .iter()
            .find_map(|o| o.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// Whether a filesystem option is set (`allow_other`).
    pub fn has_super_opt(&self, key: &str) -> bool {
        self.super_opts.iter().any(|o| o == key)
    }
}

/// Parses the text of a mountinfo file. Lines that do not parse are skipped:
/// the kernel's format is stable, and a line we cannot read is one we could
/// not act on anyway.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let mut f = line.split(' ');
    let id = f.next()?.parse().ok()?;
    let parent = f.next()?.parse().ok()?;
    let (maj, min) = f.next()?.split_once(':')?;
    let dev = (maj.parse().ok()?, min.parse().ok()?);
    let root = path(f.next()?);
    let mount_point = path(f.next()?);
    let mount_opts = f.next()?.split(',').map(str::to_owned).collect();
    let mut rest = f.skip_while(|x| *x != "-");
    rest.next()?;
    let fstype = rest.next()?.to_owned();
    let source = String::from_utf8_lossy(&unescape(rest.next()?)).into_owned();
    let super_opts = rest
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_owned)
        .collect();
    Some(MountEntry {
        id,
        parent,
        dev,
        root,
        mount_point,
        fstype,
        source,
        mount_opts,
        super_opts,
    })
}

fn path(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// Reads the calling process's mount table.
pub fn read_own() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The mounts a process sees, in the table's order (parents before
/// children): of several mounts on one point the last (the one on top);
/// none below a mount that covers it (a later mount on a directory above).
/// The root is the mount on `/` that nothing listed is mounted under.
pub fn visible(mounts: &[MountEntry]) -> Vec<MountEntry> {
    // Linear in the table (a desktop's has hundreds of lines): maps by id
    // and by point instead of scans.
    let by_id: HashMap<u32, &MountEntry> = mounts.iter().map(|m| (m.id, m)).collect();
    // Mounts another mount sits on at the same point: not the top of it.
    let sat_on: HashSet<u32> = mounts
        .iter()
        .filter(|o| {
            by_id
                .get(&o.parent)
                .is_some_and(|p| p.mount_point == o.mount_point)
        })
        .map(|o| o.parent)
        .collect();
    let Some(root) = mounts
        .iter()
        .find(|m| m.mount_point == Path::new("/") && !sat_on.contains(&m.id))
    else {
        return Vec::new();
    };
    // The mount seen at each point so far.
    let mut seen_at: HashMap<&Path, u32> = HashMap::from([(root.mount_point.as_path(), root.id)]);
    let mut ids: HashSet<u32> = HashSet::from([root.id]);
    // Shallowest first, so a mount made later on a directory above an
    // earlier one is known before that one is looked at; parents come before
    // their children (a few passes settle any other order).
    let mut order: Vec<&MountEntry> = mounts.iter().collect();
    order.sort_by_key(|m| m.mount_point.components().count());
    for _ in 0..4 {
        let mut changed = false;
        for &m in &order {
            if ids.contains(&m.id) || sat_on.contains(&m.id) {
                continue;
            }
            // The top of a stack sits on the mount below it on the same
            // point: what it is mounted under is that one's parent.
            let mut under = m.parent;
            for _ in 0..mounts.len() {
                match by_id.get(&under) {
                    Some(p) if p.mount_point == m.mount_point => under = p.parent,
                    _ => break,
                }
            }
            let Some(parent) = by_id.get(&under).filter(|p| ids.contains(&p.id)) else {
                continue;
            };
            // A mount seen on a directory between its parent's point and its
            // own covers it.
            let covered = m
                .mount_point
                .ancestors()
                .skip(1)
                .take_while(|a| *a != parent.mount_point.as_path())
                .any(|a| seen_at.contains_key(a));
            if !covered {
                seen_at.insert(m.mount_point.as_path(), m.id);
                ids.insert(m.id);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    mounts
        .iter()
        .filter(|m| ids.contains(&m.id))
        .cloned()
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\134` for `\`).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field_with_escapes() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n\
                    30 1 8:1 /sub /mnt/a\\040b\\134c\\012d ro,nodev - ext4 /dev/sda1 rw,errors=remount-ro\n\
                    31 1 0:50 / /run/user/1000/doc rw master:1 shared:7 - fuse.portal portal rw,user_id=1000,group_id=1000\n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/a b\\c\nd"));
        assert_eq!(m[1].root, PathBuf::from("/sub"));
        assert_eq!(m[1].dev, (8, 1));
        assert_eq!(m[1].fstype, "ext4");
        assert!(m[1].read_only());
        assert!(!m[0].read_only());
        assert_eq!(m[2].super_opt("user_id"), Some("1000"));
        assert!(!m[2].has_super_opt("allow_other"));
    }

    #[test]
    fn the_top_of_stacked_mounts_is_seen_and_covered_ones_are_not() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 0:30 / /mnt rw - tmpfs a rw\n\
                    3 2 0:31 / /mnt/x rw - tmpfs b rw\n\
                    4 2 0:32 / /mnt rw - tmpfs c rw\n\
                    5 1 0:33 / /srv rw - tmpfs d rw\n\
                    6 5 0:34 / /srv rw - tmpfs e rw\n\
                    7 6 0:35 / /srv/y rw - tmpfs f rw\n\
                    8 1 0:36 / /opt/a/b rw - tmpfs g rw\n\
                    9 1 0:37 / /opt/a rw - tmpfs h rw\n";
        let seen: Vec<u32> = visible(&parse(text)).iter().map(|m| m.id).collect();
        // /mnt: 4 is on top of 2, so 2's child 3 is covered; /srv: 6 on 5;
        // /opt/a, mounted after /opt/a/b, covers it.
        assert_eq!(seen, [1, 4, 6, 7, 9]);
    }
}
