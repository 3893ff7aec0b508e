//! MCP: any JSON-RPC body on the session wire, or on the stateless wire with headers
//! that must agree with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_fuzz::{decide_checked, headers, with_engine};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut extra = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    match mode % 3 {
        0 => extra.push(("mcp-session-id", "fuzz-session")),
        1 => {
            extra.push(("mcp-protocol-version", "2026-07-28"));
            extra.push(("mcp-method", "tools/call"));
            extra.push(("mcp-name", "run_query"));
        }
        _ => {}
    }
    with_engine(|e| {
        decide_checked(e, headers("POST", "/mcp", &extra), rest);
    });
});
