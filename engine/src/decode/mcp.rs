//! MCP (Model Context Protocol) over Streamable HTTP: JSON-RPC 2.0 on one endpoint.
//!
//! Both wire generations clients speak: the session one (`initialize`, `Mcp-Session-Id`,
//! a GET stream, `DELETE` to close; arrays of messages in the 2025-03-26 revision) and
//! the stateless 2026-07-28 one (no `initialize`; `server/discover`; `Mcp-Method`,
//! `Mcp-Name` and `MCP-Protocol-Version` headers on every request, which must agree with
//! the body). The body decides; a header that says something else is refused, since a
//! server or a load balancer may route on it.
//!
//! Every message becomes operations: `tools/call` → the tool (action from the service's
//! rules, arguments as records, or the SQL of a declared argument decoded as a SQL
//! service); `resources/read` → `read` on the URI; `prompts/get` → `read` on the prompt;
//! plumbing → `read` on `mcp:<method>`.

use super::actions::{parse_rule, ActionRule};
use super::sql::SqlDecoder;
use super::{record_json, verb_action};
use crate::bundle::{McpConfig, Problems, Protocol, Service as ServiceConfig};
use crate::glob::Glob;
use crate::json::parse_strict;
use crate::operation::{Action, Operation, Records};
use crate::request::{content_type, undecodable, DecodeError, HeaderValue, RequestHead, Target};
use base64::Engine as _;
use hashbrown::HashMap;
use serde_json::{Map, Value as Json};

pub const DEFAULT_MAX_BATCH: usize = 16;
const MAX_BATCH_CEILING: usize = 100;
pub const DEFAULT_MAX_PARAMS_BYTES: usize = 64 * 1024;
const MAX_PARAMS_CEILING: usize = 1024 * 1024;

/// Protocol plumbing: `read` on these is granted to every role with a grant on an MCP
/// service (unless it sets `"plumbing": false`).
pub const PLUMBING: [&str; 12] = [
    "mcp:initialize",
    "mcp:ping",
    "mcp:server/discover",
    "mcp:notifications/*",
    "mcp:tools/list",
    "mcp:resources/list",
    "mcp:resources/templates/list",
    "mcp:prompts/list",
    "mcp:subscriptions/listen",
    "mcp:response",
    "mcp:stream",
    "mcp:session/delete",
];

/// Plumbing whose answers list what a role may reach; also the GET stream, on which a
/// server may replay earlier answers. Their responses are filtered (`filter_lists`).
const FILTERED: [&str; 5] = [
    "mcp:tools/list",
    "mcp:resources/list",
    "mcp:resources/templates/list",
    "mcp:prompts/list",
    "mcp:stream",
];

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
/// Revisions negotiated by `initialize`: the session wire.
const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Headers that carry meaning and must appear at most once.
const ROUTING_HEADERS: [&str; 4] = [
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
];
const PARAM_HEADER_PREFIX: &str = "mcp-param-";
const MESSAGE_KEYS: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

/// What a tool call does.
#[derive(Debug, Clone)]
pub enum ToolRule {
    /// An action, possibly hinging on the call's arguments (`actions.rs`).
    Action(ActionRule),
    /// The SQL in `argument`, decoded and scoped as SQL service `service`.
    Sql {
        argument: String,
        service: String,
        decoder: Box<SqlDecoder>,
    },
}

#[derive(Debug, Clone)]
pub struct McpDecoder {
    /// The endpoint: the service's path prefix, exactly.
    endpoint: Vec<String>,
    exact: HashMap<String, ToolRule>,
    patterns: Vec<(Glob, ToolRule)>,
    max_batch: usize,
    max_params_bytes: usize,
    pub plumbing: bool,
}

/// A decoded request: its operations and the ids of its requests (for JSON-RPC errors).
#[derive(Debug, Default)]
pub struct Decoded {
    pub ops: Vec<Operation>,
    pub ids: Vec<Json>,
    /// Spoken on the session wire (see `verdict::JsonRpc`).
    pub session_wire: bool,
    measure_params: bool,
}

/// One message, as far as the headers need it.
struct Seen<'a> {
    method: Option<&'a str>,
    name: Option<&'a str>,
    version: Option<&'a str>,
    /// `Some` for a `tools/call` (whose arguments may be absent).
    arguments: Option<Option<&'a Map<String, Json>>>,
}

impl McpDecoder {
    pub fn compile(
        cfg: Option<&McpConfig>,
        services: &[ServiceConfig],
        endpoint: &[String],
        at: &str,
        errs: &mut Problems,
    ) -> Option<McpDecoder> {
        let default = McpConfig::default();
        let cfg = cfg.unwrap_or(&default);
        let mut err = |path: String, message: String| errs.push(path, message);
        let max_batch = cfg.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
        if max_batch == 0 || max_batch > MAX_BATCH_CEILING {
            err(
                format!("{at}.max_batch"),
                format!("must be between 1 and {MAX_BATCH_CEILING}"),
            );
        }
        let max_params_bytes = cfg.max_params_bytes.unwrap_or(DEFAULT_MAX_PARAMS_BYTES);
        if max_params_bytes == 0 || max_params_bytes > MAX_PARAMS_CEILING {
            err(
                format!("{at}.max_params_bytes"),
                format!("must be between 1 and {MAX_PARAMS_CEILING}"),
            );
        }
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (name, value) in cfg.tools.iter().flatten() {
            let here = format!("{at}.tools.{name}");
            let rule = match value {
                Json::Object(o)
                    if o.contains_key("sql_argument") || o.contains_key("sql_service") =>
                {
                    match sql_rule(o, services) {
                        Ok(r) => r,
                        Err(message) => {
                            errs.push(here, message);
                            continue;
                        }
                    }
                }
                _ => match parse_rule(value, &here, errs) {
                    Some(r) => ToolRule::Action(r),
                    None => continue,
                },
            };
            let glob = Glob::new(name);
            if glob.is_wildcard() {
                patterns.push((glob, rule));
            } else {
                exact.insert(name.clone(), rule);
            }
        }
        Some(McpDecoder {
            endpoint: endpoint.to_vec(),
            exact,
            patterns,
            max_batch,
            max_params_bytes,
            plumbing: cfg.plumbing.unwrap_or(true),
        })
    }

    /// The rule for a tool: the bundle's exact name, then its patterns in order, then the
    /// built-in name rules.
    pub fn tool_rule(&self, name: &str) -> ToolRule {
        if let Some(r) = self.exact.get(name) {
            return r.clone();
        }
        if let Some((_, r)) = self.patterns.iter().find(|(g, _)| g.matches(name)) {
            return r.clone();
        }
        ToolRule::Action(ActionRule::plain(builtin_tool_action(name)))
    }

    /// Decodes a request. The ids read before a refusal are kept in `Decoded::ids`, so
    /// the refusal can answer them.
    pub fn decode(
        &self,
        service: &str,
        head: &RequestHead,
        target: &Target,
        body: &[u8],
    ) -> (Decoded, Result<(), DecodeError>) {
        let mut out = Decoded {
            session_wire: match head.header("mcp-protocol-version") {
                HeaderValue::Absent => true,
                HeaderValue::One(v) => HANDSHAKE_VERSIONS.iter().any(|h| h.as_bytes() == v),
                HeaderValue::Repeated => false,
            },
            ..Decoded::default()
        };
        let result = self.decode_into(service, head, target, body, &mut out);
        (out, result)
    }

    fn decode_into(
        &self,
        service: &str,
        head: &RequestHead,
        target: &Target,
        body: &[u8],
        out: &mut Decoded,
    ) -> Result<(), DecodeError> {
        target.only_at(&self.endpoint, "MCP")?;
        if let Some((n, _)) = target.query.first() {
            return undecodable(format!(
                "query parameter `{n}` on the MCP endpoint (MCP carries everything in the body)"
            ));
        }
        for h in ROUTING_HEADERS {
            if head.header(h) == HeaderValue::Repeated {
                return undecodable(format!("repeated {h} header"));
            }
        }
        match head.method.as_str() {
            "GET" | "DELETE" => {
                if !body.is_empty() {
                    return undecodable(format!("{} with a body on the MCP endpoint", head.method));
                }
                if head.has_header("mcp-method") || head.has_header("mcp-name") {
                    return undecodable(format!("mcp-method/mcp-name on a {}", head.method));
                }
                let what = if head.method == "GET" {
                    "mcp:stream"
                } else {
                    "mcp:session/delete"
                };
                out.ops.push(Operation::new(service, Action::Read, what));
                return Ok(());
            }
            "POST" => {}
            m => return undecodable(format!("{m}: MCP is spoken with POST, GET and DELETE")),
        }
        content_type(head, &["application/json"], "MCP")?;
        let doc = parse_strict(body)?;
        // `params` cannot be larger than the body: measure them only when it could be.
        out.measure_params = body.len() > self.max_params_bytes;
        let mut seen = Vec::new();
        match &doc {
            Json::Array(batch) => {
                if batch.is_empty() {
                    return undecodable("empty batch");
                }
                if batch.len() > self.max_batch {
                    return undecodable(format!(
                        "batch of {} messages, over the service's max_batch of {}",
                        batch.len(),
                        self.max_batch
                    ));
                }
                for (i, m) in batch.iter().enumerate() {
                    seen.push(
                        self.message(service, m, out)
                            .map_err(|e| DecodeError(format!("message [{i}]: {}", e.0)))?,
                    );
                }
            }
            m => seen.push(self.message(service, m, out)?),
        }
        check_headers(head, &seen)
    }

    /// One JSON-RPC message → operations; its request id is recorded.
    fn message<'a>(
        &self,
        service: &str,
        m: &'a Json,
        out: &mut Decoded,
    ) -> Result<Seen<'a>, DecodeError> {
        let Json::Object(m) = m else {
            return undecodable("a JSON-RPC message is an object");
        };
        if let Some(k) = m.keys().find(|k| !MESSAGE_KEYS.contains(&k.as_str())) {
            return undecodable(format!("unexpected member `{k}` in a JSON-RPC message"));
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
                return undecodable(format!("id {id} is used twice in the batch"));
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
                return undecodable(format!(
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
                return undecodable(format!(
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
            m => return undecodable(format!("unknown MCP method `{m}`")),
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

/// `{"sql_argument": "sql", "sql_service": "rentals-sql"}` → a SQL tool rule.
fn sql_rule(o: &Map<String, Json>, services: &[ServiceConfig]) -> Result<ToolRule, String> {
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "sql_argument" | "sql_service"))
    {
        return Err(format!("unknown member `{k}` (sql_argument, sql_service)"));
    }
    let (Some(Json::String(argument)), Some(Json::String(svc))) =
        (o.get("sql_argument"), o.get("sql_service"))
    else {
        return Err("needs `sql_argument` and `sql_service` strings".into());
    };
    let Some(cfg) = services
        .iter()
        .find(|s| &s.name == svc && s.protocol == Protocol::Sql)
        .and_then(|s| s.sql.as_ref())
    else {
        return Err(format!("`{svc}` is not a SQL service of this bundle"));
    };
    let mut scratch = Problems::default();
    match SqlDecoder::compile(cfg, "", &mut scratch) {
        Some(d) if scratch.is_empty() => Ok(ToolRule::Sql {
            argument: argument.clone(),
            service: svc.clone(),
            decoder: Box::new(d),
        }),
        _ => Err(format!("SQL service `{svc}` does not compile")),
    }
}

/// The built-in rule for a tool name: the shared vocabulary (`verb_action`), reads
/// included (`get_vehicle` is a read; `get_and_cancel_order` a delete).
pub fn builtin_tool_action(name: &str) -> Action {
    verb_action(name, true)
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

/// Headers must agree with the body: `mcp-method` with the (single) message's method,
/// `mcp-name` with its tool/prompt name or resource URI, `mcp-protocol-version` with the
/// version in each message's `_meta`, every `mcp-param-*` with an argument's value.
fn check_headers(head: &RequestHead, seen: &[Seen]) -> Result<(), DecodeError> {
    let single = match seen {
        [one] => Some(one),
        _ => None,
    };
    if let Some(h) = head.single_header("mcp-method")? {
        if single.and_then(|s| s.method) != Some(h.as_str()) {
            return undecodable(format!(
                "mcp-method header `{h}` does not match the body's method"
            ));
        }
    }
    if let HeaderValue::One(raw) = head.header("mcp-name") {
        let name = decode_header_value(raw)
            .ok_or_else(|| DecodeError("mcp-name header is not a valid value".into()))?;
        if single.and_then(|s| s.name) != Some(name.as_str()) {
            return undecodable(format!(
                "mcp-name header `{name}` does not match the body's name"
            ));
        }
    }
    if let Some(v) = head.single_header("mcp-protocol-version")? {
        if let Some(body) = seen.iter().find_map(|s| s.version.filter(|b| *b != v)) {
            return undecodable(format!(
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
            return undecodable(format!("repeated {name} header"));
        }
        let Some(args) = single.and_then(|s| s.arguments) else {
            return undecodable(format!("{name} header without a tools/call"));
        };
        let values = values.get_or_insert_with(|| args.map(records_of_map).unwrap_or_default());
        let decoded = decode_header_value(raw);
        if !decoded.is_some_and(|d| values.values().any(|vs| vs.contains(&d))) {
            return undecodable(format!("{name} header matches no argument of the call"));
        }
    }
    Ok(())
}

/// An MCP header value: verbatim, or `=?base64?…?=` (canonical base64 of UTF-8).
fn decode_header_value(raw: &[u8]) -> Option<String> {
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

/// Arguments → records: scalars by name, nested objects dotted (`filter.table`), lists
/// as several values, nulls dropped. Values are rendered as a header mirror renders
/// them (`true`, `42`, strings verbatim).
fn records_of_map(m: &Map<String, Json>) -> Records {
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

fn records_of(v: &Json) -> Records {
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

/// Whether a request's answer must be filtered (it lists tools, resources or prompts,
/// or is the GET stream on which a server may replay such answers).
pub fn answer_is_filtered(ops: &[Operation]) -> bool {
    ops.iter().any(|o| FILTERED.contains(&o.resource.as_str()))
}

/// What an entry of a list answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Tool,
    Resource,
    ResourceTemplate,
    Prompt,
}

/// Filters the list results in one server message (or batch of messages): entries of
/// `result.tools`, `result.resources`, `result.resourceTemplates` and `result.prompts`
/// are kept only where `keep` says so (an entry without a string name is dropped).
/// Returns how many entries were removed.
pub fn filter_lists(msg: &mut Json, keep: &mut dyn FnMut(Listed, &str) -> bool) -> usize {
    if let Json::Array(batch) = msg {
        return batch.iter_mut().map(|m| filter_lists(m, keep)).sum();
    }
    let Some(result) = msg.get_mut("result").and_then(Json::as_object_mut) else {
        return 0;
    };
    let mut removed = 0;
    for (key, kind, name_key) in [
        ("tools", Listed::Tool, "name"),
        ("resources", Listed::Resource, "uri"),
        ("resourceTemplates", Listed::ResourceTemplate, "uriTemplate"),
        ("prompts", Listed::Prompt, "name"),
    ] {
        if let Some(list) = result.get_mut(key) {
            let Json::Array(entries) = list else {
                // Not a list: nothing a client could use; replace it by an empty one.
                *list = Json::Array(Vec::new());
                removed += 1;
                continue;
            };
            let before = entries.len();
            entries.retain(|e| {
                e.get(name_key)
                    .and_then(Json::as_str)
                    .is_some_and(|n| keep(kind, n))
            });
            removed += before - entries.len();
        }
    }
    removed
}

/// A resource URI is matched against grants as written, and many servers treat its
/// path as a path (file-backed resources, servers that normalise before routing): refuse
/// what would resolve elsewhere — dot segments, encoded dots or slashes, backslashes and
/// control characters — as the REST path rules do.
fn check_uri(uri: &str) -> Result<(), DecodeError> {
    if uri.chars().any(|c| c.is_control() || c == '\\') {
        return undecodable("resource URI holds a backslash or a control character");
    }
    let lower = uri.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return undecodable("resource URI holds an encoded dot, slash, backslash or NUL");
    }
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return undecodable("resource URI holds a dot segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_uris_that_resolve_elsewhere_are_refused() {
        for ok in [
            "shop://catalog/p-1",
            "file:///srv/docs/readme.md",
            "postgres://db/reservations?limit=5",
            "shop://catalog/v1.2/notes..txt",
        ] {
            assert!(check_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "shop://catalog/../admin/secrets",
            "shop://catalog/./p-1",
            "file:///srv/docs/..",
            "shop://catalog/%2e%2e/admin",
            "shop://catalog/%2E%2e/admin",
            "shop://catalog%2fadmin",
            "shop://catalog\\admin",
            "shop://catalog/p-1\n",
            "shop://catalog/%00",
        ] {
            assert!(check_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_tool_rules() {
        let cases = [
            ("list_reservations", Action::Read),
            ("get_vehicle", Action::Read),
            ("searchDocs", Action::Read),
            ("query_db", Action::Read),
            ("create_reservation", Action::Create),
            ("add_note", Action::Create),
            ("update_reservation", Action::Update),
            // `set` and `patch` are as often nouns: no verb (the bundle names them).
            ("set_status", Action::Execute),
            ("patch_record", Action::Execute),
            ("edit_user", Action::Update),
            ("delete_reservation", Action::Delete),
            ("drop_table", Action::Delete),
            ("remove_user", Action::Delete),
            ("purge_cache", Action::Delete),
            ("get_and_delete_rows", Action::Delete),
            ("list_then_update", Action::Update),
            ("get_or_create_user", Action::Create),
            ("execute_sql", Action::Execute),
            ("run_query", Action::Execute),
            ("send_email", Action::Execute),
            ("get_settings", Action::Read),
            ("reset_password", Action::Execute),
            // Issue 18, class 2: several verbs take the most destructive one.
            ("get_and_cancel_order", Action::Delete),
            ("list_and_revoke_tokens", Action::Delete),
            ("getAndTerminateSession", Action::Delete),
            ("get_and_frobnicate_order", Action::Execute),
            ("list_then_get_rows", Action::Read),
            ("find_and_read_docs", Action::Read),
            ("create_or_replace_order", Action::Delete),
            ("create_and_frobnicate_order", Action::Execute),
            ("update_then_frobnicate", Action::Execute),
            ("get_or_create_user", Action::Create),
        ];
        for (name, action) in cases {
            assert_eq!(builtin_tool_action(name), action, "{name}");
        }
    }

    #[test]
    fn header_values() {
        assert_eq!(
            decode_header_value(b"get_vehicle").as_deref(),
            Some("get_vehicle")
        );
        assert_eq!(
            decode_header_value(b"=?base64?Z2V0X3ZlaGljbGU=?=").as_deref(),
            Some("get_vehicle")
        );
        // Non-canonical base64 and bad UTF-8 match nothing.
        assert_eq!(decode_header_value(b"=?base64?Z2V0X3ZlaGljbGV=?="), None);
        assert_eq!(decode_header_value(b"=?base64?/w==?="), None);
    }

    #[test]
    fn records_flatten() {
        let v: Json = serde_json::from_str(
            r#"{"table": "reservations", "ids": [1, 2, 2], "filter": {"status": "open", "x": null}, "dry": true}"#,
        )
        .unwrap();
        let r = records_of(&v);
        assert_eq!(r["table"], ["reservations"]);
        assert_eq!(r["ids"], ["1", "2"]);
        assert_eq!(r["filter.status"], ["open"]);
        assert_eq!(r["dry"], ["true"]);
        assert!(!r.contains_key("filter.x"));
    }

    #[test]
    fn lists_are_filtered_by_shape() {
        let mut msg: Json = serde_json::from_str(
            r#"[{"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, {"name": "b"}, {"title": "no name"}], "nextCursor": "c"}},
                {"jsonrpc": "2.0", "id": 2, "result": {"resources": [{"uri": "x://1"}], "resourceTemplates": "oops"}}]"#,
        )
        .unwrap();
        let removed = filter_lists(&mut msg, &mut |kind, n| kind == Listed::Tool && n == "a");
        assert_eq!(removed, 4);
        assert_eq!(
            msg[0]["result"]["tools"],
            serde_json::json!([{"name": "a"}])
        );
        assert_eq!(msg[0]["result"]["nextCursor"], "c");
        assert_eq!(msg[1]["result"]["resources"], serde_json::json!([]));
        assert_eq!(msg[1]["result"]["resourceTemplates"], serde_json::json!([]));
    }
}
