//! A blob uploaded to S3 appears under its key whole (several parts sent at
//! once), or not at all when its producer fails midway. Against the real
//! server scripts/test runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod s3_server;

use cowl_mirror::{MirrorError, Remote};
use s3_server::{endpoint, make_bucket};

fn remote(name: &str) -> Remote {
    let ep = endpoint();
    let bucket = format!("cowl-upload-{name}-{}", std::process::id());
    make_bucket(&ep, &bucket);
    std::env::set_var("AWS_ENDPOINT_URL", &ep);
    std::env::set_var("AWS_ACCESS_KEY_ID", "cowltest");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "cowltest");
    std::env::set_var("AWS_REGION", "us-east-1");
    Remote::open(&format!("s3://{bucket}/m")).unwrap()
}

fn spool() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cowl-spool-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 20 MiB that differ from part to part (a mixed-up part order shows).
fn data() -> Vec<u8> {
    (0..20u32 << 20).map(|i| (i / 4099 % 251) as u8).collect()
}

#[test]
fn a_blob_of_several_parts_appears_whole_under_its_key() {
    let r = remote("whole");
    let want = data();
    let n = r
        .upload("blobs", &spool(), |out| {
            for piece in want.chunks(1 << 16) {
                out.write_all(piece).unwrap();
            }
            Ok((want.len(), "blobs/big".to_owned()))
        })
        .unwrap();
    assert_eq!(n, want.len());
    let got = r
        .download("blobs/big", |input| {
            let mut v = Vec::new();
            input.read_to_end(&mut v).unwrap();
            Ok(v)
        })
        .unwrap();
    assert!(got == want, "the blob came back different");
    // Again under the same key: the store has it, nothing is sent, it stays.
    r.upload("blobs", &spool(), |out| {
        out.write_all(b"other").unwrap();
        Ok(((), "blobs/big".to_owned()))
    })
    .unwrap();
    assert!(
        r.get_small("blobs/big", 64).is_err(),
        "the blob was replaced"
    );
}

#[test]
fn a_blob_whose_producer_fails_is_not_in_the_store() {
    let r = remote("failed");
    let e = r.upload(
        "blobs",
        &spool(),
        |out| -> Result<((), String), MirrorError> {
            out.write_all(&data()).unwrap();
            Err(MirrorError::Format("the producer gave up".into()))
        },
    );
    assert!(e.is_err());
    assert!(!r.exists("blobs/big").unwrap());
    let leftovers = std::fs::read_dir(spool()).unwrap().count();
    assert_eq!(leftovers, 0, "the spool file was left behind");
}
