//! Policy bundle v1, as written by people (DESIGN.md). Parsing only: every field name
//! is the contract, unknown fields are errors, and `policy::compile` checks meaning.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Editor hint (`scopegate schema`); ignored by the engine.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    pub bundle: String,
    pub version: u32,
    pub environment: String,
    /// Where agents present their scopegate key. `authorization` means
    /// `Authorization: Bearer <key>`; any other header carries the key as its whole value.
    /// Default: `["authorization", "x-api-key"]`.
    #[serde(default)]
    pub credential_headers: Option<Vec<String>>,
    pub services: Vec<Service>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub keys: Vec<Key>,
    #[serde(default)]
    pub guards: Vec<Guard>,
    #[serde(default)]
    pub public: Vec<PublicRoute>,
    /// `enforce` (default) or `shadow`: evaluate and audit everything, forward always.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// The decision as filter state for Envoy's access log: `json` (default) sets one
    /// property, `scopegate`, the audit record as decided (`%FILTER_STATE(wasm.scopegate:PLAIN)%`);
    /// `fields` sets eight, `scopegate_decision`, `_reason`, `_key`, `_role`, `_service`,
    /// `_rule`, `_operations`, `_enforced`; `off` none. Each property is a host call
    /// (≈ 1.5 µs in Envoy 1.40): `fields` costs ≈ 10 µs more per request than `json`.
    #[serde(default)]
    pub filter_state: Option<FilterState>,
    /// Audit records: the log line's level, the values they show, tamper evidence, and
    /// the HTTP sink. Default: a line at `info` in Envoy's log, plain values, no chain.
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// Where single-use approval tokens and destructive budgets are recorded. Default
    /// `{"store": "local"}`: this Envoy's shared data, right for one Envoy only — each
    /// replica, and each restart, starts afresh. `{"store": "etcd", …}` for a fleet.
    #[serde(default)]
    pub state: Option<StateConfig>,
    /// Who may approve, and how challenges are signed. With it, an approval is an approver's
    /// own Ed25519 signature over a challenge the gateway signed (`scopegate approver new`,
    /// `scopegate approver gateway`); without it, approval tokens are HMACs with one key
    /// shared by every approver and every gateway (`SCOPEGATE_APPROVAL_KEY`; lint warns).
    #[serde(default)]
    pub approvals: Option<ApprovalsConfig>,
}

/// Signed approvals (bundle `approvals`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// The people who may approve, each with their Ed25519 public key.
    pub approvers: Vec<ApproverConfig>,
    /// The public half (base64) of the key the gateway signs challenges with; the seed
    /// is `SCOPEGATE_CHALLENGE_KEY` in the Wasm VM's environment.
    pub challenge_key: String,
    /// How long a challenge can be approved: `30s` to `24h` (default `5m`).
    #[serde(default)]
    pub challenge_ttl: Option<String>,
    /// The approval inbox (`scopegate-approver`), e.g. `https://approvals.example.com`:
    /// a challenge then carries `approval_url` (the page a human approves it on) and
    /// `inbox` (the API the agent posts it to and polls for the tokens).
    #[serde(default)]
    pub inbox_url: Option<String>,
}

/// One approver (bundle `approvals.approvers`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApproverConfig {
    /// The name audit records, challenges and two-person rules use.
    pub name: String,
    /// The approver's Ed25519 public key (base64 of 32 bytes).
    pub ed25519: String,
}

/// The state store (bundle `state`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub store: StateStoreName,
    /// `etcd`: the Envoy cluster of the etcd members' client port (HTTP/1.1: etcd's JSON
    /// gateway speaks nothing else).
    #[serde(default)]
    pub cluster: Option<String>,
    /// `etcd`: `:authority` of the calls (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    /// `etcd`: the key prefix (default `scopegate/`). Envoys that share approvals and
    /// budgets share a prefix; different bundles or fleets on one etcd use different ones.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `etcd`: per-call timeout in milliseconds (default 1000, 10..=10000). A request that
    /// needs state and gets no answer in time is refused `unavailable` (503).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum StateStoreName {
    /// This Envoy's proxy-wasm shared data (one Envoy).
    Local,
    /// An etcd cluster every Envoy of the fleet reaches (`dispatch_http_call`).
    Etcd,
}

/// How the decision reaches Envoy's access log (bundle `filter_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum FilterState {
    #[default]
    Json,
    Fields,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Shadow,
}

/// Audit records: their line in Envoy's log, their content, tamper evidence, and the
/// HTTP sink (records batched as JSON Lines and POSTed to an Envoy cluster).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `best_effort` (default): records are queued and sent on a tick; any dropped or
    /// failed record is counted. `required`: a request is forwarded only after its
    /// record was accepted by the sink (fail closed).
    #[serde(default)]
    pub mode: Option<AuditMode>,
    /// The HTTP collector (an Envoy cluster). Without it, records go to Envoy's log and,
    /// through filter state, its access log only; `mode: required` needs it.
    #[serde(default)]
    pub sink: Option<AuditSink>,
    /// Level of the record's line in Envoy's log: `info` (default), `warn` (survives
    /// `-l warning`), or `off` (access log and sink only). At start, and whenever Envoy's
    /// level changes so that it hides the line, the filter says so at a level that shows.
    #[serde(default)]
    pub log: Option<AuditLog>,
    /// How the values of an operation's records (ids it touches) and of the query appear:
    /// `plain` (default), `hashed` (HMAC-SHA256 with the key in `key_env`, first 16 hex
    /// digits, `hmac:` prefix — equal ids give equal hashes) or `omitted` (names only).
    #[serde(default)]
    pub values: Option<AuditValues>,
    /// Values kept per operation's record key (default 16, at most 256); more are cut
    /// and counted (`"+N more"`). Each value is cut at 128 bytes (`…`).
    #[serde(default)]
    pub max_values: Option<usize>,
    /// Tamper evidence: every record carries `chain: {stream, seq, prev}` — a random id
    /// per Wasm VM, a sequence from 1, and the hash of the stream's previous record
    /// (HMAC-SHA256 with `key_env` when set, else SHA-256), so a gap, an edit or a
    /// reordering shows at the sink (`scopegate audit verify`). Default false.
    #[serde(default)]
    pub chain: Option<bool>,
    /// VM environment variable holding the audit key (≥ 32 bytes) for `values: hashed`
    /// and a keyed `chain`.
    #[serde(default)]
    pub key_env: Option<String>,
}

/// Level of the audit record's line in Envoy's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AuditLog {
    Info,
    Warn,
    Off,
}

/// How record values appear in audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AuditValues {
    Plain,
    Hashed,
    Omitted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditMode {
    BestEffort,
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditSink {
    /// Envoy cluster of the collector.
    pub cluster: String,
    /// Request path on the collector (default `/audit`).
    #[serde(default)]
    pub path: Option<String>,
    /// `:authority` of the POST (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    /// Records per POST (default 100, at most 1000).
    #[serde(default)]
    pub batch: Option<usize>,
    /// Flush period in milliseconds (default 1000, 10..=60000).
    #[serde(default)]
    pub flush_ms: Option<u64>,
    /// Records held at most; beyond, new records are dropped and counted (default 10000).
    #[serde(default)]
    pub queue: Option<usize>,
    /// Per-POST timeout in milliseconds (default 2000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Rest,
    Sql,
    Graphql,
    Mcp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Sql => "sql",
            Protocol::Graphql => "graphql",
            Protocol::Mcp => "mcp",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub protocol: Protocol,
    #[serde(rename = "match")]
    pub matcher: Match,
    #[serde(default)]
    pub upstream_auth: Option<UpstreamAuth>,
    #[serde(default)]
    pub rest: Option<RestConfig>,
    #[serde(default)]
    pub sql: Option<SqlConfig>,
    #[serde(default)]
    pub graphql: Option<GraphqlConfig>,
    #[serde(default)]
    pub mcp: Option<McpConfig>,
    /// Which environment the records a request names belong to, so an opaque id
    /// (`vol-9f3`) resolves to `production` or `staging`. Without it, the service's
    /// operations are in the filter instance's environment.
    #[serde(default)]
    pub environments: Option<RecordEnvironments>,
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// Record ids → environments. An id the map does not know is in `production`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordEnvironments {
    /// Record keys that carry the ids (`volumeId`, `id`); default: every record key.
    #[serde(default)]
    pub records: Option<Vec<String>>,
    /// id -> environment.
    #[serde(default)]
    pub ids: Option<BTreeMap<String, String>>,
    /// environment -> ids (the same map, written per environment).
    #[serde(default)]
    pub by_environment: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuth {
    pub header: String,
    #[serde(default)]
    pub prefix: Option<String>,
    pub env: String,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body the filter buffers and inspects (default 1 MiB); larger is 413.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Deepest nesting of arrays and objects in a JSON body the filter reads (default 64,
    /// ceiling 128); deeper is refused before it is parsed.
    #[serde(default)]
    pub max_json_depth: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RestStyle {
    Dreamfactory,
    Postgrest,
    Routes,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    pub style: RestStyle,
    /// Path the style's grammar starts after (default: `match.path_prefix`).
    #[serde(default)]
    pub base_path: Option<String>,
    /// DreamFactory: the record key `ids=` and `/_table/t/{id}` refer to (default `id`).
    #[serde(default)]
    pub id_field: Option<String>,
    /// PostgREST: the schema served without a profile header (default `public`).
    #[serde(default)]
    pub default_schema: Option<String>,
    /// `routes` style: the API's route templates, first match wins.
    #[serde(default)]
    pub routes: Option<Vec<Route>>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub methods: Vec<String>,
    /// `/reservations/{id}`: literal segments and `{name}` parameters (one segment each).
    pub path: String,
    /// Resource name; may use parameters (`{table}`).
    pub resource: String,
    /// Default from the method: GET/HEAD read, POST create, PUT/PATCH update, DELETE delete.
    #[serde(default)]
    pub action: Option<String>,
    /// `all` when the route touches every record of the resource (default `some`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Query parameters the route accepts, each read as a record (name → value); a request
    /// with any other query parameter is refused (the upstream might read it).
    #[serde(default)]
    pub query: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SqlDialectName {
    Postgres,
    Mysql,
    Sqlite,
    Generic,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    pub dialect: SqlDialectName,
    /// Schema (MySQL: database) unqualified names resolve to. Default: `public` for
    /// postgres, `main` for sqlite; required for mysql and generic.
    #[serde(default)]
    pub default_schema: Option<String>,
    /// Where the SQL is: exactly one of `json_pointer`, `raw`, `query_param`.
    pub statement: SqlSource,
    /// Where positional parameters (`$1`…) are, in a JSON body.
    #[serde(default)]
    pub params: Option<SqlParams>,
    /// Functions (besides the built-in pure list) that only compute.
    #[serde(default)]
    pub safe_functions: Option<Vec<String>>,
    #[serde(default)]
    pub max_statement_bytes: Option<usize>,
    #[serde(default)]
    pub max_statements: Option<usize>,
    /// With `json_pointer`: body members allowed besides the statement's and the
    /// parameters', as top-level names (`"arrayMode"`) or JSON pointers to nested members
    /// (`"/args/read_only"`); any other member — at the top level or inside an object on the
    /// way to the statement — is refused, since an upstream might read SQL, a database or
    /// an option that changes what the SQL does from it.
    #[serde(default)]
    pub body_members: Option<Vec<String>>,
    /// With `json_pointer`: members the body must hold with exactly this value (JSON
    /// pointer → value), e.g. Hasura's `{"/type": "run_sql", "/args/source": "default"}`:
    /// the request type and the database the SQL runs on are decided, not read.
    #[serde(default)]
    pub body_values: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Parser recursion limit (default and ceiling 50: the module's stack is sized for it).
    #[serde(default)]
    pub max_recursion: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SqlSource {
    #[serde(default)]
    pub json_pointer: Option<String>,
    #[serde(default)]
    pub raw: Option<bool>,
    #[serde(default)]
    pub query_param: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SqlParams {
    pub json_pointer: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Mutation name (or `*` pattern) -> an action (`"delete"`), or an action that hinges
    /// on the arguments: `{"action": "update", "when": [{"arguments": {"input.replace":
    /// [true]}, "action": "delete"}]}` (a case holds when each argument in `arguments` has
    /// a listed value, each in `present` has any value, each in `unless` a value outside
    /// its list; an argument whose value cannot be known makes both actions apply). Exact
    /// names win over patterns; patterns are tried in the order written; then the
    /// built-in name rules.
    #[serde(default)]
    pub mutations: Option<serde_json::Map<String, Value>>,
    /// Persisted queries a hash-only request may name: lower-case SHA-256 hex of the
    /// document -> the document.
    #[serde(default)]
    pub persisted_queries: Option<BTreeMap<String, String>>,
    /// The API's schema: root fields not in it are refused.
    #[serde(default)]
    pub schema: Option<GraphqlSchema>,
    #[serde(default)]
    pub max_document_bytes: Option<usize>,
    /// Selection-set nesting, fragments expanded.
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// Root fields in one document.
    #[serde(default)]
    pub max_root_fields: Option<usize>,
    #[serde(default)]
    pub max_aliases: Option<usize>,
    #[serde(default)]
    pub max_fragments: Option<usize>,
    /// Operations in one batched (array) request.
    #[serde(default)]
    pub max_batch: Option<usize>,
}

/// An MCP service (Streamable HTTP, both wire generations).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Tool name (or `*` pattern) -> an action (`"delete"`); or an action that hinges on
    /// the arguments, as for GraphQL mutations (`{"action": "update", "when": [{"unless":
    /// {"remove": [false]}, "action": "delete"}]}` — servers coerce, so name the harmless
    /// values); or `{"sql_argument": "sql", "sql_service": "rentals-sql"}`: the tool runs
    /// the SQL in that argument, decoded and scoped as the named SQL service. Exact names
    /// win over patterns; patterns are tried in the order written; then the built-in name
    /// rules.
    #[serde(default)]
    pub tools: Option<serde_json::Map<String, Value>>,
    /// Protocol plumbing (`initialize`, `ping`, `notifications/*`, `*/list`,
    /// `server/discover`, the session stream and its `DELETE`) is granted to every role
    /// with a grant on the service unless this is `false`.
    #[serde(default)]
    pub plumbing: Option<bool>,
    /// Messages in one batched (array) request.
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Bytes of one message's `params` (tool arguments), serialised.
    #[serde(default)]
    pub max_params_bytes: Option<usize>,
}

/// A GraphQL schema, inline: SDL text or an introspection result (`{"data": {"__schema": …}}`
/// or `{"__schema": …}`). The CLI can attach one from a file (`--schema SERVICE=FILE`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GraphqlSchema {
    #[serde(default)]
    pub sdl: Option<String>,
    #[serde(default)]
    pub introspection: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub allow: Vec<Grant>,
    /// Every key of the role (unless the key sets its own).
    #[serde(default)]
    pub budget: Option<Budget>,
    /// `shadow`: this role's requests are evaluated and audited but always forwarded.
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Friction {
    None,
    Confirm,
    Approval,
    Deny,
}

impl Friction {
    pub fn as_str(self) -> &'static str {
        match self {
            Friction::None => "none",
            Friction::Confirm => "confirm",
            Friction::Approval => "approval",
            Friction::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub service: String,
    pub resources: Vec<String>,
    pub actions: Vec<String>,
    #[serde(default)]
    pub friction: Option<Friction>,
    #[serde(default)]
    pub unbounded: Option<bool>,
    #[serde(default)]
    pub records: Option<BTreeMap<String, Vec<Value>>>,
    /// Covers an operation only when every environment it touches is listed.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// With `friction: approval`: how many approvers (1 or 2, from different people).
    #[serde(default)]
    pub approvals: Option<u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub id: String,
    pub sha256: String,
    pub role: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    #[serde(default)]
    pub expires: Option<String>,
    /// Overrides the role's budget for this key.
    #[serde(default)]
    pub budget: Option<Budget>,
}

/// At most `destructive` destructive operations per `per` window ("30m", "1h", "1d"),
/// counted per key across the gateway's workers.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub destructive: u32,
    pub per: String,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Guard {
    pub services: Vec<String>,
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    pub effect: Friction,
    /// Matches an operation only when it touches one of these environments.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// With `effect: approval`: how many approvers (1 or 2, from different people).
    #[serde(default)]
    pub approvals: Option<u8>,
    /// Argument conditions (GraphQL): argument name (`input.field` for a field of an
    /// input object) -> the values that make the guard match, as JSON scalars, e.g.
    /// `{"decryptVariables": [true]}`. The guard matches an operation, or a field
    /// selected below it, only when each named argument has one of these values — or a
    /// value the decoder cannot know (a variable without value or default), fail closed.
    /// Without it, arguments do not matter.
    #[serde(default)]
    pub arguments: Option<BTreeMap<String, Vec<Value>>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PublicRoute {
    pub service: String,
    pub methods: Vec<String>,
    pub path: String,
}

/// One problem in a bundle, at a JSON path such as `roles[1].allow[0].service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Problems found while compiling a bundle, each with its JSON path: every section of
/// `policy::compile` and every decoder's `compile` adds to one list, so a bundle's problems
/// are all reported at once.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<BundleError>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(BundleError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every problem found; a bundle with any is rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BundleErrors(pub Vec<BundleError>);

impl fmt::Display for BundleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bundle rejected ({} problem", self.0.len())?;
        if self.0.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str(")")?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl BundleErrors {
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        BundleErrors(vec![BundleError {
            path: path.into(),
            message: message.into(),
        }])
    }
}

/// Parses bundle JSON; a syntax or shape error names the JSON path where it happened.
pub fn parse(json: &[u8]) -> Result<Bundle, BundleErrors> {
    if let Some(what) = not_json(json) {
        return Err(BundleErrors::one(String::new(), what));
    }
    let de = &mut serde_json::Deserializer::from_slice(json);
    let bundle: Bundle = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." || path == "?" {
            String::new()
        } else {
            path
        };
        BundleErrors::one(path, e.into_inner().to_string())
    })?;
    Ok(bundle)
}

/// What an input that is not a JSON object is, said plainly (instead of "expected value
/// at line 1 column 1").
fn not_json(input: &[u8]) -> Option<String> {
    if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Some(
            "the file starts with a byte-order mark (U+FEFF): save it as UTF-8 without one".into(),
        );
    }
    let text = input.trim_ascii_start();
    match text.first() {
        None => return Some("the bundle is empty".into()),
        Some(b'{') => return None,
        Some(_) => {}
    }
    let head = String::from_utf8_lossy(text.get(..text.len().min(200)).unwrap_or_default());
    let yamlish = head.starts_with("---")
        || head.starts_with('#')
        || head
            .lines()
            .next()
            .is_some_and(|l| l.contains(": ") || l.ends_with(':'));
    Some(if yamlish {
        "this looks like YAML: a bundle is JSON (convert it, e.g. `yq -o json bundle.yaml`)".into()
    } else {
        format!(
            "a bundle is a JSON object (it starts with `{{`); this starts with `{}`",
            head.chars()
                .next()
                .map(|c| c.escape_default().to_string())
                .unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_that_is_not_json_is_named() {
        let said = |b: &[u8]| parse(b).unwrap_err().to_string();
        assert!(said(b"").contains("empty"), "{}", said(b""));
        assert!(said(b"  \n").contains("empty"));
        assert!(said(b"\xEF\xBB\xBF{}").contains("byte-order mark"));
        assert!(said(b"bundle: demo\nversion: 1\n").contains("YAML"));
        assert!(said(b"---\nbundle: x").contains("YAML"));
        assert!(said(b"[1]").contains("starts with `[`"));
    }

    #[test]
    fn parse_errors_carry_paths() {
        let cases = [
            (
                r#"{"bundle":"b","version":1,"environment":"e","services":[{"name":"s","protocol":"rest","match":{},"rest":{"style":"postgrest"},"extra":1}]}"#,
                "services[0].extra",
                "unknown field `extra`",
            ),
            (
                r#"{"bundle":"b","version":1,"environment":"e","services":[],"roles":[{"name":"r","allow":[{"service":"s","resources":["t"],"actions":["read"],"friction":"maybe"}]}]}"#,
                "roles[0].allow[0].friction",
                "unknown variant `maybe`",
            ),
            (
                r#"{"bundle":"b","version":1,"environment":"e"}"#,
                "",
                "missing field `services`",
            ),
            (r#"{"bundle":"b","version":1,"#, "", "EOF while parsing"),
        ];
        for (json, path, message) in cases {
            let err = parse(json.as_bytes()).unwrap_err();
            let first = &err.0[0];
            assert_eq!(first.path, path, "{json}");
            assert!(first.message.contains(message), "{first}");
        }
    }
}
