//! scopegate's engine: everything the filter decides, as plain Rust.
//!
//! No proxy-wasm here. The filter (`scopegate-filter`) and the CLI (`scopegate`) both
//! call [`Engine`], so what the CLI says a request does is what the filter enforces.

pub mod answer;
pub mod approval;
pub mod audit;
pub mod bundle;
pub mod canonical;
pub mod decode;
pub mod digest;
pub mod evaluate;
pub mod explain;
pub mod fleet;
pub mod glob;
pub mod json;
pub mod ledger;
pub mod lint;
pub mod operation;
pub mod pipeline;
pub mod policy;
pub mod request;
pub mod time;
pub mod verdict;

pub use pipeline::{Engine, Pending, Step, Verified};
pub use policy::Secrets;
pub use request::{HeaderList, RequestHead};
pub use verdict::{Decision, Verdict};
