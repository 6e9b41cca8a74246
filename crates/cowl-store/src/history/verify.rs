//! Verify: re-hashing every version and checking the chain of digests.

use crate::{BoxDir, StoreError};

/// What `verify` found wrong.
#[derive(Debug)]
pub struct VerifyFailure {
    /// The first version that does not match.
    pub version: u64,
    /// Why, for a human: a path in it is quoted (see `quote`).
    pub reason: String,
}

/// Re-hashes every version and checks the chain of digests. Returns the
/// first failure, oldest first.
pub fn verify(b: &BoxDir) -> Result<Option<VerifyFailure>, StoreError> {
    let _ops = b.ops_lock(false)?;
    let versions = b.versions()?;
    let mut parent: Option<String> = None;
    for v in &versions {
        let fail = |reason: String| {
            Ok(Some(VerifyFailure {
                version: v.number,
                reason,
            }))
        };
        if v.manifest.body.version != v.number {
            return fail(format!(
                "its manifest says version {}",
                v.manifest.body.version
            ));
        }
        if v.manifest.body.digest() != v.manifest.digest {
            return fail("its manifest does not match its digest".into());
        }
        if v.manifest.body.parent != parent {
            return fail("its parent digest is not the digest of the version below".into());
        }
        let cut: Vec<String> = crate::cut::of_layer(&v.layer())
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if cut != v.manifest.body.committed {
            return fail(format!(
                "its {} does not match its manifest",
                crate::cut::FILE
            ));
        }
        let map = crate::manifest::read_owner_map(&v.dir);
        if let Some(path) =
            crate::manifest::verify_layer_mapped(&v.layer(), &v.manifest, &b.pending_dir(), map)?
        {
            return fail(format!(
                "{} differs from the manifest",
                crate::quote::text(&format!("/{path}"))
            ));
        }
        parent = Some(v.manifest.digest.clone());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{versions_of, Scratch};
    use super::verify;
    use crate::manifest::Manifest;
    use crate::BoxDir;

    fn reason(b: &BoxDir) -> (u64, String) {
        let f = verify(b).unwrap().unwrap();
        (f.version, f.reason)
    }

    fn rewrite(b: &BoxDir, n: u64, edit: impl FnOnce(&mut Manifest)) {
        let p = b.path().join(format!("versions/{n}/manifest.json"));
        let mut m = Manifest::load(&p).unwrap();
        edit(&mut m);
        std::fs::write(&p, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }

    #[test]
    fn verify_finds_a_changed_file_in_a_version() {
        let s = Scratch::new("verify-file");
        let b = &s.b;
        versions_of(b, &["one", "two"]);
        assert!(verify(b).unwrap().is_none());
        let f = b.path().join("versions/2/layer/cowl-history-test/f1");
        std::fs::write(&f, "changed").unwrap();
        let (v, r) = reason(b);
        assert_eq!(v, 2);
        assert!(
            r.contains("cowl-history-test/f1") && r.ends_with("differs from the manifest"),
            "{r}"
        );
        // A file added to a layer is found too, in the oldest version first.
        std::fs::write(b.path().join("versions/1/layer/extra"), "x").unwrap();
        assert_eq!(reason(b).0, 1);
    }

    #[test]
    fn verify_finds_a_broken_manifest_or_chain() {
        let s = Scratch::new("verify-chain");
        let b = &s.b;
        versions_of(b, &["one", "two"]);
        // The body changed under its digest.
        rewrite(b, 2, |m| m.body.message = "edited".into());
        assert_eq!(
            reason(b),
            (2, "its manifest does not match its digest".into())
        );
        // Resealed, it no longer names the digest below it.
        rewrite(b, 2, |m| {
            m.body.parent = None;
            *m = m.body.clone().seal();
        });
        assert_eq!(
            reason(b),
            (
                2,
                "its parent digest is not the digest of the version below".into()
            )
        );
        rewrite(b, 1, |m| {
            m.body.version = 7;
            *m = m.body.clone().seal();
        });
        assert_eq!(reason(b), (1, "its manifest says version 7".into()));
    }

    #[test]
    fn verify_finds_a_cut_that_does_not_match_the_manifest() {
        let s = Scratch::new("verify-cut");
        let b = &s.b;
        versions_of(b, &["one"]);
        std::fs::write(
            b.path().join("versions/1").join(crate::cut::FILE),
            r#"["etc/x"]"#,
        )
        .unwrap();
        assert_eq!(
            reason(b),
            (1, "its committed.json does not match its manifest".into())
        );
    }
}
