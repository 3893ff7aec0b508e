//! A bundle checked and compiled once (in `on_configure`, or by the CLI): names resolved
//! to indexes, globs compiled, keys in a hash map. A bundle with any problem is rejected
//! whole, every problem reported with its JSON path.

use crate::approval::{ApprovalKey, APPROVAL_KEY_ENV};
use crate::bundle::{self, Bundle, BundleErrors, Friction, Protocol};
use crate::decode::actions::argument_values;
use crate::decode::graphql::GraphqlDecoder;
use crate::decode::mcp::{McpDecoder, PLUMBING};
use crate::decode::rest::RestDecoder;
use crate::decode::sql::SqlDecoder;
use crate::decode::{Decode, Decoded, Input};
use crate::glob::Glob;
use crate::operation::{ActionSet, Records};
use crate::request::config_segments;
use crate::time::parse_rfc3339;
use hashbrown::{HashMap, HashSet};
use serde_json::Value;

mod audit;
mod diagnostics;
mod guards;
mod identities;
mod keys;
mod public;
mod roles;
mod secrets;
mod services;
mod signed;
mod state;

pub use audit::{AuditKey, AuditOptions, RecordValues};
use diagnostics::Errs;
pub use identities::{verified_payload, Holder, Identities, IdentityEntry, JWT_AUTHN_NAMESPACE};

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
    /// The audit record's log level, values, bounds and chain (bundle `audit`).
    pub audit: AuditOptions,
    /// Verified-token identities (bundle `identities`).
    pub identities: Option<Identities>,
    /// Signed approvals (bundle `approvals`): the approvers' public keys, the gateway's
    /// challenge key. `None`: shared-key tokens (`approval_key`).
    pub signed: Option<signed::SignedApprovals>,
    /// Where approvals and budgets are settled: `None` for this Envoy's shared data.
    pub etcd: Option<crate::fleet::EtcdStore>,
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
    /// Headers upstreams read credentials from, removed from what the agent sent
    /// ([`UPSTREAM_CREDENTIAL_HEADERS`] minus the service's `keep_headers`).
    pub strip_headers: Vec<&'static str>,
    /// Whether headers under [`UPSTREAM_CREDENTIAL_PREFIXES`] are removed too.
    pub strip_prefixed: bool,
}

/// Headers a known upstream style accepts credentials (or an identity asserted by an
/// auth proxy) in — stripped from every forwarded request (besides the bundle's
/// `credential_headers`), unless a service keeps one: `authorization` (PostgREST and
/// Supabase JWTs, Hasura, GraphQL and MCP servers' bearer tokens), `proxy-authorization`,
/// `cookie` (session cookies), `apikey` (Supabase's gateway), `x-api-key`, `api-key`,
/// `x-dreamfactory-api-key` and `x-dreamfactory-session-token` (DreamFactory),
/// `x-hasura-admin-secret` and `x-hasura-access-key` (Hasura), `project-access-token` and
/// `team-access-token` (Railway), `private-token` (GitLab), `xc-token` and `xc-auth`
/// (NocoDB), `x-appwrite-key` (Appwrite), `ocp-apim-subscription-key` (Azure API
/// Management), `x-auth-token`, `x-access-token`; and the identity headers upstreams
/// behind an auth proxy trust: `x-forwarded-user`, `-email`, `-groups`,
/// `-preferred-username`, `-access-token` (oauth2-proxy), `x-auth-request-user`,
/// `-email`, `-groups`, `-access-token`, `x-remote-user`, `remote-user`,
/// `x-webauth-user`, `x-user`.
pub const UPSTREAM_CREDENTIAL_HEADERS: [&str; 32] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "apikey",
    "x-api-key",
    "api-key",
    "x-dreamfactory-api-key",
    "x-dreamfactory-session-token",
    "x-hasura-admin-secret",
    "x-hasura-access-key",
    "project-access-token",
    "team-access-token",
    "private-token",
    "xc-token",
    "xc-auth",
    "x-appwrite-key",
    "ocp-apim-subscription-key",
    "x-auth-token",
    "x-access-token",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-access-token",
    "x-remote-user",
    "remote-user",
    "x-webauth-user",
    "x-user",
];

/// Header name prefixes stripped as a family: Hasura takes its role and every session
/// variable (`x-hasura-role`, `x-hasura-user-id`, …) from headers when the request
/// carries its admin secret — which an `upstream_auth` may inject.
pub const UPSTREAM_CREDENTIAL_PREFIXES: [&str; 1] = ["x-hasura-"];

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

impl Decode for Decoder {
    fn decode(&self, input: &Input) -> Decoded {
        match self {
            Decoder::Rest(d) => d.decode(input),
            Decoder::Sql(d) => d.decode(input),
            Decoder::Graphql(d) => d.decode(input),
            Decoder::Mcp(d) => d.decode(input),
        }
    }

    fn meaning(&self, input: &Input) -> Vec<String> {
        match self {
            Decoder::Rest(d) => d.meaning(input),
            Decoder::Sql(d) => d.meaning(input),
            Decoder::Graphql(d) => d.meaning(input),
            Decoder::Mcp(d) => d.meaning(input),
        }
    }
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

/// Checks meaning and compiles. Every problem is collected before rejecting.
/// The Wasm VM environment variables a bundle reads (upstream credentials, the challenge
/// or approval key), in the order it reads them: what a gateway's `vm_config` must pass
/// (`host_env_keys`) and an operator must provide. `SCOPEGATE_ENVIRONMENT`, optional, is
/// not listed.
pub fn required_env(b: &Bundle) -> Vec<String> {
    let asked = std::cell::RefCell::new(Vec::<String>::new());
    let lookup = |name: &str| {
        let mut a = asked.borrow_mut();
        if name != ENVIRONMENT_ENV && !a.iter().any(|n| n == name) {
            a.push(name.to_string());
        }
        None
    };
    // Compiled only to see what it asks for: the errors (nothing is set) do not matter.
    let _ = compile(b, &Secrets::Env(&lookup));
    asked.into_inner()
}

pub fn compile(b: &Bundle, secrets: &Secrets) -> Result<Policy, BundleErrors> {
    let mut errs = Errs::default();
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

    let (mut services, service_names) = services::compile(b, secrets, &mut errs);
    let (roles, role_names) = roles::compile(b, &services, &service_names, &mut errs);
    let (keys, key_index) = keys::compile(b, &role_names, &mut errs);
    let identities = identities::compile(b, &role_names, &mut errs);
    let guards = guards::compile(b, &service_names, &mut errs);
    let public = public::compile(b, &service_names, &mut errs);
    let (approval_key, environment) = secrets::compile(b, &roles, &guards, secrets, &mut errs);

    let (audit_sink, mut audit) = audit::compile(b.audit.as_ref(), secrets, &mut errs);
    let etcd = b.state.as_ref().and_then(|s| state::compile(s, &mut errs));
    let signed = b
        .approvals
        .as_ref()
        .and_then(|a| signed::compile(a, secrets, &mut errs));

    if !errs.0.is_empty() {
        return Err(BundleErrors(errs.0));
    }
    let mut record_keys: Vec<String> = roles
        .iter()
        .flat_map(|r| &r.grants)
        .filter_map(|g| g.records.as_ref())
        .flat_map(|r| r.keys().cloned())
        .collect();
    record_keys.sort();
    record_keys.dedup();
    audit.record_keys = record_keys;
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
        audit,
        identities,
        etcd,
        signed,
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

    /// The key a presented secret is, unless unknown or expired at `now_ms` (for tools
    /// that authenticate agents as the filter does: the approval inbox).
    pub fn key_by_secret(&self, secret: &[u8], now_ms: i64) -> Result<&Key, &'static str> {
        let key = self
            .key_by_digest(&crate::digest::sha256(secret))
            .ok_or("unknown key")?;
        if key.expires.is_some_and(|e| now_ms >= e) {
            return Err("expired key");
        }
        Ok(key)
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
    use super::keys::hex32;
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

    pub(super) const GOOD: &str = r#"{
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

#[cfg(test)]
mod state_tests {
    use super::tests::GOOD;
    use super::*;

    fn with_state(state: &str) -> Result<Policy, BundleErrors> {
        let json = GOOD.replacen(
            r#""environment": "production","#,
            &format!(r#""environment": "production", "state": {state},"#),
            1,
        );
        compile_json(json.as_bytes(), &Secrets::Unchecked)
    }

    #[test]
    fn the_state_store_is_checked_and_compiled() {
        assert!(with_state(r#"{"store": "local"}"#).unwrap().etcd.is_none());
        let p = with_state(r#"{"store": "etcd", "cluster": "etcd", "timeout_ms": 250}"#).unwrap();
        let etcd = p.etcd.unwrap();
        assert_eq!(
            (
                etcd.cluster.as_str(),
                etcd.authority.as_str(),
                etcd.prefix.as_str(),
                etcd.timeout_ms
            ),
            ("etcd", "etcd", "scopegate/", 250)
        );
        for (state, path) in [
            (r#"{"store": "etcd"}"#, "state.cluster"),
            (
                r#"{"store": "etcd", "cluster": "etcd", "timeout_ms": 0}"#,
                "state.timeout_ms",
            ),
            (
                r#"{"store": "etcd", "cluster": "etcd", "prefix": "a b"}"#,
                "state.prefix",
            ),
            (r#"{"store": "local", "cluster": "etcd"}"#, "state.cluster"),
        ] {
            let err = with_state(state).unwrap_err();
            let paths: Vec<&str> = err.0.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, [path], "{state}");
        }
        // Unknown members are errors, as everywhere.
        assert!(with_state(r#"{"store": "etcd", "cluster": "etcd", "compare": 1}"#).is_err());
    }
}
