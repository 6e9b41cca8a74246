//! Finding what a compromised app leaves behind: built-in rules over the
//! entries of each version (persistence, privilege, droppers, system
//! changes), read from manifests and layers only. Nothing of the box is
//! executed; file content is read only where a rule needs it (a few bytes
//! for an ELF header, environment files for `LD_PRELOAD`).
//!
//! This file holds the public face of the scan ([`scan_entries`]; the
//! severities, findings and the machine's context are in `finding`) and the
//! order of the rule tables.
//! The rules themselves are tables: those of homes in `home`, of the system
//! in `system`, of every path in `anywhere`; `engine` says what a rule is
//! and applies the tables to each entry.

use crate::manifest::Entry;
use engine::{Subject, Table};
use std::collections::HashSet;
use std::path::Path;

mod anywhere;
mod engine;
mod finding;
mod home;
mod system;
#[cfg(test)]
mod tests;

pub use finding::{Context, Finding, Severity};

/// Every rule, table by table, in the order their findings are reported for
/// an entry.
const TABLES: &[&Table] = &[
    &anywhere::PRIVILEGE,
    &home::RULES,
    &system::RULES,
    &anywhere::REPOSITORIES,
    &anywhere::DROPPERS,
    &system::ETC_CHANGES,
];

/// Applies every built-in rule to the entries of one layer; `layer` is where
/// the entries are (to read content where a rule needs it).
pub fn scan_entries(entries: &[Entry], layer: &Path, cx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let paths: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    for e in entries {
        engine::apply(TABLES, &Subject::new(e, layer, &paths, cx), &mut out);
    }
    out
}
