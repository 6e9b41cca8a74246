//! The operations lock of a box (`ops.lock`): every change to its history
//! holds it exclusively, every reader shares it.

use crate::{BoxDir, StoreError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;

/// The operations lock: exclusive for changes, shared for readers, so a
/// reader never sees a half-made version and two changes never interleave.
#[derive(Debug)]
pub struct OpsLock {
    _file: File,
}

impl BoxDir {
    /// Takes the operations lock, waiting for it.
    pub fn ops_lock(&self, exclusive: bool) -> Result<OpsLock, StoreError> {
        let p = self.path().join("ops.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&p)
            .map_err(StoreError::io("open", &p))?;
        let r = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        r.map_err(StoreError::io("lock", &p))?;
        Ok(OpsLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::Scratch;
    use std::fs::{File, TryLockError};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Another holder of `ops.lock`, as a second cowl process opens it.
    fn other(s: &Scratch) -> File {
        File::open(s.b.path().join("ops.lock")).unwrap()
    }

    #[test]
    fn the_exclusive_lock_excludes_every_other_holder() {
        let s = Scratch::new("lock-excl");
        let held = s.b.ops_lock(true).unwrap();
        let f = other(&s);
        assert!(matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock)));
        assert!(matches!(f.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        f.try_lock().unwrap();
    }

    #[test]
    fn readers_share_the_lock_and_keep_changes_out() {
        let s = Scratch::new("lock-shared");
        let r1 = s.b.ops_lock(false).unwrap();
        let r2 = s.b.ops_lock(false).unwrap();
        let f = other(&s);
        assert!(matches!(f.try_lock(), Err(TryLockError::WouldBlock)));
        drop(r1);
        assert!(matches!(f.try_lock(), Err(TryLockError::WouldBlock)));
        drop(r2);
        f.try_lock().unwrap();
    }

    /// A second `ops_lock` waits for the holder, and gets the lock once the
    /// holder lets it go.
    #[test]
    fn a_second_taker_waits_until_the_holder_lets_go() {
        let s = Scratch::new("lock-wait");
        let held = s.b.ops_lock(true).unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let t = {
            let (b, got) = (s.b.clone(), Arc::clone(&got));
            std::thread::spawn(move || {
                let lock = b.ops_lock(true).unwrap();
                got.store(true, Ordering::SeqCst);
                drop(lock);
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!got.load(Ordering::SeqCst), "taken while held");
        drop(held);
        t.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
    }
}
