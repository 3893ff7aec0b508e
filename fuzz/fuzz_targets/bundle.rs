//! Bundle loading: any bytes as a bundle compile or are refused with errors, never a
//! panic (an operator's typo must not take the VM down).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_engine::{Engine, Secrets};

fuzz_target!(|data: &[u8]| {
    if let Err(errors) = Engine::from_json(data, &Secrets::Unchecked) {
        assert!(!format!("{errors:?}").is_empty());
    }
});
