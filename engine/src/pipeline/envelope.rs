//! The envelope: what every request must be before any decoder reads it — no override
//! of method or path, no repeated header that matters, a target normalised strictly.

use super::*;
use crate::request::ambiguous;

/// Headers that ask a server to treat the request as another method. Never honoured:
/// the gateway and the upstream could disagree on what the request does.
/// Headers that make some upstreams act on another method or path than the one decided.
pub(super) const OVERRIDE_HEADERS: [(&str, &str); 5] = [
    ("x-http-method-override", "method"),
    ("x-http-method", "method"),
    ("x-method-override", "method"),
    ("x-original-url", "path"),
    ("x-rewrite-url", "path"),
];

/// Headers whose meaning depends on which of two copies a server reads (first-wins or
/// last-wins): sent twice, the request is refused whatever the protocol. (`authorization`
/// and `x-api-key` are checked by authentication, `mcp-*` by the MCP decoder too.)
pub(super) const SINGLE_HEADERS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "accept-profile",
    "content-profile",
];

pub(super) const SINGLE_HEADER_PREFIXES: [&str; 2] = ["x-scopegate-", "mcp-"];

/// Envelope checks every protocol shares: nothing may ask the upstream to treat the
/// request as another method or path than the one the filter judged, and no header
/// that matters may come twice.
pub(super) fn check_envelope(head: &RequestHead, target: &Target) -> Result<(), DecodeError> {
    for (h, what) in OVERRIDE_HEADERS {
        if head.has_header(h) {
            return ambiguous(format!("{what} override header `{h}`"));
        }
    }
    let single = |n: &str| {
        SINGLE_HEADERS.contains(&n) || SINGLE_HEADER_PREFIXES.iter().any(|p| n.starts_with(p))
    };
    for (i, (name, _)) in head.headers.iter().enumerate() {
        if single(name)
            && head
                .headers
                .iter()
                .skip(i + 1)
                .any(|(other, _)| other == name)
        {
            return ambiguous(format!("repeated {name} header"));
        }
    }
    if target.params("_method").next().is_some() {
        return ambiguous("method override parameter `_method`");
    }
    Ok(())
}
