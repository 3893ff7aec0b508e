//! The module's stack. Rust's default for wasm32 is 1 MiB. Parsing and walking SQL at the
//! decoder's limits (recursion limit, operator cap) needs up to ~1 MiB natively; in V8 the
//! statements of tests/e2e/test_sql.py::test_deep_statements_never_crash_the_vm also pass
//! with 1 MiB. A stack overflow traps the VM (every request fails until it is reloaded),
//! so the module takes 4 MiB: four times the headroom, for 3 MiB of linear memory per VM.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=4194304");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
