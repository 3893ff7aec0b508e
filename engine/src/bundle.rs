//! Policy bundle v1, as written by people (DESIGN.md). Parsing only: every field name
//! is the contract, unknown fields are errors, and `policy::compile` checks meaning.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// A scopegate policy bundle, version 1: the services the filter guards, the roles and keys
/// of the agents that call them, guards and public routes.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Editor hint (`scopegate schema`); ignored by the engine.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// The bundle's name ([A-Za-z0-9._:-], at most 128 characters), written into every
    /// audit record.
    pub bundle: String,
    /// Bundle format version: must be `1`.
    pub version: u32,
    /// The environment this bundle's filter instances are in, e.g. `production`
    /// ([A-Za-z0-9._:-]); `SCOPEGATE_ENVIRONMENT` in the Wasm VM's environment overrides it
    /// per instance.
    pub environment: String,
    /// Where agents present their scopegate key. `authorization` means `Authorization:
    /// Bearer <key>`; any other header carries the key as its whole value. Lower-case
    /// names, not `x-scopegate-*`, not empty; all are stripped before forwarding. Default:
    /// `["authorization", "x-api-key"]`.
    #[serde(default)]
    pub credential_headers: Option<Vec<String>>,
    /// The APIs the filter guards; a request goes to the first service whose `match` fits,
    /// and one that fits none is denied.
    pub services: Vec<Service>,
    /// What each role may do: its grants, each covering operations on one service (default:
    /// none).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The agents' keys, each stored as its SHA-256 and bound to one role (default: none).
    #[serde(default)]
    pub keys: Vec<Key>,
    /// Agents with OAuth 2.1 / OIDC bearer tokens, beside scoped keys: Envoy's `jwt_authn`
    /// verifies the token (signature, issuer, audience, expiry) and puts its payload in
    /// dynamic metadata; these entries map the verified claims to roles. scopegate never
    /// reads a payload from a header. Default: none (a JWT is then just an unknown key).
    #[serde(default)]
    pub identities: Option<Identities>,
    /// Rules for every role that only add friction (confirm, approval or deny) to
    /// operations they match; no grant lifts them (default: none).
    #[serde(default)]
    pub guards: Vec<Guard>,
    /// Routes that need no key: an exact method and path of a service, without query string
    /// or body (default: none).
    #[serde(default)]
    pub public: Vec<PublicRoute>,
    /// `enforce` (default) or `shadow`: evaluate and audit everything, forward always.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// The decision as filter state for Envoy's access log: `json` (default) sets one
    /// property, `scopegate`, the audit record line (`%FILTER_STATE(wasm.scopegate:PLAIN)%`);
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
    /// Which store: `local` (default when `state` is omitted) or `etcd`; `cluster`,
    /// `authority`, `prefix` and `timeout_ms` are for `etcd` only.
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

/// The kind of state store.
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
    /// One property, `scopegate`: the decision as a JSON object (the default).
    #[default]
    Json,
    /// Eight properties, `scopegate_decision`, `_reason`, `_key`, `_role`, `_service`,
    /// `_rule`, `_operations`, `_enforced`.
    Fields,
    /// No filter state.
    Off,
}

/// Whether refusals are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Decisions are enforced: refused requests are not forwarded.
    Enforce,
    /// Every request is evaluated and audited, refusals recorded with `enforced: false`,
    /// and forwarded.
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
    /// Values kept per record key of an operation (default 16, at most 256); the values
    /// left out are counted in the operation's `records_cut`. Each value is cut at 128
    /// bytes (`…`).
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
    /// Records held at most; beyond, new records are dropped and counted (default 10000,
    /// 1..=1000000).
    #[serde(default)]
    pub queue: Option<usize>,
    /// Per-POST timeout in milliseconds (default 2000, 10..=60000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The protocol a service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// REST over HTTP, decoded by `rest.style`.
    Rest,
    /// SQL carried in HTTP requests, decoded as `sql` says.
    Sql,
    /// GraphQL over HTTP (POST JSON or `application/graphql`, GET `query=`).
    Graphql,
    /// Model Context Protocol over Streamable HTTP (JSON-RPC 2.0).
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

/// One API the filter guards.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The service's name ([A-Za-z0-9._:-], unique in the bundle), which grants, guards and
    /// public routes name; sent upstream as `x-scopegate-service`.
    pub name: String,
    /// How the service's requests are decoded into operations; `rest` needs the `rest`
    /// section and `sql` the `sql` section, and each section is accepted only for its own
    /// protocol.
    pub protocol: Protocol,
    /// Which requests belong to the service (hosts, path prefix, methods); services are
    /// tried in bundle order.
    #[serde(rename = "match")]
    pub matcher: Match,
    /// A credential the filter adds to every request it forwards to the service, read from
    /// the Wasm VM's environment when the bundle is loaded (the agent's own key is
    /// stripped).
    #[serde(default)]
    pub upstream_auth: Option<UpstreamAuth>,
    /// Headers of the agent's request this upstream needs although scopegate strips them
    /// by default as credentials an upstream accepts (`cookie` for sticky sessions, say;
    /// the list is in docs/security.md). Never the bundle's `credential_headers`, never
    /// `x-scopegate-*`. Default: none kept.
    #[serde(default)]
    pub keep_headers: Option<Vec<String>>,
    /// REST decoding (required for `protocol: rest`).
    #[serde(default)]
    pub rest: Option<RestConfig>,
    /// SQL decoding (required for `protocol: sql`).
    #[serde(default)]
    pub sql: Option<SqlConfig>,
    /// GraphQL decoding (optional for `protocol: graphql`; defaults apply without it).
    #[serde(default)]
    pub graphql: Option<GraphqlConfig>,
    /// MCP decoding (optional for `protocol: mcp`; defaults apply without it).
    #[serde(default)]
    pub mcp: Option<McpConfig>,
    /// Which environment the records a request names belong to, so an opaque id
    /// (`vol-9f3`) resolves to `production` or `staging`. Without it, the service's
    /// operations are in the filter instance's environment.
    #[serde(default)]
    pub environments: Option<RecordEnvironments>,
    /// Body size and JSON nesting limits for requests whose body the filter reads.
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

/// Which requests belong to a service; every given condition must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Host patterns (`*` any run of characters, `?` one), lower-case and without port,
    /// matched against the request's `:authority` with its port dropped. Default: any host.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// Normalised path the request's path must start with, by whole segments (`/rest`
    /// matches `/rest/x`, not `/restx`); GraphQL, SQL and MCP services are served at
    /// exactly this path. Default: every path.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Upper-case HTTP methods the service matches (`GET`, `POST`, …). Default: every
    /// method.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

/// A header the filter sets on requests it forwards to a service.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuth {
    /// Lower-case name of the header to set (not `host` nor an `x-scopegate-` header), e.g.
    /// `authorization`; any value the agent sent in it is replaced.
    pub header: String,
    /// Text put before the secret in the header's value, e.g. `Bearer ` (default: none).
    #[serde(default)]
    pub prefix: Option<String>,
    /// The Wasm VM environment variable holding the secret (printable ASCII); the filter
    /// refuses the bundle when it is unset or empty.
    pub env: String,
}

/// Limits on the request bodies a service's filter reads.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes, the filter buffers and inspects (default 1 MiB,
    /// 1..=67108864); larger is refused 413.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Deepest nesting of arrays and objects in a JSON body the filter reads (default 64,
    /// ceiling 128); deeper is refused before it is parsed.
    #[serde(default)]
    pub max_json_depth: Option<usize>,
}

/// The REST grammar a service follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RestStyle {
    /// DreamFactory: `/_table/{t}`, `/_schema/{t}`, `/_proc/{p}`, `/_func/{f}`, with `ids=`
    /// and `filter=`.
    Dreamfactory,
    /// PostgREST: `/{table}` with `col=op.value` filters, `/rpc/{fn}`, schema profile
    /// headers.
    Postgrest,
    /// Route templates the bundle declares (`routes`).
    Routes,
}

/// REST decoding (service `rest`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// Which REST grammar the paths after `base_path` follow.
    pub style: RestStyle,
    /// Path the style's grammar starts after (default: `match.path_prefix`); a request
    /// outside it is refused.
    #[serde(default)]
    pub base_path: Option<String>,
    /// DreamFactory only: the record key `ids=` and `/_table/t/{id}` refer to, an
    /// identifier (default `id`).
    #[serde(default)]
    pub id_field: Option<String>,
    /// PostgREST only: the schema served without a profile header, an identifier (default
    /// `public`); tables of another schema are named `schema.table`.
    #[serde(default)]
    pub default_schema: Option<String>,
    /// `routes` style only (and required there, not empty): the API's route templates,
    /// first match of method and path wins; a request no route matches is refused.
    #[serde(default)]
    pub routes: Option<Vec<Route>>,
}

/// One route template of a `routes`-style REST service.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Methods the route matches, exactly: `GET`, `HEAD`, `OPTIONS`, `POST`, `PUT`, `PATCH`
    /// or `DELETE` (at least one).
    pub methods: Vec<String>,
    /// `/reservations/{id}`: literal segments and `{name}` parameters (one segment each).
    pub path: String,
    /// Resource name; may use parameters (`{table}`).
    pub resource: String,
    /// The action of the route's operation: `read`, `create`, `update`, `delete`, `drop`,
    /// `alter`, `admin` or `execute`. Default from the method: GET/HEAD/OPTIONS read, POST
    /// create, PUT/PATCH update, DELETE delete.
    #[serde(default)]
    pub action: Option<String>,
    /// `all` when the route touches every record of the resource (a destructive operation
    /// that needs an `unbounded` grant), `some` otherwise (default `some`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Query parameters the route accepts (identifiers, not also path parameters), each
    /// read as a record (name → value); a request with any other query parameter is refused
    /// (the upstream might read it). Default: none.
    #[serde(default)]
    pub query: Option<Vec<String>>,
}

/// The SQL dialect a service's statements are parsed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SqlDialectName {
    /// PostgreSQL (unqualified names in `public` by default).
    Postgres,
    /// MySQL (`default_schema`, the database, required).
    Mysql,
    /// SQLite (unqualified names in `main` by default).
    Sqlite,
    /// sqlparser's generic dialect (`default_schema` required).
    Generic,
}

/// SQL decoding (service `sql`): where the SQL is, its dialect and limits.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// The SQL dialect statements are parsed in.
    pub dialect: SqlDialectName,
    /// Schema (MySQL: database) unqualified names resolve to, a plain name. Default:
    /// `public` for postgres, `main` for sqlite; required for mysql and generic.
    #[serde(default)]
    pub default_schema: Option<String>,
    /// Where the SQL is: exactly one of `json_pointer`, `raw`, `query_param`.
    pub statement: SqlSource,
    /// Where positional parameters (`$1`…) are: only with `json_pointer`, a JSON array in
    /// the body (absent or `null`: none).
    #[serde(default)]
    pub params: Option<SqlParams>,
    /// Functions (besides the built-in pure list) that only compute, so a call is no
    /// operation: a plain name (`my_fn`) for calls without a schema or in `pg_catalog`, or
    /// a qualified one (`public.my_fn`), case-insensitive. Listing an `admin` function, or
    /// a catalog or settings read, changes nothing.
    #[serde(default)]
    pub safe_functions: Option<Vec<String>>,
    /// Longest SQL text of one request, in bytes (default 65536, 1..=1048576); longer is
    /// refused.
    #[serde(default)]
    pub max_statement_bytes: Option<usize>,
    /// Most statements in one request (default 50, 1..=1000); more are refused.
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
    /// Parser recursion limit, the nesting of expressions and queries (default and ceiling
    /// 50: the module's stack is sized for it); deeper SQL is refused.
    #[serde(default)]
    pub max_recursion: Option<usize>,
}

/// Where the SQL is in a request: exactly one of `json_pointer`, `raw`, `query_param`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SqlSource {
    /// The SQL is the string at this JSON pointer (starting with `/`) of a JSON body POSTed
    /// as `application/json`.
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// `true`: the SQL is the whole body, POSTed as `text/plain`, `application/sql` or
    /// without a content type.
    #[serde(default)]
    pub raw: Option<bool>,
    /// The SQL is this query parameter's value; the request may carry no body and no other
    /// query parameter.
    #[serde(default)]
    pub query_param: Option<String>,
}

/// Where the positional parameters are in a JSON body.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SqlParams {
    /// JSON pointer (starting with `/`) to the array of positional parameters in the body.
    pub json_pointer: String,
}

/// GraphQL decoding (service `graphql`): mutation actions, persisted queries, schema and
/// limits.
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
    /// The API's schema: root fields not in it are refused, and fields below the root are
    /// named `Type.field`.
    #[serde(default)]
    pub schema: Option<GraphqlSchema>,
    /// Longest GraphQL document, in bytes (default 65536, 1..=1048576); longer is refused.
    #[serde(default)]
    pub max_document_bytes: Option<usize>,
    /// Deepest selection-set nesting, fragments expanded (default 24, 1..=100); deeper is
    /// refused.
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// Most root fields in one document, over all its operations (default 64, 1..=1000).
    #[serde(default)]
    pub max_root_fields: Option<usize>,
    /// Most aliases in one document (default 64, 1..=1000).
    #[serde(default)]
    pub max_aliases: Option<usize>,
    /// Most fragment definitions in one document (default 128, 1..=1000).
    #[serde(default)]
    pub max_fragments: Option<usize>,
    /// Most operations in one batched (array) request (default 16, 1..=100).
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
    /// `server/discover`, the session stream and its `DELETE`) is read access granted to
    /// every role with a grant on the service unless this is `false` (default `true`).
    #[serde(default)]
    pub plumbing: Option<bool>,
    /// Most messages in one batched (array) request (default 16, 1..=100).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Largest `params` (tool arguments) of one message, in bytes, serialised (default
    /// 65536, 1..=1048576).
    #[serde(default)]
    pub max_params_bytes: Option<usize>,
}

/// A GraphQL schema, inline: SDL text or an introspection result (`{"data": {"__schema": …}}`
/// or `{"__schema": …}`). The CLI can attach one from a file (`--schema SERVICE=FILE`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GraphqlSchema {
    /// The schema as SDL text (exactly one of `sdl`, `introspection`).
    #[serde(default)]
    pub sdl: Option<String>,
    /// The schema as an introspection result, `{"data": {"__schema": …}}` or `{"__schema":
    /// …}` (exactly one of `sdl`, `introspection`).
    #[serde(default)]
    pub introspection: Option<Value>,
}

/// A named set of grants that keys act as.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The role's name ([A-Za-z0-9._:-], unique in the bundle), which keys name.
    pub name: String,
    /// Free text for people reading the bundle; no effect on decisions.
    #[serde(default)]
    pub description: Option<String>,
    /// The role's grants: an operation is allowed only when one of them covers it; when
    /// several do, the one with the least friction applies.
    pub allow: Vec<Grant>,
    /// A destructive budget for every key of the role, counted per key (a key's own
    /// `budget` replaces it).
    #[serde(default)]
    pub budget: Option<Budget>,
    /// `shadow`: this role's requests are evaluated and audited but always forwarded
    /// (default `enforce`; a bundle in shadow mode shadows every role).
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// What an operation owes before it is forwarded, least to most: `none`, `confirm`,
/// `approval`, `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Friction {
    /// Forwarded with nothing more asked (not a guard's effect).
    None,
    /// Answered 428 until the request is repeated with `x-scopegate-confirm` naming each
    /// such operation's `<action> <resource>`.
    Confirm,
    /// Answered 428 with a challenge until the request is repeated with approval tokens
    /// from human approvers (`x-scopegate-approval`).
    Approval,
    /// Refused 403.
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

/// One grant of a role: operations on one service it covers, and the friction they owe.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The name of the service the grant is on (exact, one of `services`).
    pub service: String,
    /// Resource patterns the grant covers (`*` any run of characters, `?` one), matched
    /// case-sensitively against the operation's resource, e.g. `public.reservations`,
    /// `customDomain*`. Not empty.
    pub resources: Vec<String>,
    /// Actions the grant covers: `read`, `create`, `update`, `delete`, `drop`, `alter`,
    /// `admin`, `execute`, `destructive` (delete, drop, alter, admin, execute and any
    /// `scope: all` operation) or `*` (all). Not empty.
    pub actions: Vec<String>,
    /// What an operation this grant covers owes: `none` (default), `confirm`, `approval` or
    /// `deny`.
    #[serde(default)]
    pub friction: Option<Friction>,
    /// `true`: the grant also covers operations that touch every record (`scope: all`);
    /// without it they are not covered (default `false`). Not with `records`.
    #[serde(default)]
    pub unbounded: Option<bool>,
    /// Record key -> allowed values (strings or numbers): the grant covers an operation
    /// only when it proves each key's values and all are listed, and every value a write
    /// assigns to such a key is listed too.
    #[serde(default)]
    pub records: Option<BTreeMap<String, Vec<Value>>>,
    /// Covers an operation only when every environment it touches is listed (names, not
    /// empty). Default: every environment.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// With `friction: approval`: how many approvers (1 or 2, from different people;
    /// default 1).
    #[serde(default)]
    pub approvals: Option<u8>,
}

/// Verified-token identities (bundle `identities`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Identities {
    /// Where `jwt_authn` puts the verified payload: its `payload_in_metadata` name, under
    /// the `envoy.filters.http.jwt_authn` metadata namespace (default `jwt_payload`).
    #[serde(default)]
    pub metadata_key: Option<String>,
    /// The URL of this gateway's OAuth protected-resource metadata (RFC 9728). When set, a
    /// 401 for an MCP service carries `WWW-Authenticate: Bearer resource_metadata="…"`,
    /// as the MCP authorization specification asks.
    #[serde(default)]
    pub resource_metadata: Option<String>,
    /// Entries, tried in order: the first whose issuer, audience and claim conditions the
    /// verified payload meets gives the role. A payload no entry matches is refused 401.
    pub entries: Vec<Identity>,
}

/// One kind of token holder and the role it gets.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The entry's name ([A-Za-z0-9._:-], unique): an identity's id is `<id>/<id claim>`,
    /// named in audit records and approvals and counted by budgets.
    pub id: String,
    /// The token's `iss`, exactly.
    pub issuer: String,
    /// Accepted audiences: the token's `aud` (a string or a list) must hold one.
    pub audiences: Vec<String>,
    /// Claim conditions, all required: claim name → patterns (`*` wildcards), any of which
    /// one of the claim's values must match. A claim's values: a string, a list of
    /// strings (`groups`), or space-separated for `scope` and `scp`. E.g.
    /// `{"client_id": ["agent-*"], "groups": ["data-agents"]}`. Default: none.
    #[serde(default)]
    pub claims: Option<BTreeMap<String, Vec<String>>>,
    /// OAuth scope values the token must all hold (`scope` or `scp`): entries listed
    /// most privileged first let scopes select roles. Default: none.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The role the identity acts as.
    pub role: String,
    /// The filter instances' environments the identity is valid in. Default: every one.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// The claim that names the holder (default `sub`; `client_id` or `azp` for
    /// machine clients): must be a non-empty string in the token.
    #[serde(default)]
    pub id_claim: Option<String>,
}

/// An agent's key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// The key's id ([A-Za-z0-9._:-], unique in the bundle), named in audit records,
    /// challenges and `scopegate explain`.
    pub id: String,
    /// SHA-256 of the key as the agent presents it: 64 hex digits, unique in the bundle
    /// (`scopegate key new` prints it).
    pub sha256: String,
    /// The name of the role the key acts as.
    pub role: String,
    /// Free text, shown by `scopegate explain`; no effect on decisions.
    #[serde(default)]
    pub description: Option<String>,
    /// The filter instances' environments the key is valid in (names, not empty); elsewhere
    /// it is refused 401. Default: every environment.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// RFC 3339 timestamp (e.g. `2027-06-30T00:00:00Z`) from which the key is refused 401.
    /// Default: never.
    #[serde(default)]
    pub expires: Option<String>,
    /// A destructive budget for this key, replacing its role's.
    #[serde(default)]
    pub budget: Option<Budget>,
}

/// At most `destructive` destructive operations per `per` window ("30m", "1h", "1d"),
/// counted per key across the gateway's workers.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// How many destructive operations (delete, drop, alter, admin, execute, or `scope:
    /// all`) the key may have forwarded per window; positive. Over it a request is refused
    /// 429 `over_budget`.
    pub destructive: u32,
    /// The window, `<n>s`, `<n>m`, `<n>h` or `<n>d` (e.g. `30m`, `1h`, `1d`), at most 31
    /// days; windows are fixed, counted from the Unix epoch.
    pub per: String,
}

/// A rule for every role that adds friction to the operations it matches; no grant lifts
/// it.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// Service names or patterns (`*`, `?`) the guard applies to; a name without wildcard
    /// must be a service of the bundle. Not empty.
    pub services: Vec<String>,
    /// Resource patterns (`*`, `?`) the guard matches, whatever the case (`*backup*`
    /// matches `volumeInstanceBackupDelete`). Default: every resource.
    #[serde(default)]
    pub resources: Option<Vec<String>>,
    /// Actions the guard matches, as for grants (`destructive` also matches `scope: all`).
    /// Default: every action.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// The friction a matching operation owes at least: `confirm`, `approval` or `deny`
    /// (not `none`).
    pub effect: Friction,
    /// Matches an operation only when it touches one of these environments (names, not
    /// empty). Default: every environment.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// With `effect: approval`: how many approvers (1 or 2, from different people; default
    /// 1).
    #[serde(default)]
    pub approvals: Option<u8>,
    /// Argument conditions, on the operation's records (GraphQL and MCP arguments,
    /// PostgREST function arguments): argument name (`input.field` for a field of an input
    /// object) -> the values that make the guard match, as JSON scalars, e.g.
    /// `{"decryptVariables": [true]}`. The guard matches an operation, or a field selected
    /// below it, only when each named argument has one of these values — or a value the
    /// decoder cannot know (a variable without value or default), fail closed. Without it,
    /// arguments do not matter.
    #[serde(default)]
    pub arguments: Option<BTreeMap<String, Vec<Value>>>,
    /// Free text for people reading the bundle; no effect on decisions.
    #[serde(default)]
    pub description: Option<String>,
}

/// A route that needs no key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PublicRoute {
    /// The name of the service the route belongs to; the request must also route to that
    /// service by its `match`.
    pub service: String,
    /// Upper-case HTTP methods the route allows without a key. Not empty.
    pub methods: Vec<String>,
    /// The exact normalised path (within the service's `path_prefix`), e.g. `/rest/health`;
    /// a request with a query string or a body is not public.
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
