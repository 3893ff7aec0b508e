//! MCP answers from the upstream (untrusted too): a list answer as JSON, and as an
//! event stream cut into two chunks anywhere — the filtered stream must not depend on
//! where the chunks were cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_engine::answer::{Answer, EventStream, WITHHELD};
use scopegate_engine::verdict::ListFilter;
use scopegate_fuzz::with_engine;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    // The reader role (1) on the MCP service (6) of fuzz/bundle.json.
    let f = ListFilter {
        role: 1,
        service: 6,
    };
    with_engine(|e| {
        if let Answer::Replaced(out) = e.filter_answer(&f, body) {
            if out != WITHHELD.as_bytes() {
                assert!(
                    scopegate_engine::json::parse_strict(&out).is_ok(),
                    "rewritten answer is not JSON"
                );
            }
        }
        let whole = e.filter_events(&f, &mut EventStream::default(), body, true);
        let at = usize::from(cut) * body.len() / 256;
        let (a, b) = body.split_at(at);
        let mut st = EventStream::default();
        let mut split = e.filter_events(&f, &mut st, a, false);
        split.extend(e.filter_events(&f, &mut st, b, true));
        assert_eq!(
            whole, split,
            "event stream output depends on where it was cut (at {at})"
        );
    });
});
