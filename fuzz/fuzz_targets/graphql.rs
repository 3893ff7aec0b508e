//! GraphQL: any document, POSTed as `application/graphql`, inside a JSON request (with
//! variables), or as a GET query parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_fuzz::{decide_checked, headers, with_engine};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    with_engine(|e| match mode % 3 {
        0 => {
            let h = headers(
                "POST",
                "/graphql",
                &[("content-type", "application/graphql")],
            );
            decide_checked(e, h, rest);
        }
        1 => {
            let doc = String::from_utf8_lossy(rest);
            let body = serde_json::json!({"query": doc, "variables": {"id": "c-1", "input": {"id": "c-2"}}})
                .to_string();
            let h = headers("POST", "/graphql", &[("content-type", "application/json")]);
            decide_checked(e, h, body.as_bytes());
        }
        _ => {
            // Any bytes as the JSON request itself (batches, odd members, bad JSON).
            let h = headers("POST", "/graphql", &[("content-type", "application/json")]);
            decide_checked(e, h, rest);
        }
    });
});
