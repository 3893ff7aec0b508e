//! The SQL decoder left out: the engine built without its `sql` feature (`make wasm-lite`,
//! the module for gateways that front no SQL, without sqlparser's 2.6 MB). A bundle with a
//! SQL service — or MCP tools that carry SQL, which name one — is refused when it is
//! compiled, so this module is never asked to decide SQL it cannot read.

use crate::bundle::{Problems, SqlConfig};
use crate::decode::{Decode, Decoded, Input};
use crate::operation::Operation;
use crate::request::DecodeError;
use serde_json::Value as Json;

/// Never built: `compile` refuses every configuration, so no value of this type exists
/// and its methods cannot be reached.
#[derive(Debug, Clone)]
pub enum SqlDecoder {}

impl SqlDecoder {
    pub fn compile(_: &SqlConfig, at: &str, errs: &mut Problems) -> Option<SqlDecoder> {
        errs.push(
            at.to_string(),
            "this scopegate module was built without the SQL decoder (the `sql` \
                      feature): load the full scopegate.wasm to front SQL services",
        );
        None
    }

    pub fn classify(&self, _: &str, _: &str, _: &[Json]) -> Result<Vec<Operation>, DecodeError> {
        match *self {}
    }
}

impl Decode for SqlDecoder {
    fn decode(&self, _: &Input) -> Decoded {
        match *self {}
    }
}
