//! A stack of layers over the host, read the way overlayfs reads it: the
//! topmost entry of a path wins, a whiteout deletes what is below it, an
//! opaque directory hides what is below it, and a directory merges with the
//! directories below it. Used to compare any two versions of a box without
//! mounting anything.

use crate::layer::EntryKind;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Layers (top first) over a base.
#[derive(Debug)]
pub struct Stack<'a> {
    /// Layer roots, the topmost first.
    pub layers: Vec<PathBuf>,
    /// The host's root, or `None` for an empty base.
    pub host: Option<&'a Path>,
    /// Paths (relative to `/`) where the host shows nothing: the box has its
    /// own directories there (`tmp`, `var/tmp`).
    pub private: &'a [PathBuf],
    /// What each directory on the way to a path is, per layer: looked at
    /// once, not once per entry below it.
    pub seen: std::cell::RefCell<std::collections::HashMap<PathBuf, Option<EntryKind>>>,
    /// Per layer, the cut of a commit (see `cut`): the layers below it
    /// hold nothing at or under those paths.
    cuts: Vec<Option<BTreeSet<PathBuf>>>,
}

impl<'a> Stack<'a> {
    /// A stack of `layers` (topmost first) over `host`.
    pub fn new(layers: Vec<PathBuf>, host: Option<&'a Path>, private: &'a [PathBuf]) -> Stack<'a> {
        Stack {
            cuts: layers.iter().map(|l| crate::cut::of_layer(l)).collect(),
            layers,
            host,
            private,
            seen: Default::default(),
        }
    }

    fn kind(&self, p: &Path) -> Option<EntryKind> {
        if let Some(k) = self.seen.borrow().get(p) {
            return *k;
        }
        let k = EntryKind::of(p).map(|(k, _)| k);
        self.seen.borrow_mut().insert(p.to_owned(), k);
        k
    }

    /// How many layers (from the top) may hold `rel`: all of them, or down
    /// to the first commit that cut it.
    fn reach(&self, rel: &Path) -> usize {
        self.cuts
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| crate::cut::covers(c, rel)))
            .map_or(self.layers.len(), |i| i + 1)
    }
}

/// What a stack shows at a path.
#[derive(Debug)]
pub struct Found {
    /// What it is.
    pub kind: EntryKind,
    /// Its metadata.
    pub md: std::fs::Metadata,
    /// Where it really is.
    pub real: PathBuf,
    /// Whether the layer that provides it marks it opaque.
    pub opaque: bool,
}

impl Stack<'_> {
    /// The entry the stack shows at `rel` (relative to `/`), if any.
    pub fn lookup(&self, rel: &Path) -> Option<Found> {
        let comps: Vec<_> = rel.components().collect();
        'layers: for layer in &self.layers[..self.reach(rel)] {
            // An ancestor that is a whiteout or not a directory hides the
            // path in this layer and below; an opaque one hides below.
            let mut cur = layer.clone();
            for c in &comps[..comps.len().saturating_sub(1)] {
                cur.push(c);
                match self.kind(&cur) {
                    None => continue 'layers,
                    Some(EntryKind::Dir) => {}
                    Some(EntryKind::OpaqueDir) => {
                        return self
                            .lookup_in(layer, rel)
                            .filter(|f| f.kind != EntryKind::Whiteout);
                    }
                    Some(_) => return None,
                }
            }
            if let Some(f) = self.lookup_in(layer, rel) {
                return (f.kind != EntryKind::Whiteout).then_some(f);
            }
        }
        let host = self.host?;
        if self.private.iter().any(|p| rel.starts_with(p) && rel != p) {
            return None;
        }
        let real = host.join(rel);
        let (kind, md) = EntryKind::of(&real)?;
        // The host has no whiteouts or opaque directories.
        let kind = match kind {
            EntryKind::Whiteout => EntryKind::CharDevice,
            EntryKind::OpaqueDir => EntryKind::Dir,
            k => k,
        };
        Some(Found {
            kind,
            md,
            real,
            opaque: false,
        })
    }

    fn lookup_in(&self, layer: &Path, rel: &Path) -> Option<Found> {
        let real = layer.join(rel);
        let (kind, md) = EntryKind::of(&real)?;
        Some(Found {
            opaque: kind == EntryKind::OpaqueDir,
            kind: if kind == EntryKind::OpaqueDir {
                EntryKind::Dir
            } else {
                kind
            },
            md,
            real,
        })
    }

    /// The names the stack shows in directory `rel`.
    pub fn list(&self, rel: &Path) -> BTreeSet<OsString> {
        let mut seen = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        let any_cut = self.cuts.iter().any(Option::is_some);
        for (i, layer) in self.layers[..self.reach(rel)].iter().enumerate() {
            let dir = layer.join(rel);
            let Some((kind, _)) = EntryKind::of(&dir) else {
                continue;
            };
            if !kind.is_dir() {
                return seen;
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name();
                    if hidden.contains(&n) || seen.contains(&n) {
                        continue;
                    }
                    if any_cut && self.reach(&rel.join(&n)) <= i {
                        // Cut by a commit above this layer: the host's.
                        continue;
                    }
                    match EntryKind::of(&e.path()) {
                        Some((EntryKind::Whiteout, _)) => {
                            hidden.insert(n);
                        }
                        Some(_) => {
                            seen.insert(n);
                        }
                        None => {}
                    }
                }
            }
            if kind == EntryKind::OpaqueDir {
                return seen;
            }
        }
        if let Some(host) = self.host {
            if self.private.iter().any(|p| rel.starts_with(p)) {
                return seen;
            }
            if let Ok(rd) = std::fs::read_dir(host.join(rel)) {
                for e in rd.flatten() {
                    let n = e.file_name();
                    if !hidden.contains(&n) {
                        seen.insert(n);
                    }
                }
            }
        }
        seen
    }
}
