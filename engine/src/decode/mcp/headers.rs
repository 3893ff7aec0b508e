//! The MCP headers that must agree with the body (a server or a load balancer may route
//! on them): `mcp-method`, `mcp-name`, `mcp-protocol-version`, `mcp-param-*`.

use super::message::{records_of_map, Seen};
use super::*;
use crate::request::ambiguous;
use base64::Engine as _;

const PARAM_HEADER_PREFIX: &str = "mcp-param-";

/// Headers must agree with the body: `mcp-method` with the (single) message's method,
/// `mcp-name` with its tool/prompt name or resource URI, `mcp-protocol-version` with the
/// version in each message's `_meta`, every `mcp-param-*` with an argument's value.
pub(super) fn check_headers(head: &RequestHead, seen: &[Seen]) -> Result<(), DecodeError> {
    let single = match seen {
        [one] => Some(one),
        _ => None,
    };
    if let Some(h) = head.single_header("mcp-method")? {
        if single.and_then(|s| s.method) != Some(h.as_str()) {
            return ambiguous(format!(
                "mcp-method header `{h}` does not match the body's method"
            ));
        }
    }
    if let HeaderValue::One(raw) = head.header("mcp-name") {
        let name = decode_header_value(raw)
            .ok_or_else(|| DecodeError::malformed("mcp-name header is not a valid value"))?;
        if single.and_then(|s| s.name) != Some(name.as_str()) {
            return ambiguous(format!(
                "mcp-name header `{name}` does not match the body's name"
            ));
        }
    }
    if let Some(v) = head.single_header("mcp-protocol-version")? {
        if let Some(body) = seen.iter().find_map(|s| s.version.filter(|b| *b != v)) {
            return ambiguous(format!(
                "mcp-protocol-version header `{v}` does not match the body's `{body}`"
            ));
        }
    }
    let mut values: Option<Records> = None;
    for (name, raw) in &head.headers {
        if !name.starts_with(PARAM_HEADER_PREFIX) {
            continue;
        }
        if head.header(name) == HeaderValue::Repeated {
            return ambiguous(format!("repeated {name} header"));
        }
        let Some(args) = single.and_then(|s| s.arguments) else {
            return undecodable(format!("{name} header without a tools/call"));
        };
        let values = values.get_or_insert_with(|| args.map(records_of_map).unwrap_or_default());
        let decoded = decode_header_value(raw);
        if !decoded.is_some_and(|d| values.values().any(|vs| vs.contains(&d))) {
            return ambiguous(format!("{name} header matches no argument of the call"));
        }
    }
    Ok(())
}

/// An MCP header value: verbatim, or `=?base64?…?=` (canonical base64 of UTF-8).
pub(super) fn decode_header_value(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let Some(payload) = s
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Some(s.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    if base64::engine::general_purpose::STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}
