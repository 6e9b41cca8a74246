//! The index of an S3 mirror is replaced only if it is still the one read
//! (If-Match), and made only if absent (If-None-Match): two pushes never
//! silently overwrite each other. Against the real server scripts/test runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod s3_server;

use cowl_mirror::{MirrorError, Remote};
use s3_server::{endpoint, make_bucket};

#[test]
fn the_index_is_replaced_only_if_nobody_changed_it_meanwhile() {
    let ep = endpoint();
    let bucket = format!("cowl-index-{}", std::process::id());
    make_bucket(&ep, &bucket);
    std::env::set_var("AWS_ENDPOINT_URL", &ep);
    std::env::set_var("AWS_ACCESS_KEY_ID", "cowltest");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "cowltest");
    std::env::set_var("AWS_REGION", "us-east-1");
    let r = Remote::open(&format!("s3://{bucket}/m")).unwrap();
    r.replace("index.json", b"one".to_vec(), None, true)
        .unwrap();
    // Made meanwhile by someone else: a second "create" is refused.
    let e = r.replace("index.json", b"two".to_vec(), None, true);
    assert!(matches!(e, Err(MirrorError::Refused(_))), "{e:?}");
    let read = r.get_small("index.json", 1024).unwrap().unwrap();
    assert_eq!(read.data, b"one");
    assert!(read.etag.is_some());
    // Replaced meanwhile: the update against the old version is refused.
    r.put("index.json", b"other".to_vec()).unwrap();
    let e = r.replace("index.json", b"mine".to_vec(), read.etag.clone(), false);
    assert!(matches!(e, Err(MirrorError::Refused(_))), "{e:?}");
    let now = r.get_small("index.json", 1024).unwrap().unwrap();
    assert_eq!(now.data, b"other");
    r.replace("index.json", b"mine".to_vec(), now.etag, false)
        .unwrap();
    assert_eq!(
        r.get_small("index.json", 1024).unwrap().unwrap().data,
        b"mine"
    );
}
