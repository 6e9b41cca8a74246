//! Fuzzes the box resolver's reading of DNS queries: whatever the bytes, it
//! must not panic, and an answer is a bounded response with the query's id
//! that the parser itself would not answer again.
//!
//!   cargo +nightly fuzz run dns_query
#![no_main]

use cowl_sandbox::dns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(q) = dns::parse(data) {
        let a = dns::answer(&q, dns::rcode::REFUSED);
        assert!(a.len() <= dns::HEADER_LEN + dns::MAX_NAME + 4);
        assert_eq!(a[..2], data[..2]);
        assert!(dns::parse(&a).is_none());
    }
});
