//! A bundle checked and compiled once (in `on_configure`, or by the CLI): names resolved
//! to indexes, globs compiled, keys in a hash map. A bundle with any problem is rejected
//! whole, every problem reported with its JSON path.

use crate::approval::{ApprovalKey, APPROVAL_KEY_ENV};
use crate::bundle::{self, Bundle, BundleError, BundleErrors, Friction, Protocol};
use crate::decode::actions::argument_values;
use crate::decode::graphql::GraphqlDecoder;
use crate::decode::mcp::{McpDecoder, PLUMBING};
use crate::decode::rest::RestDecoder;
use crate::decode::sql::SqlDecoder;
use crate::glob::Glob;
use crate::operation::{ActionSet, Records};
use crate::request::config_segments;
use crate::time::parse_rfc3339;
use hashbrown::{HashMap, HashSet};
use serde_json::Value;

/// Default body limit for services whose requests are buffered and inspected.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Hard ceiling: a bundle may not ask the filter to buffer more than this.
pub const MAX_BODY_BYTES_CEILING: usize = 64 * 1024 * 1024;
/// JSON nesting a body may have (arrays and objects), by default and at most.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;
pub const MAX_JSON_DEPTH_CEILING: usize = 128;

#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub environment: String,
    pub credential_headers: Vec<String>,
    pub services: Vec<Service>,
    pub roles: Vec<Role>,
    pub keys: Vec<Key>,
    /// SHA-256 of a key -> index in `keys`.
    key_index: HashMap<[u8; 32], usize>,
    /// Key id -> index in `keys`.
    key_ids: HashMap<String, usize>,
    pub guards: Vec<Guard>,
    pub public: Vec<Public>,
    /// Set when a rule uses approval and the VM environment holds the key.
    pub approval_key: Option<ApprovalKey>,
    /// The whole bundle is in shadow mode.
    pub shadow: bool,
    /// Some grant or guard is scoped by `environments` (operations' environments are
    /// resolved only then).
    pub uses_environments: bool,
    pub audit_sink: Option<AuditSink>,
    /// How the decision reaches Envoy's access log (bundle `filter_state`).
    pub filter_state: bundle::FilterState,
}

/// The compiled audit sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSink {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub batch: usize,
    pub flush_ms: u64,
    pub queue: usize,
    pub timeout_ms: u64,
    pub required: bool,
}

#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub protocol: Protocol,
    pub hosts: Vec<Glob>,
    pub prefix: Vec<String>,
    pub methods: Option<Vec<String>>,
    pub upstream_auth: Option<UpstreamAuth>,
    pub decoder: Decoder,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    /// Record ids → environments (`None`: the instance's environment).
    pub environments: Option<EnvMap>,
}

/// Record ids → environments; unknown ids are in `production`.
#[derive(Debug, Default)]
pub struct EnvMap {
    pub records: Option<Vec<String>>,
    pub ids: HashMap<String, String>,
}

/// Where an id the map does not know is assumed to live.
pub const UNKNOWN_ID_ENVIRONMENT: &str = "production";

impl Service {
    /// The environments an operation touches: its ids' (unknown → production; no id →
    /// production) for a mapped service, else the instance's.
    pub fn environments_of(&self, op: &crate::operation::Operation, instance: &str) -> Vec<String> {
        let Some(map) = &self.environments else {
            return vec![instance.to_string()];
        };
        let mut out: Vec<String> = op
            .records
            .iter()
            .filter(|(k, _)| map.records.as_ref().is_none_or(|r| r.contains(k)))
            .flat_map(|(_, values)| values)
            .map(|v| {
                map.ids
                    .get(v)
                    .cloned()
                    .unwrap_or_else(|| UNKNOWN_ID_ENVIRONMENT.to_string())
            })
            .collect();
        if out.is_empty() {
            out.push(UNKNOWN_ID_ENVIRONMENT.to_string());
        }
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Debug)]
pub struct UpstreamAuth {
    pub header: String,
    /// `prefix` + the secret, resolved from the VM environment at configure time.
    pub value: String,
}

// Without the `sql` feature the SQL variant is empty, so the sizes differ by design.
#[cfg_attr(not(feature = "sql"), allow(clippy::large_enum_variant))]
#[derive(Debug)]
pub enum Decoder {
    Rest(RestDecoder),
    Sql(SqlDecoder),
    Graphql(GraphqlDecoder),
    Mcp(McpDecoder),
}

impl Decoder {
    /// Whether deciding always needs the request body (the filter then holds the request).
    /// SQL and GraphQL always do, even with the statement or document in the query
    /// string: a body beside it must be seen (some servers append or prefer it) to be
    /// refused. REST reads the body of a write only when a grant of the caller's role
    /// checks record values (`Engine::begin`).
    pub fn needs_body(&self) -> bool {
        match self {
            Decoder::Rest(_) => false,
            Decoder::Sql(_) | Decoder::Graphql(_) | Decoder::Mcp(_) => true,
        }
    }
}

#[derive(Debug)]
pub struct Role {
    pub name: String,
    pub grants: Vec<Grant>,
    /// This role is in shadow mode.
    pub shadow: bool,
}

#[derive(Debug)]
pub struct Grant {
    pub service: usize,
    pub resources: Vec<Glob>,
    pub actions: ActionSet,
    pub friction: Friction,
    pub unbounded: bool,
    pub records: Option<Records>,
    /// Covers only operations all of whose environments are listed.
    pub environments: Option<Vec<String>>,
    /// Approvers needed when `friction` is approval (1 or 2).
    pub approvals: u8,
    /// Where the grant is in the bundle, e.g. `roles[2].allow[1]`.
    pub rule: String,
}

#[derive(Debug)]
pub struct Key {
    pub id: String,
    pub sha256: [u8; 32],
    pub role: usize,
    pub environments: Option<Vec<String>>,
    /// Unix milliseconds.
    pub expires: Option<i64>,
    /// The key's own budget, else its role's.
    pub budget: Option<Budget>,
}

/// A destructive-operation budget: `limit` per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub window_ms: i64,
}

#[derive(Debug)]
pub struct Guard {
    pub services: Vec<Glob>,
    pub resources: Option<Vec<Glob>>,
    pub actions: Option<ActionSet>,
    pub effect: Friction,
    /// Matches only operations touching one of these environments.
    pub environments: Option<Vec<String>>,
    /// Approvers needed when `effect` is approval (1 or 2).
    pub approvals: u8,
    /// Argument name -> values (as the decoder's records hold them) that make it match.
    pub arguments: Option<Records>,
    pub rule: String,
}

#[derive(Debug)]
pub struct Public {
    pub service: usize,
    pub methods: Vec<String>,
    pub path: Vec<String>,
}

/// The audit sink's settings, with their defaults and bounds.
fn audit_sink(a: &bundle::AuditConfig, errs: &mut Errs) -> Option<AuditSink> {
    let s = &a.sink;
    let mut bounded = |at: &str, v: Option<u64>, default: u64, lo: u64, hi: u64| match v {
        None => default,
        Some(v) if (lo..=hi).contains(&v) => v,
        Some(_) => {
            errs.push(
                format!("audit.sink.{at}"),
                format!("must be between {lo} and {hi}"),
            );
            default
        }
    };
    let batch = bounded("batch", s.batch.map(|v| v as u64), 100, 1, 1000);
    let flush_ms = bounded("flush_ms", s.flush_ms, 1000, 10, 60_000);
    let queue = bounded("queue", s.queue.map(|v| v as u64), 10_000, 1, 1_000_000);
    let timeout_ms = bounded("timeout_ms", s.timeout_ms, 2000, 10, 60_000);
    let path = s.path.clone().unwrap_or_else(|| "/audit".to_string());
    if !path.starts_with('/') || s.cluster.is_empty() {
        errs.push(
            "audit.sink",
            "`cluster` must be an Envoy cluster name and `path` start with `/`",
        );
        return None;
    }
    Some(AuditSink {
        cluster: s.cluster.clone(),
        authority: s.authority.clone().unwrap_or_else(|| s.cluster.clone()),
        path,
        batch: usize::try_from(batch).unwrap_or(100),
        flush_ms,
        queue: usize::try_from(queue).unwrap_or(10_000),
        timeout_ms,
        required: a.mode == Some(bundle::AuditMode::Required),
    })
}

/// A list of environment names (non-empty, each a name).
fn env_names(at: &str, names: &Option<Vec<String>>, errs: &mut Errs) -> Option<Vec<String>> {
    let names = names.as_ref()?;
    if names.is_empty() {
        errs.push(at, "must not be empty (omit it for every environment)");
    }
    for (i, n) in names.iter().enumerate() {
        if !is_name(n) {
            errs.push(format!("{at}[{i}]"), "must be a name ([A-Za-z0-9._:-])");
        }
    }
    Some(names.clone())
}

/// A service's record → environment map, from either shape.
fn env_map(at: &str, e: &bundle::RecordEnvironments, errs: &mut Errs) -> EnvMap {
    let mut ids = HashMap::new();
    let pairs = e
        .ids
        .iter()
        .flatten()
        .map(|(id, env)| (id.clone(), env.clone()))
        .chain(
            e.by_environment
                .iter()
                .flatten()
                .flat_map(|(env, list)| list.iter().map(move |id| (id.clone(), env.clone()))),
        );
    for (id, env) in pairs {
        if !is_name(&env) {
            errs.push(at, format!("environment `{env}` of `{id}` must be a name"));
        }
        if let Some(other) = ids.insert(id.clone(), env.clone()) {
            if other != env {
                errs.push(
                    at,
                    format!("`{id}` is mapped to both `{other}` and `{env}`"),
                );
            }
        }
    }
    if ids.is_empty() {
        errs.push(at, "maps no id (give `ids` or `by_environment`)");
    }
    EnvMap {
        records: e.records.clone(),
        ids,
    }
}

/// `approvals` of a grant or guard: 1 or 2, and only with approval friction.
fn approvals(at: &str, n: Option<u8>, friction: Friction, errs: &mut Errs) -> u8 {
    match (n, friction) {
        (None, _) => 1,
        (Some(n @ (1 | 2)), Friction::Approval) => n,
        (Some(_), Friction::Approval) => {
            errs.push(format!("{at}.approvals"), "must be 1 or 2");
            1
        }
        (Some(_), _) => {
            errs.push(format!("{at}.approvals"), "only with approval friction");
            1
        }
    }
}

/// A budget: `destructive` > 0 per a window of `<n>s|m|h|d` (at most 31 days).
fn budget(at: &str, b: &bundle::Budget, errs: &mut Errs) -> Option<Budget> {
    let per = b.per.trim();
    let (n, unit) = per.split_at(per.len().saturating_sub(1));
    let unit_ms: i64 = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    let window_ms = n.parse::<i64>().ok().map(|n| n.saturating_mul(unit_ms));
    match window_ms {
        Some(w) if w > 0 && w <= 31 * 86_400_000 && b.destructive > 0 => Some(Budget {
            limit: b.destructive,
            window_ms: w,
        }),
        _ => {
            errs.push(
                at.to_string(),
                "`destructive` must be positive and `per` a window such as \"30m\", \"1h\" or \"1d\" (at most 31d)",
            );
            None
        }
    }
}

/// MCP protocol plumbing (`initialize`, `ping`, `*/list`, …) is read on `mcp:<method>`;
/// every role with a grant on an MCP service gets it there, after its own grants, unless
/// the service sets `"plumbing": false`. Guards still apply.
fn plumbing_grants(services: &[Service], grants: &mut Vec<Grant>) {
    let mut read = ActionSet::default();
    read.add_word("read");
    let mut extra = Vec::new();
    for g in grants.iter() {
        let Some(s) = services.get(g.service) else {
            continue;
        };
        let Decoder::Mcp(d) = &s.decoder else {
            continue;
        };
        if d.plumbing && !extra.iter().any(|e: &Grant| e.service == g.service) {
            extra.push(Grant {
                service: g.service,
                resources: PLUMBING.iter().map(|p| Glob::new(p)).collect(),
                actions: read,
                friction: Friction::None,
                unbounded: false,
                records: None,
                environments: None,
                approvals: 1,
                rule: format!("mcp plumbing of service `{}`", s.name),
            });
        }
    }
    grants.extend(extra);
}

/// The VM environment variable that overrides the bundle's `environment` for one filter
/// instance (one bundle, a staging and a production gateway).
pub const ENVIRONMENT_ENV: &str = "SCOPEGATE_ENVIRONMENT";

/// Where upstream secrets come from when a bundle is compiled.
pub enum Secrets<'a> {
    /// The filter: the VM's environment; a missing variable rejects the bundle.
    Env(&'a dyn Fn(&str) -> Option<String>),
    /// Tools that never forward (lint, eval): a placeholder, nothing read.
    Unchecked,
}

const DEFAULT_CREDENTIAL_HEADERS: [&str; 2] = ["authorization", "x-api-key"];

/// Parses and compiles bundle JSON.
pub fn compile_json(json: &[u8], secrets: &Secrets) -> Result<Policy, BundleErrors> {
    compile(&bundle::parse(json)?, secrets)
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn is_method(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = s.get(i * 2..i * 2 + 2)?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

struct Errs(Vec<BundleError>);

impl Errs {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(BundleError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn globs(&mut self, at: &str, patterns: &[String]) -> Vec<Glob> {
        if patterns.is_empty() {
            self.push(at, "must not be empty");
        }
        for (i, p) in patterns.iter().enumerate() {
            if p.is_empty() {
                self.push(format!("{at}[{i}]"), "empty pattern");
            }
        }
        patterns.iter().map(|p| Glob::new(p)).collect()
    }

    fn actions(&mut self, at: &str, words: &[String]) -> ActionSet {
        let mut set = ActionSet::default();
        if words.is_empty() {
            self.push(at, "must not be empty");
        }
        for (i, w) in words.iter().enumerate() {
            if !set.add_word(w) {
                self.push(
                    format!("{at}[{i}]"),
                    format!("unknown action `{w}` (read create update delete drop alter admin execute destructive *)"),
                );
            }
        }
        set
    }

    fn methods(&mut self, at: &str, methods: &[String]) {
        if methods.is_empty() {
            self.push(at, "must not be empty");
        }
        for (i, m) in methods.iter().enumerate() {
            if !is_method(m) {
                self.push(
                    format!("{at}[{i}]"),
                    format!("`{m}` is not an upper-case HTTP method"),
                );
            }
        }
    }
}

fn record_values(
    at: &str,
    records: &std::collections::BTreeMap<String, Vec<Value>>,
    errs: &mut Errs,
) -> Records {
    let mut out = Records::new();
    for (col, values) in records {
        if col.is_empty() {
            errs.push(at, "empty record key name");
        }
        if values.is_empty() {
            errs.push(format!("{at}.{col}"), "must list at least one value");
        }
        let mut vs = Vec::new();
        for (i, v) in values.iter().enumerate() {
            match v {
                Value::String(s) => vs.push(s.clone()),
                Value::Number(n) => vs.push(n.to_string()),
                _ => errs.push(
                    format!("{at}.{col}[{i}]"),
                    "record values are strings or numbers",
                ),
            }
        }
        vs.sort();
        vs.dedup();
        out.insert(col.clone(), vs);
    }
    out
}

/// Checks meaning and compiles. Every problem is collected before rejecting.
pub fn compile(b: &Bundle, secrets: &Secrets) -> Result<Policy, BundleErrors> {
    let mut errs = Errs(Vec::new());
    if b.version != 1 {
        errs.push(
            "version",
            format!(
                "unsupported bundle version {} (this build reads 1)",
                b.version
            ),
        );
    }
    if !is_name(&b.bundle) {
        errs.push("bundle", "must be a non-empty name ([A-Za-z0-9._:-])");
    }
    if !is_name(&b.environment) {
        errs.push("environment", "must be a non-empty name ([A-Za-z0-9._:-])");
    }

    let credential_headers: Vec<String> = match &b.credential_headers {
        None => DEFAULT_CREDENTIAL_HEADERS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(list) => {
            if list.is_empty() {
                errs.push("credential_headers", "must not be empty");
            }
            for (i, h) in list.iter().enumerate() {
                if !is_header_name(h) || h.starts_with("x-scopegate-") {
                    errs.push(
                        format!("credential_headers[{i}]"),
                        format!("`{h}` is not a usable lower-case header name"),
                    );
                }
            }
            list.clone()
        }
    };

    // Services.
    let mut services = Vec::new();
    let mut service_names: HashMap<&str, usize> = HashMap::new();
    for (i, s) in b.services.iter().enumerate() {
        let at = format!("services[{i}]");
        if !is_name(&s.name) {
            errs.push(
                format!("{at}.name"),
                "must be a non-empty name ([A-Za-z0-9._:-])",
            );
        }
        if service_names.insert(&s.name, i).is_some() {
            errs.push(
                format!("{at}.name"),
                format!("duplicate service name `{}`", s.name),
            );
        }
        let m = &s.matcher;
        let prefix = match &m.path_prefix {
            None => Vec::new(),
            Some(p) => match config_segments(p) {
                Ok(segs) => segs,
                Err(e) => {
                    errs.push(
                        format!("{at}.match.path_prefix"),
                        format!("not a normalised path: {e}"),
                    );
                    Vec::new()
                }
            },
        };
        let hosts = match &m.hosts {
            None => Vec::new(),
            Some(h) => {
                for (j, host) in h.iter().enumerate() {
                    if host.is_empty()
                        || host
                            .bytes()
                            .any(|c| c.is_ascii_uppercase() || c == b':' || c == b'/')
                    {
                        errs.push(
                            format!("{at}.match.hosts[{j}]"),
                            "hosts are lower-case names without port",
                        );
                    }
                }
                errs.globs(&format!("{at}.match.hosts"), h)
            }
        };
        if let Some(methods) = &m.methods {
            errs.methods(&format!("{at}.match.methods"), methods);
        }
        let upstream_auth = match &s.upstream_auth {
            None => None,
            Some(ua) => {
                let here = format!("{at}.upstream_auth");
                if !is_header_name(&ua.header)
                    || ua.header.starts_with("x-scopegate-")
                    || ua.header == "host"
                {
                    errs.push(
                        format!("{here}.header"),
                        format!("`{}` is not a usable lower-case header name", ua.header),
                    );
                }
                if ua.env.is_empty() {
                    errs.push(format!("{here}.env"), "must name an environment variable");
                }
                let prefix = ua.prefix.clone().unwrap_or_default();
                let secret = match secrets {
                    Secrets::Unchecked => Some(format!("<{}>", ua.env)),
                    Secrets::Env(lookup) => lookup(&ua.env).filter(|v| !v.is_empty()),
                };
                match secret {
                    Some(v) if v.bytes().all(|c| (0x20..0x7f).contains(&c)) => Some(UpstreamAuth {
                        header: ua.header.clone(),
                        value: format!("{prefix}{v}"),
                    }),
                    Some(_) => {
                        errs.push(
                            format!("{here}.env"),
                            format!("`{}` holds characters not allowed in a header", ua.env),
                        );
                        None
                    }
                    None => {
                        errs.push(format!("{here}.env"), format!("environment variable `{}` is not set in the Wasm VM (vm_config.environment_variables)", ua.env));
                        None
                    }
                }
            }
        };
        let max_body_bytes = match s.limits.as_ref().and_then(|l| l.max_body_bytes) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(n) => match usize::try_from(n) {
                Ok(n) if n > 0 && n <= MAX_BODY_BYTES_CEILING => n,
                _ => {
                    errs.push(
                        format!("{at}.limits.max_body_bytes"),
                        format!("must be between 1 and {MAX_BODY_BYTES_CEILING}"),
                    );
                    DEFAULT_MAX_BODY_BYTES
                }
            },
        };
        let max_json_depth = match s.limits.as_ref().and_then(|l| l.max_json_depth) {
            None => DEFAULT_MAX_JSON_DEPTH,
            Some(n) if (1..=MAX_JSON_DEPTH_CEILING).contains(&n) => n,
            Some(_) => {
                errs.push(
                    format!("{at}.limits.max_json_depth"),
                    format!("must be between 1 and {MAX_JSON_DEPTH_CEILING}"),
                );
                DEFAULT_MAX_JSON_DEPTH
            }
        };
        let decoder = match s.protocol {
            Protocol::Rest => match &s.rest {
                None => {
                    errs.push(
                        format!("{at}.rest"),
                        "a REST service needs `rest` (style dreamfactory, postgrest or routes)",
                    );
                    None
                }
                Some(cfg) => RestDecoder::compile(cfg, &prefix, &format!("{at}.rest"), &mut errs.0)
                    .map(Decoder::Rest),
            },
            Protocol::Sql => match &s.sql {
                None => {
                    errs.push(
                        format!("{at}.sql"),
                        "a SQL service needs `sql` (dialect, statement)",
                    );
                    None
                }
                Some(cfg) => {
                    SqlDecoder::compile(cfg, &format!("{at}.sql"), &mut errs.0).map(Decoder::Sql)
                }
            },
            Protocol::Graphql => GraphqlDecoder::compile(
                s.graphql.as_ref(),
                &prefix,
                &format!("{at}.graphql"),
                &mut errs.0,
            )
            .map(Decoder::Graphql),
            Protocol::Mcp => McpDecoder::compile(
                s.mcp.as_ref(),
                &b.services,
                &prefix,
                &format!("{at}.mcp"),
                &mut errs.0,
            )
            .map(Decoder::Mcp),
        };
        if s.protocol != Protocol::Rest && s.rest.is_some() {
            errs.push(format!("{at}.rest"), "only REST services take `rest`");
        }
        if s.protocol != Protocol::Sql && s.sql.is_some() {
            errs.push(format!("{at}.sql"), "only SQL services take `sql`");
        }
        if s.protocol != Protocol::Graphql && s.graphql.is_some() {
            errs.push(
                format!("{at}.graphql"),
                "only GraphQL services take `graphql`",
            );
        }
        if s.protocol != Protocol::Mcp && s.mcp.is_some() {
            errs.push(format!("{at}.mcp"), "only MCP services take `mcp`");
        }
        if let Some(decoder) = decoder {
            services.push(Service {
                name: s.name.clone(),
                protocol: s.protocol,
                hosts,
                prefix,
                methods: m.methods.clone(),
                upstream_auth,
                decoder,
                max_body_bytes,
                max_json_depth,
                environments: s
                    .environments
                    .as_ref()
                    .map(|e| env_map(&format!("{at}.environments"), e, &mut errs)),
            });
        }
    }

    // Roles and grants.
    let mut roles = Vec::new();
    let mut role_names: HashMap<&str, usize> = HashMap::new();
    for (i, r) in b.roles.iter().enumerate() {
        let at = format!("roles[{i}]");
        if !is_name(&r.name) {
            errs.push(
                format!("{at}.name"),
                "must be a non-empty name ([A-Za-z0-9._:-])",
            );
        }
        if role_names.insert(&r.name, i).is_some() {
            errs.push(
                format!("{at}.name"),
                format!("duplicate role name `{}`", r.name),
            );
        }
        let mut grants = Vec::new();
        for (j, g) in r.allow.iter().enumerate() {
            let here = format!("{at}.allow[{j}]");
            let service = match service_names.get(g.service.as_str()) {
                Some(idx) => *idx,
                None => {
                    errs.push(
                        format!("{here}.service"),
                        format!("unknown service `{}`", g.service),
                    );
                    usize::MAX
                }
            };
            let resources = errs.globs(&format!("{here}.resources"), &g.resources);
            let actions = errs.actions(&format!("{here}.actions"), &g.actions);
            let records = g.records.as_ref().map(|rec| {
                if rec.is_empty() {
                    errs.push(
                        format!("{here}.records"),
                        "must constrain at least one key (omit it otherwise)",
                    );
                }
                record_values(&format!("{here}.records"), rec, &mut errs)
            });
            if g.unbounded == Some(true) && records.is_some() {
                errs.push(
                    format!("{here}.unbounded"),
                    "an unbounded grant cannot also constrain records",
                );
            }
            let friction = g.friction.unwrap_or(Friction::None);
            let approvals = approvals(&here, g.approvals, friction, &mut errs);
            grants.push(Grant {
                service,
                resources,
                actions,
                friction,
                unbounded: g.unbounded.unwrap_or(false),
                records,
                environments: env_names(
                    &format!("{here}.environments"),
                    &g.environments,
                    &mut errs,
                ),
                approvals,
                rule: here,
            });
        }
        plumbing_grants(&services, &mut grants);
        roles.push(Role {
            name: r.name.clone(),
            grants,
            shadow: r.mode == Some(bundle::Mode::Shadow),
        });
    }

    // Keys.
    let mut keys = Vec::new();
    let mut key_index = HashMap::new();
    let mut key_ids = HashSet::new();
    for (i, k) in b.keys.iter().enumerate() {
        let at = format!("keys[{i}]");
        if !is_name(&k.id) {
            errs.push(
                format!("{at}.id"),
                "must be a non-empty name ([A-Za-z0-9._:-])",
            );
        }
        if !key_ids.insert(k.id.as_str()) {
            errs.push(format!("{at}.id"), format!("duplicate key id `{}`", k.id));
        }
        let sha = hex32(&k.sha256.to_ascii_lowercase());
        if sha.is_none() {
            errs.push(
                format!("{at}.sha256"),
                "must be 64 hex digits (sha256 of the key)",
            );
        }
        let role = match role_names.get(k.role.as_str()) {
            Some(r) => *r,
            None => {
                errs.push(format!("{at}.role"), format!("unknown role `{}`", k.role));
                usize::MAX
            }
        };
        if let Some(envs) = &k.environments {
            if envs.is_empty() {
                errs.push(
                    format!("{at}.environments"),
                    "must not be empty (omit it for every environment)",
                );
            }
            for (j, e) in envs.iter().enumerate() {
                if !is_name(e) {
                    errs.push(
                        format!("{at}.environments[{j}]"),
                        "must be a non-empty name",
                    );
                }
            }
        }
        let expires = match &k.expires {
            None => None,
            Some(s) => match parse_rfc3339(s) {
                Some(ms) => Some(ms),
                None => {
                    errs.push(
                        format!("{at}.expires"),
                        format!("`{s}` is not an RFC 3339 timestamp"),
                    );
                    None
                }
            },
        };
        if let Some(sha) = sha {
            if key_index.insert(sha, keys.len()).is_some() {
                errs.push(format!("{at}.sha256"), "another key has the same sha256");
            }
            let budget = match (&k.budget, b.roles.get(role).and_then(|r| r.budget.as_ref())) {
                (Some(own), _) => budget(&format!("{at}.budget"), own, &mut errs),
                (None, Some(of_role)) => {
                    budget(&format!("roles[{role}].budget"), of_role, &mut errs)
                }
                (None, None) => None,
            };
            keys.push(Key {
                id: k.id.clone(),
                sha256: sha,
                role,
                environments: k.environments.clone(),
                expires,
                budget,
            });
        }
    }

    // Guards.
    let mut guards = Vec::new();
    for (i, g) in b.guards.iter().enumerate() {
        let at = format!("guards[{i}]");
        let services_globs = errs.globs(&format!("{at}.services"), &g.services);
        for (j, (name, glob)) in g.services.iter().zip(&services_globs).enumerate() {
            if !glob.is_wildcard() && !service_names.contains_key(name.as_str()) {
                errs.push(
                    format!("{at}.services[{j}]"),
                    format!("unknown service `{name}`"),
                );
            }
        }
        // Deny-side names match whatever the case: a guard on `*backup*` catches
        // `volumeInstanceBackupDelete` (grants stay exact).
        let resources = g.resources.as_ref().map(|r| {
            errs.globs(&format!("{at}.resources"), r);
            r.iter().map(|p| Glob::folded(p)).collect()
        });
        let actions = g
            .actions
            .as_ref()
            .map(|a| errs.actions(&format!("{at}.actions"), a));
        if g.effect == Friction::None {
            errs.push(
                format!("{at}.effect"),
                "a guard's effect is confirm, approval or deny",
            );
        }
        let approvals = approvals(&at, g.approvals, g.effect, &mut errs);
        let arguments = g
            .arguments
            .as_ref()
            .map(|args| argument_values(&format!("{at}.arguments"), args, &mut errs.0));
        guards.push(Guard {
            services: services_globs,
            resources,
            actions,
            effect: g.effect,
            environments: env_names(&format!("{at}.environments"), &g.environments, &mut errs),
            approvals,
            arguments,
            rule: at,
        });
    }

    // Public routes.
    let mut public = Vec::new();
    for (i, p) in b.public.iter().enumerate() {
        let at = format!("public[{i}]");
        let service = service_names.get(p.service.as_str()).copied();
        if service.is_none() {
            errs.push(
                format!("{at}.service"),
                format!("unknown service `{}`", p.service),
            );
        }
        errs.methods(&format!("{at}.methods"), &p.methods);
        let path = match config_segments(&p.path) {
            Ok(segs) => Some(segs),
            Err(e) => {
                errs.push(format!("{at}.path"), format!("not a normalised path: {e}"));
                None
            }
        };
        if let (Some(path), Some(svc)) = (&path, service.and_then(|s| b.services.get(s))) {
            let prefix = svc.matcher.path_prefix.as_deref().map(config_segments);
            if let Some(Ok(prefix)) = prefix {
                if !path.starts_with(prefix.as_slice()) {
                    errs.push(
                        format!("{at}.path"),
                        format!("outside service `{}`'s path_prefix", svc.name),
                    );
                }
            }
        }
        if let (Some(service), Some(path)) = (service, path) {
            public.push(Public {
                service,
                methods: p.methods.clone(),
                path,
            });
        }
    }

    // The approval key, when any rule asks for approval: the filter reads it from the VM
    // environment and refuses to start without a good one.
    let uses_approval = roles
        .iter()
        .flat_map(|r: &Role| &r.grants)
        .any(|g| g.friction == Friction::Approval)
        || guards.iter().any(|g| g.effect == Friction::Approval);
    let approval_key = match secrets {
        Secrets::Env(env) if uses_approval => match env(APPROVAL_KEY_ENV) {
            None => {
                errs.push("approval", format!("a rule requires approval but `{APPROVAL_KEY_ENV}` is not set in the Wasm VM (vm_config.environment_variables)"));
                None
            }
            Some(v) => match ApprovalKey::new(v.as_bytes()) {
                Ok(k) => Some(k),
                Err(e) => {
                    errs.push("approval", format!("`{APPROVAL_KEY_ENV}`: {e}"));
                    None
                }
            },
        },
        _ => None,
    };
    // The instance's environment: the bundle's, unless the VM says otherwise.
    let mut environment = b.environment.clone();
    if let Secrets::Env(env) = secrets {
        if let Some(e) = env(ENVIRONMENT_ENV) {
            if is_name(&e) {
                environment = e;
            } else {
                errs.push(
                    "environment",
                    format!("`{ENVIRONMENT_ENV}` must be a name ([A-Za-z0-9._:-])"),
                );
            }
        }
    }

    let audit_sink = b.audit.as_ref().and_then(|a| audit_sink(a, &mut errs));

    if !errs.0.is_empty() {
        return Err(BundleErrors(errs.0));
    }
    // GraphQL fields below the root matter only to guards that can match a read: the
    // decoder walks selection sets only for services such a guard names.
    for s in &mut services {
        if let Decoder::Graphql(d) = &mut s.decoder {
            d.set_nested(guards.iter().any(|g| {
                g.services.iter().any(|p| p.matches(&s.name))
                    && g.actions
                        .is_none_or(|a| a.contains(crate::operation::Action::Read))
            }));
        }
    }
    // Services whose decoder failed to compile were reported above; indexes are stable
    // only when none failed, which holds here.
    Ok(Policy {
        name: b.bundle.clone(),
        environment,
        approval_key,
        shadow: b.mode == Some(bundle::Mode::Shadow),
        uses_environments: roles
            .iter()
            .flat_map(|r| &r.grants)
            .any(|g| g.environments.is_some())
            || guards.iter().any(|g| g.environments.is_some()),
        audit_sink,
        filter_state: b.filter_state.unwrap_or_default(),
        credential_headers,
        services,
        roles,
        key_ids: keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.id.clone(), i))
            .collect(),
        keys,
        key_index,
        guards,
        public,
    })
}

impl Policy {
    /// Key index by SHA-256 of the presented key, with a constant-time confirmation.
    pub fn key_by_digest(&self, digest: &[u8; 32]) -> Option<&Key> {
        use subtle::ConstantTimeEq;
        let key = self.keys.get(*self.key_index.get(digest)?)?;
        bool::from(key.sha256.ct_eq(digest)).then_some(key)
    }

    pub fn key_by_id(&self, id: &str) -> Option<&Key> {
        self.keys.get(*self.key_ids.get(id)?)
    }

    pub fn role(&self, idx: usize) -> Option<&Role> {
        self.roles.get(idx)
    }

    pub fn service(&self, idx: usize) -> Option<&Service> {
        self.services.get(idx)
    }

    pub fn service_named(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// One line for logs and the CLI: what the bundle holds.
    pub fn summary(&self) -> String {
        format!(
            "bundle `{}` for environment `{}`: {} services, {} roles, {} keys, {} guards",
            self.name,
            self.environment,
            self.services.len(),
            self.roles.len(),
            self.keys.len(),
            self.guards.len()
        )
    }

    pub fn set_environment(&mut self, environment: String) {
        self.environment = environment;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_walks_nested_fields_only_for_read_guards() {
        let bundle = |guards: &str| {
            format!(
                r#"{{"bundle": "t", "version": 1, "environment": "production",
                "services": [{{"name": "gql", "protocol": "graphql", "match": {{"path_prefix": "/g"}}}},
                             {{"name": "other", "protocol": "graphql", "match": {{"path_prefix": "/o"}}}}],
                "roles": [], "keys": [], "guards": [{guards}]}}"#
            )
        };
        let walks = |guards: &str| -> Vec<bool> {
            let p = compile_json(bundle(guards).as_bytes(), &Secrets::Unchecked).unwrap();
            p.services
                .iter()
                .map(|s| match &s.decoder {
                    Decoder::Graphql(d) => d.walks_nested(),
                    _ => panic!("not graphql"),
                })
                .collect()
        };
        assert_eq!(walks(""), [false, false]);
        assert_eq!(
            walks(r#"{"services": ["*"], "actions": ["destructive"], "effect": "deny"}"#),
            [false, false]
        );
        assert_eq!(
            walks(
                r#"{"services": ["gql"], "resources": ["*.variables"], "actions": ["read"], "effect": "deny"}"#
            ),
            [true, false]
        );
        assert_eq!(
            walks(r#"{"services": ["*"], "resources": ["x"], "effect": "approval"}"#),
            [true, true]
        );
    }

    const GOOD: &str = r#"{
      "bundle": "t", "version": 1, "environment": "production",
      "services": [
        {"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"},
         "rest": {"style": "postgrest"},
         "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "RENTALS_TOKEN"}}
      ],
      "roles": [{"name": "reader", "allow": [
        {"service": "rentals", "resources": ["reservations"], "actions": ["read"]}]}],
      "keys": [{"id": "k1", "sha256": "A665A45920422F9D417E4867EFDC4FB8A04A1F3FFF1FA07E998E86F7F7A27AE3",
                "role": "reader", "environments": ["production"], "expires": "2027-06-30T00:00:00Z"}],
      "guards": [{"services": ["*"], "resources": ["*backup*"], "actions": ["destructive"], "effect": "deny"}],
      "public": [{"service": "rentals", "methods": ["GET"], "path": "/rest/health"}]
    }"#;

    #[test]
    fn compiles_and_resolves_secrets() {
        let env = |name: &str| (name == "RENTALS_TOKEN").then(|| "s3cret".to_string());
        let p = compile_json(GOOD.as_bytes(), &Secrets::Env(&env)).unwrap();
        let ua = p.services[0].upstream_auth.as_ref().unwrap();
        assert_eq!(
            (ua.header.as_str(), ua.value.as_str()),
            ("authorization", "Bearer s3cret")
        );
        assert_eq!(p.keys[0].expires, Some(1_814_313_600_000));
        let digest =
            hex32("a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3").unwrap();
        assert_eq!(p.key_by_digest(&digest).unwrap().id, "k1");
        assert!(p.key_by_digest(&[0u8; 32]).is_none());
        let missing = |_: &str| None;
        let err = compile_json(GOOD.as_bytes(), &Secrets::Env(&missing)).unwrap_err();
        assert_eq!(err.0[0].path, "services[0].upstream_auth.env");
        assert!(compile_json(GOOD.as_bytes(), &Secrets::Unchecked).is_ok());
    }

    #[test]
    fn semantic_errors_carry_paths() {
        let bad = GOOD
            .replace(r#""version": 1"#, r#""version": 2"#)
            .replace(
                r#""resources": ["reservations"], "actions": ["read"]"#,
                r#""resources": [], "actions": ["read", "nuke"]"#,
            )
            .replace(r#""role": "reader""#, r#""role": "writer""#)
            .replace(
                r#""expires": "2027-06-30T00:00:00Z""#,
                r#""expires": "next year""#,
            )
            .replace(r#""effect": "deny""#, r#""effect": "none""#)
            .replace(r#""path": "/rest/health""#, r#""path": "/other/../health""#)
            .replace(
                r#""style": "postgrest""#,
                r#""style": "postgrest", "id_field": "x""#,
            );
        let err = compile_json(bad.as_bytes(), &Secrets::Unchecked).unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "version",
                "services[0].rest.id_field",
                "roles[0].allow[0].resources",
                "roles[0].allow[0].actions[1]",
                "keys[0].role",
                "keys[0].expires",
                "guards[0].effect",
                "public[0].path",
            ],
            "{err}"
        );
        let dup = GOOD.replace(
            r#""roles": [{"name": "reader""#,
            r#""roles": [{"name": "reader", "allow": []}, {"name": "reader""#,
        );
        let err = compile_json(dup.as_bytes(), &Secrets::Unchecked).unwrap_err();
        assert!(
            err.to_string()
                .contains("roles[1].name: duplicate role name `reader`"),
            "{err}"
        );
        let mcp = GOOD.replace(r#""protocol": "rest""#, r#""protocol": "mcp""#);
        let err = compile_json(mcp.as_bytes(), &Secrets::Unchecked).unwrap_err();
        assert!(
            err.to_string()
                .contains("services[0].rest: only REST services take `rest`"),
            "{err}"
        );
        let grant_missing_service = GOOD.replace(
            r#"{"service": "rentals", "resources""#,
            r#"{"service": "billing", "resources""#,
        );
        let err = compile_json(grant_missing_service.as_bytes(), &Secrets::Unchecked).unwrap_err();
        assert!(
            err.to_string()
                .contains("roles[0].allow[0].service: unknown service `billing`"),
            "{err}"
        );
    }
}
