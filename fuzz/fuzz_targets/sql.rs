//! SQL: any statement text, for each dialect and source (PostgreSQL in a JSON body with
//! parameters, MySQL and SQLite raw bodies, a generic query parameter), and the PostgreSQL
//! shortcuts (`decode::sql::fast`) against sqlparser on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_fuzz::{decide_checked, headers, with_engine};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sql = String::from_utf8_lossy(rest);
    // The PostgreSQL shortcuts must give sqlparser's tokens and statements, always.
    if let Some(d) = scopegate_engine::decode::sql::fast::disagreement(&sql) {
        panic!("sql::fast disagrees with sqlparser on {sql:?}: {d}");
    }
    with_engine(|e| match mode % 4 {
        0 => {
            let body = serde_json::json!({"sql": sql, "params": ["acme", 1, null]}).to_string();
            let h = headers("POST", "/sql", &[("content-type", "application/json")]);
            decide_checked(e, h, body.as_bytes());
        }
        1 => {
            decide_checked(
                e,
                headers("POST", "/my", &[("content-type", "text/plain")]),
                rest,
            );
        }
        2 => {
            decide_checked(e, headers("POST", "/lite", &[]), rest);
        }
        _ => {
            let mut q = String::from("/ch?query=");
            for b in sql.bytes() {
                if b.is_ascii_alphanumeric() {
                    q.push(char::from(b));
                } else {
                    q.push_str(&format!("%{b:02X}"));
                }
            }
            decide_checked(e, headers("GET", &q, &[]), b"");
        }
    });
});
