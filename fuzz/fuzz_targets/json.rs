//! The strict JSON reader every body decoder uses, against serde_json as an oracle:
//! whatever it accepts, serde_json accepts as the same value (it may refuse more:
//! duplicate keys, lone surrogates, depth).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = scopegate_engine::json::parse_strict(data) {
        let oracle: serde_json::Value =
            serde_json::from_slice(data).expect("strict JSON that serde_json refuses");
        assert_eq!(v, oracle, "strict JSON read differently");
    }
});
