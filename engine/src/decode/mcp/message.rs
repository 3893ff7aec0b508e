//! Reading JSON-RPC messages: one message → operations (`tools/call`, `resources/*`,
//! `prompts/get`, plumbing), its id recorded, and what the headers are checked against.

use super::*;
use crate::request::{ambiguous, over_limit, unmodelled};

/// Methods a client sends that are plumbing (`read` on `mcp:<method>`).
const PLUMBING_METHODS: [&str; 8] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    "subscriptions/listen",
];

/// The 2026-07-28 per-request envelope's version key in `params._meta`.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const MESSAGE_KEYS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

/// One message, as far as the headers need it.
pub(super) struct Seen<'a> {
    pub(super) method: Option<&'a str>,
    pub(super) name: Option<&'a str>,
    pub(super) version: Option<&'a str>,
    /// `Some` for a `tools/call` (whose arguments may be absent).
    pub(super) arguments: Option<Option<&'a Map<String, Json>>>,
}

impl McpDecoder {
    /// One JSON-RPC message → operations; its request id is recorded.
    pub(super) fn message<'a>(
        &self,
        service: &str,
        m: &'a Json,
        out: &mut Reading,
    ) -> Result<Seen<'a>, DecodeError> {
        let Json::Object(m) = m else {
            return undecodable("a JSON-RPC message is an object");
        };
        if let Some(k) = m.keys().find(|k| !MESSAGE_KEYS.contains(&k.as_str())) {
            return unmodelled(format!("unexpected member `{k}` in a JSON-RPC message"));
        }
        if m.get("jsonrpc").and_then(Json::as_str) != Some("2.0") {
            return undecodable("`jsonrpc` must be \"2.0\"");
        }
        let id = match m.get("id") {
            None => None,
            Some(id @ Json::String(_)) => Some(id),
            Some(id @ Json::Number(n)) if n.is_i64() || n.is_u64() => Some(id),
            Some(_) => return undecodable("`id` must be a string or an integer"),
        };
        if let Some(id) = id {
            if out.ids.contains(id) {
                return ambiguous(format!("id {id} is used twice in the batch"));
            }
            out.ids.push(id.clone());
        }
        let mut seen = Seen {
            method: None,
            name: None,
            version: None,
            arguments: None,
        };
        let Some(method) = m.get("method") else {
            // A client's answer to a server request (sampling, roots, elicitation).
            let answer =
                usize::from(m.contains_key("result")) + usize::from(m.contains_key("error"));
            if id.is_none() || answer != 1 || m.contains_key("params") {
                return undecodable("a message without `method` must be a response: `id` and one of `result` or `error`");
            }
            out.ops
                .push(Operation::new(service, Action::Read, "mcp:response"));
            return Ok(seen);
        };
        let Json::String(method) = method else {
            return undecodable("`method` must be a string");
        };
        seen.method = Some(method);
        if m.contains_key("result") || m.contains_key("error") {
            return undecodable("a request carries no `result` or `error`");
        }
        let params = match m.get("params") {
            None => None,
            Some(Json::Object(p)) => Some(p),
            Some(_) => return undecodable(format!("`params` of `{method}` must be an object")),
        };
        if let Some(p) = params {
            let size = if out.measure_params { json_size(p) } else { 0 };
            if size > self.max_params_bytes {
                return over_limit(format!(
                    "`params` of `{method}` is {size} bytes, over the service's max_params_bytes of {}",
                    self.max_params_bytes
                ));
            }
            seen.version = p
                .get("_meta")
                .and_then(|meta| meta.get(META_VERSION))
                .and_then(Json::as_str);
        }
        if id.is_none() {
            // A notification is never answered, so a server that ran a `tools/call`
            // sent as one would do it silently: only `notifications/*` may be one.
            if !method.starts_with("notifications/") {
                return unmodelled(format!(
                    "`{method}` sent as a notification (no `id`): only notifications/* may be"
                ));
            }
            out.ops.push(Operation::new(
                service,
                Action::Read,
                format!("mcp:{method}"),
            ));
            return Ok(seen);
        }
        if method.starts_with("notifications/") {
            return undecodable(format!("`{method}` is a notification but carries an `id`"));
        }
        let get = |k: &str| params.and_then(|p| p.get(k));
        match method.as_str() {
            "tools/call" => {
                let name = string_param(params, "name", method)?;
                seen.name = Some(name);
                let arguments = match get("arguments") {
                    None | Some(Json::Null) => None,
                    Some(Json::Object(a)) => Some(a),
                    Some(_) => return undecodable("`arguments` of tools/call must be an object"),
                };
                seen.arguments = Some(arguments);
                self.tool_call(service, name, arguments, &mut out.ops)?;
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = string_param(params, "uri", method)?;
                check_uri(uri)?;
                seen.name = Some(uri);
                out.ops
                    .push(Operation::new(service, Action::Read, uri).with_detail(method.clone()));
            }
            "prompts/get" => {
                let name = string_param(params, "name", method)?;
                seen.name = Some(name);
                let records = match get("arguments") {
                    None | Some(Json::Null) => Records::new(),
                    Some(a @ Json::Object(_)) => records_of(a),
                    Some(_) => return undecodable("`arguments` of prompts/get must be an object"),
                };
                out.ops.push(
                    Operation::new(service, Action::Read, name)
                        .with_records(records)
                        .with_detail(method.clone()),
                );
            }
            "completion/complete" => out.ops.push(Operation::new(
                service,
                Action::Read,
                "mcp:completion/complete",
            )),
            "logging/setLevel" => out.ops.push(Operation::new(
                service,
                Action::Update,
                "mcp:logging/setLevel",
            )),
            m if PLUMBING_METHODS.contains(&m) => {
                out.ops
                    .push(Operation::new(service, Action::Read, format!("mcp:{m}")));
            }
            m => return unmodelled(format!("unknown MCP method `{m}`")),
        }
        Ok(seen)
    }

    fn tool_call(
        &self,
        service: &str,
        name: &str,
        arguments: Option<&Map<String, Json>>,
        ops: &mut Vec<Operation>,
    ) -> Result<(), DecodeError> {
        if name.is_empty() {
            return undecodable("empty tool name");
        }
        match self.tool_rule(name) {
            ToolRule::Action(rule) => {
                let records = arguments.map(records_of_map).unwrap_or_default();
                for action in rule.resolve(&records, &[]) {
                    ops.push(
                        Operation::new(service, action, name)
                            .with_records(records.clone())
                            .with_detail("tools/call"),
                    );
                }
            }
            ToolRule::Sql {
                argument,
                service: sql_service,
                decoder,
            } => {
                let Some(Json::String(sql)) = arguments.and_then(|a| a.get(&argument)) else {
                    return undecodable(format!(
                        "tool `{name}` takes its SQL in the string argument `{argument}`"
                    ));
                };
                for op in decoder.classify(&sql_service, sql, &[])? {
                    let detail = format!("tools/call {name}: {}", op.detail);
                    ops.push(op.with_detail(detail));
                }
            }
        }
        Ok(())
    }
}

fn string_param<'a>(
    params: Option<&'a Map<String, Json>>,
    key: &str,
    method: &str,
) -> Result<&'a str, DecodeError> {
    match params.and_then(|p| p.get(key)) {
        Some(Json::String(s)) => Ok(s),
        _ => undecodable(format!("{method} needs a string `{key}`")),
    }
}

/// Arguments → records: scalars by name, nested objects dotted (`filter.table`), lists
/// as several values, nulls dropped. Values are rendered as a header mirror renders
/// them (`true`, `42`, strings verbatim).
pub(super) fn records_of_map(m: &Map<String, Json>) -> Records {
    let mut out = Records::new();
    for (k, v) in m {
        record_json(k, v, &mut out);
    }
    for values in out.values_mut() {
        values.sort();
        values.dedup();
    }
    out
}

pub(super) fn records_of(v: &Json) -> Records {
    match v {
        Json::Object(m) => records_of_map(m),
        _ => Records::new(),
    }
}

/// Serialised size of a JSON value, without allocating it.
fn json_size(m: &Map<String, Json>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, m) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

/// A resource URI is matched against grants as written, and many servers treat its
/// path as a path (file-backed resources, servers that normalise before routing): refuse
/// what would resolve elsewhere — dot segments, encoded dots or slashes, backslashes and
/// control characters — as the REST path rules do.
pub(super) fn check_uri(uri: &str) -> Result<(), DecodeError> {
    if uri.chars().any(|c| c.is_control() || c == '\\') {
        return ambiguous("resource URI holds a backslash or a control character");
    }
    let lower = uri.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return ambiguous("resource URI holds an encoded dot, slash, backslash or NUL");
    }
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return ambiguous("resource URI holds a dot segment");
    }
    Ok(())
}
