//! Decoders: protocol-specific, pure functions from a request to operations.

pub mod expr;
pub mod graphql;
pub mod rest;
pub mod sql;
