//! Where the store is: `$COWL_HOME`, else `$XDG_DATA_HOME/cowl`, else
//! `~/.local/share/cowl`; `/var/lib/cowl` for root.

use std::path::PathBuf;

/// Resolves the store root from the environment. `is_root` selects the
/// system default when no variable is set.
pub fn store_root(is_root: bool) -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("COWL_HOME") {
        return Some(p);
    }
    if is_root {
        return Some(PathBuf::from("/var/lib/cowl"));
    }
    if let Some(p) = var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Some(p.join("cowl"));
    }
    var("HOME").map(|h| h.join(".local/share/cowl"))
}
