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

mod answers;
mod headers;
mod message;
#[cfg(test)]
mod tests;

use super::actions::{parse_rule, ActionRule};
use super::sql::SqlDecoder;
use super::{record_json, verb_action, Decode, Decoded, Input};
use crate::bundle::{McpConfig, Problems, Protocol, Service as ServiceConfig};
use crate::glob::Glob;
use crate::json::parse_strict;
use crate::operation::{Action, Operation, Records};
use crate::request::{
    ambiguous, content_type, over_limit, undecodable, unmodelled, DecodeError, HeaderValue,
    RequestHead, Target,
};
use crate::verdict::JsonRpc;
pub use answers::{answer_is_filtered, filter_lists, Listed};
use hashbrown::HashMap;
use headers::check_headers;
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

/// Revisions negotiated by `initialize`: the session wire.
const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Headers that carry meaning and must appear at most once.
const ROUTING_HEADERS: [&str; 4] = [
    "mcp-method",
    "mcp-name",
    "mcp-protocol-version",
    "mcp-session-id",
];

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

/// A request as it is read: its operations and the ids of its messages (for JSON-RPC
/// errors, also when a later message is refused).
#[derive(Debug, Default)]
pub(super) struct Reading {
    pub(super) ops: Vec<Operation>,
    pub(super) ids: Vec<Json>,
    /// Spoken on the session wire (see `verdict::JsonRpc`).
    pub(super) session_wire: bool,
    pub(super) measure_params: bool,
}

impl Decode for McpDecoder {
    /// The ids read before a refusal are kept (`Decoded::jsonrpc`), so the refusal can
    /// answer them.
    fn decode(&self, input: &Input) -> Decoded {
        let head = input.head;
        let mut out = Reading {
            session_wire: match head.header("mcp-protocol-version") {
                HeaderValue::Absent => true,
                HeaderValue::One(v) => HANDSHAKE_VERSIONS.iter().any(|h| h.as_bytes() == v),
                HeaderValue::Repeated => false,
            },
            ..Reading::default()
        };
        let result = self.decode_into(input.service, head, input.target, input.body(), &mut out);
        Decoded {
            jsonrpc: Some(JsonRpc {
                ids: out.ids,
                session_wire: out.session_wire,
            }),
            ops: result.map(|()| out.ops),
        }
    }

    /// Each message's method and params in canonical JSON — never its JSON-RPC `id` (a
    /// client retries with its next one), nor a progress token (named after the id).
    fn meaning(&self, input: &Input) -> Vec<String> {
        let Ok(doc) = parse_strict(input.body()) else {
            return super::raw_meaning(input);
        };
        let messages = match doc {
            Json::Array(batch) => batch,
            one => vec![one],
        };
        let mut out = Vec::new();
        for mut m in messages {
            if let Json::Object(o) = &mut m {
                o.remove("id");
                o.remove("jsonrpc");
                if let Some(Json::Object(params)) = o.get_mut("params") {
                    if let Some(Json::Object(meta)) = params.get_mut("_meta") {
                        meta.remove("progressToken");
                        if meta.is_empty() {
                            params.remove("_meta");
                        }
                    }
                }
            }
            out.extend(["message".to_string(), crate::canonical::json(&m)]);
        }
        out
    }
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

    fn decode_into(
        &self,
        service: &str,
        head: &RequestHead,
        target: &Target,
        body: &[u8],
        out: &mut Reading,
    ) -> Result<(), DecodeError> {
        target.only_at(&self.endpoint, "MCP")?;
        if let Some((n, _)) = target.query.first() {
            return unmodelled(format!(
                "query parameter `{n}` on the MCP endpoint (MCP carries everything in the body)"
            ));
        }
        for h in ROUTING_HEADERS {
            if head.header(h) == HeaderValue::Repeated {
                return ambiguous(format!("repeated {h} header"));
            }
        }
        match head.method.as_str() {
            "GET" | "DELETE" => {
                if !body.is_empty() {
                    return unmodelled(format!("{} with a body on the MCP endpoint", head.method));
                }
                if head.has_header("mcp-method") || head.has_header("mcp-name") {
                    return unmodelled(format!("mcp-method/mcp-name on a {}", head.method));
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
            m => return unmodelled(format!("{m}: MCP is spoken with POST, GET and DELETE")),
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
                    return over_limit(format!(
                        "batch of {} messages, over the service's max_batch of {}",
                        batch.len(),
                        self.max_batch
                    ));
                }
                for (i, m) in batch.iter().enumerate() {
                    seen.push(
                        self.message(service, m, out)
                            .map_err(|e| e.within(format!("message [{i}]")))?,
                    );
                }
            }
            m => seen.push(self.message(service, m, out)?),
        }
        check_headers(head, &seen)
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
