//! REST: any request target (path and query) with each method, PostgREST style.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_fuzz::{decide_checked, headers, with_engine};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let method = ["GET", "DELETE", "PATCH", "POST", "PUT", "HEAD"][usize::from(mode % 6)];
    let target = format!("/rest/{}", String::from_utf8_lossy(rest));
    let mut h = headers(method, &target, &[]);
    if mode & 0x80 != 0 {
        h.push(("prefer".into(), b"return=representation".to_vec()));
    }
    with_engine(|e| {
        let v = decide_checked(e, h, b"");
        // A REST decision is made on headers alone; it is never "too large".
        assert_ne!(v.decision(), scopegate_engine::Decision::TooLarge);
    });
});
