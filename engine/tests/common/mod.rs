//! What the engine's integration tests share: the repository root and the clock they
//! decide at. (Each test file is its own crate and uses part of this.)
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

/// The time every test decides at (2026-11-18), inside the shipped bundles' key validity.
pub const NOW: i64 = 1_795_000_000_000;

/// The repository's root (policies/, tests/, ../shared beside it).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}
