//! What the README and policies/ show must be what the engine accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::policy::compile_json;
use scopegate_engine::Secrets;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn readme_sample_bundle_compiles() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## A sample bundle")
        .nth(1)
        .expect("README has a sample bundle");
    let block = section
        .split("```json\n")
        .nth(1)
        .unwrap()
        .split("\n```")
        .next()
        .unwrap();
    let policy =
        compile_json(block.as_bytes(), &Secrets::Unchecked).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.services.len(), 4);
    assert_eq!(policy.roles.len(), 4);
}

#[test]
fn shipped_policies_compile() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let json = std::fs::read(&path).unwrap();
            compile_json(&json, &Secrets::Unchecked)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n > 0);
}
