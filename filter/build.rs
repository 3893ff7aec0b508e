//! The module's stack. Rust's default for wasm32 is 1 MiB; parsing and walking SQL at
//! the decoder's limits (recursion limit, operator cap) needs up to about 1 MiB natively,
//! so the module gets 4 MiB of headroom. Measured with Envoy in tests/e2e/test_sql.py.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=4194304");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
