//! Holding a box still while cowl reads its live layer: its run lock when
//! it is stopped, else every process frozen (`cowl_sandbox::freeze`).

use anyhow::{bail, Result};
use cowl_sandbox::freeze::{FreezeError, Frozen};

/// Holds a box still: its run lock when it is stopped, else its processes
/// frozen. Dropped, the box may move again.
pub enum Still {
    /// Held for its Drop: the run lock.
    Stopped { _lock: cowl_store::BoxLock },
    /// Held for its Drop: the processes resume.
    Frozen { _frozen: Frozen },
}

impl Still {
    /// Holds `b` still for `what` (said in errors).
    pub fn hold(b: &cowl_store::BoxDir, what: &str) -> Result<Still> {
        if let Some(lock) = b.try_lock()? {
            return Ok(Still::Stopped { _lock: lock });
        }
        match b.running()? {
            Some(state) => {
                let frozen = Frozen::freeze(state.pid).map_err(|e| {
                    let why = match &e {
                        // Its stat line holds its name, which the box chose.
                        FreezeError::DidNotStop { pid, stat } => format!(
                            "process {pid} of the box did not stop ({})",
                            cowl_store::quote::text(stat)
                        ),
                        e => e.to_string(),
                    };
                    anyhow::anyhow!(
                        "cannot freeze box {} (pid {}) for the {what}: stop it with `cowl stop {}` and retry: {why}",
                        b.name(),
                        state.pid,
                        b.name()
                    )
                })?;
                cowl_store::fault::point("freeze:held");
                Ok(Still::Frozen { _frozen: frozen })
            }
            None => bail!(
                "box {} is starting or stopping: retry in a moment",
                b.name()
            ),
        }
    }

    /// Whether the box is running (frozen, not stopped).
    pub fn running(&self) -> bool {
        matches!(self, Still::Frozen { .. })
    }
}
