//! The host's mount table, read from `/proc/self/mountinfo`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its filesystem type (`ext4`, `tmpfs`, `overlay`, …).
    pub fstype: String,
}

/// Parses the text of a mountinfo file. Lines that do not parse are skipped:
/// the kernel's format is stable, and a line we cannot read is one we could
/// not act on anyway.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let mount_point = fields.nth(4)?;
            let mut rest = fields.skip_while(|f| *f != "-");
            rest.next()?;
            let fstype = rest.next()?;
            Some(MountEntry {
                mount_point: PathBuf::from(OsString::from_vec(unescape(mount_point))),
                fstype: fstype.to_owned(),
            })
        })
        .collect()
}

/// Reads the calling process's mount table.
pub fn read_own() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
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
    fn reads_mount_points_and_types_with_escapes() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n\
                    30 1 8:1 / /mnt/a\\040b\\134c rw - ext4 /dev/sda1 rw\n\
                    31 1 8:2 / /opt rw master:1 shared:7 - xfs /dev/sda2 rw\n";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/a b\\c"));
        assert_eq!(m[1].fstype, "ext4");
        assert_eq!(m[2].fstype, "xfs");
    }
}
