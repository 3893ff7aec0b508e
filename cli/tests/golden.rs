//! `scopegate explain` output for the shipped bundles, kept as golden files in
//! tests/golden/. `UPDATE_GOLDEN=1 cargo test -p scopegate-cli --test golden` rewrites them
//! after a deliberate change (review the diff).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn check(args: &[&str], golden: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .current_dir(root)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap();
    let path = root.join("tests/golden").join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "`scopegate {}` differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{got}",
        args.join(" "),
        path.display()
    );
}

#[test]
fn explain_railway() {
    check(&["explain", "policies/railway.json"], "explain-railway.txt");
}

#[test]
fn explain_demo() {
    check(&["explain", "policies/demo.json"], "explain-demo.txt");
}

#[test]
fn explain_mcp_markdown() {
    check(
        &["explain", "policies/mcp.json", "--format", "markdown"],
        "explain-mcp.md",
    );
}

#[test]
fn explain_railway_domains_with_railways_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let schema = root.join("../shared/fixtures/railway/schema.json");
    if !schema.is_file() {
        eprintln!("SKIPPED: {} is absent", schema.display());
        return;
    }
    let arg = format!("railway={}", schema.display());
    check(
        &[
            "explain",
            "policies/railway.json",
            "--key",
            "railway-domains",
            "--schema",
            &arg,
        ],
        "explain-railway-domains-schema.txt",
    );
}
