//! What the README and policies/ show must be what the engine accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scopegate_engine::policy::compile_json;
use scopegate_engine::Secrets;

mod common;
use common::root;

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

/// Every relative link of the README and docs/ names a file that exists (the manual was
/// split out of the README: links must have followed their sections).
#[test]
fn relative_links_resolve() {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut checked = 0;
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap();
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") || file.contains(' ') {
                continue;
            }
            let at = page.parent().unwrap().join(file);
            assert!(
                at.exists(),
                "{}: link to {target} ({})",
                page.display(),
                at.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked} links");
}
