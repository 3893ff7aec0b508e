//! GraphQL: what a document does is the set of root fields of **every** operation in it
//! (not only the one `operationName` selects: an upstream may select differently),
//! through aliases, named and inline fragments, whatever `@skip`/`@include` say.
//!
//! Transports: POST `application/json` (one request object or a batch array), POST
//! `application/graphql` (the body is the document), GET with `query=` (mutations refused).
//! Parsing is apollo-parser's (spec-compliant, recursion and token limits); a document
//! with any syntax error is refused, and only error-free trees are walked.

use super::actions::{parse_rule, ActionRule};
use super::memo::{self, Memo};
use super::{record_json, verb_action};
use crate::bundle::{BundleError, GraphqlConfig, GraphqlSchema};
use crate::digest::{hex, sha256};
use crate::glob::Glob;
use crate::json::parse_strict;
use crate::operation::{Action, Field, Operation, Records};
use crate::request::{content_type, undecodable, DecodeError, RequestHead, Target};
use apollo_parser::cst::{self, CstNode};
use apollo_parser::{Parser, SyntaxKind};
use hashbrown::{HashMap, HashSet};
use serde_json::{Map, Value as Json};
use std::borrow::Cow;

pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_DEPTH: usize = 24;
pub const DEFAULT_MAX_ROOT_FIELDS: usize = 64;
pub const DEFAULT_MAX_ALIASES: usize = 64;
pub const DEFAULT_MAX_FRAGMENTS: usize = 128;
pub const DEFAULT_MAX_BATCH: usize = 16;
/// Nesting the parser follows (selection sets, values, list types). Deeper documents are
/// refused by the parser before `max_depth` is even measured.
const PARSER_RECURSION_LIMIT: usize = 128;
/// Characters of an error message's document excerpt.
const EXCERPT_CHARS: usize = 80;

/// Request keys of the GraphQL-over-HTTP JSON body; any other key is refused.
const REQUEST_KEYS: [&str; 4] = ["query", "variables", "operationName", "extensions"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Query,
    Mutation,
    Subscription,
}

impl OpKind {
    fn as_str(self) -> &'static str {
        match self {
            OpKind::Query => "query",
            OpKind::Mutation => "mutation",
            OpKind::Subscription => "subscription",
        }
    }
}

/// Root field names per operation type, from the service's schema, and the field types
/// of its object and interface types (to name nested fields `Type.field`).
#[derive(Debug, Clone, Default)]
pub struct RootFields {
    query: HashSet<String>,
    mutation: HashSet<String>,
    subscription: HashSet<String>,
    /// Root type names: query, mutation, subscription.
    root_types: [String; 3],
    /// Object or interface type -> field -> the named type it returns (lists and
    /// non-null unwrapped).
    types: HashMap<String, HashMap<String, String>>,
}

impl RootFields {
    /// Query, mutation and subscription field names, sorted.
    pub fn names(&self) -> [Vec<String>; 3] {
        let sorted = |s: &HashSet<String>| {
            let mut v: Vec<String> = s.iter().cloned().collect();
            v.sort();
            v
        };
        [
            sorted(&self.query),
            sorted(&self.mutation),
            sorted(&self.subscription),
        ]
    }

    fn root_type(&self, kind: OpKind) -> &str {
        let [q, m, s] = &self.root_types;
        match kind {
            OpKind::Query => q,
            OpKind::Mutation => m,
            OpKind::Subscription => s,
        }
    }

    /// The named type `field` of type `ty` returns, when the schema defines it.
    pub fn field_type(&self, ty: &str, field: &str) -> Option<&str> {
        self.types.get(ty)?.get(field).map(String::as_str)
    }

    fn of(&self, kind: OpKind) -> &HashSet<String> {
        match kind {
            OpKind::Query => &self.query,
            OpKind::Mutation => &self.mutation,
            OpKind::Subscription => &self.subscription,
        }
    }

    pub fn mutations(&self) -> impl Iterator<Item = &str> {
        self.mutation.iter().map(String::as_str)
    }

    pub fn queries(&self) -> impl Iterator<Item = &str> {
        self.query.iter().map(String::as_str)
    }

    /// Root fields of an SDL schema (`schema { … }` names the root types; default
    /// `Query`, `Mutation`, `Subscription`), extensions included.
    pub fn from_sdl(sdl: &str) -> Result<RootFields, String> {
        let tree = Parser::new(sdl).parse();
        if let Some(e) = tree.errors().next() {
            return Err(format!(
                "SDL does not parse: {} at {}",
                e.message(),
                e.index()
            ));
        }
        let doc = tree.document();
        let mut names = [
            ("Query".to_string(), OpKind::Query),
            ("Mutation".to_string(), OpKind::Mutation),
            ("Subscription".to_string(), OpKind::Subscription),
        ];
        for def in doc.definitions() {
            if let cst::Definition::SchemaDefinition(s) = def {
                for root in s.root_operation_type_definitions() {
                    let (Some(kind), Some(ty)) = (
                        root.operation_type().map(|t| op_kind(&t)),
                        root.named_type()
                            .and_then(|n| n.name())
                            .and_then(|n| text(&n)),
                    ) else {
                        continue;
                    };
                    for slot in names.iter_mut().filter(|(_, k)| *k == kind) {
                        slot.0 = ty.clone();
                    }
                }
            }
        }
        let mut out = RootFields::default();
        for (slot, (name, _)) in out.root_types.iter_mut().zip(&names) {
            slot.clone_from(name);
        }
        for def in doc.definitions() {
            let (name, fields) = match &def {
                cst::Definition::ObjectTypeDefinition(o) => (o.name(), o.fields_definition()),
                cst::Definition::ObjectTypeExtension(o) => (o.name(), o.fields_definition()),
                cst::Definition::InterfaceTypeDefinition(o) => (o.name(), o.fields_definition()),
                cst::Definition::InterfaceTypeExtension(o) => (o.name(), o.fields_definition()),
                _ => continue,
            };
            let Some(name) = name.and_then(|n| text(&n)) else {
                continue;
            };
            let types = out.types.entry(name.clone()).or_default();
            for f in fields.iter().flat_map(|f| f.field_definitions()) {
                if let (Some(field), Some(ty)) = (
                    f.name().and_then(|n| text(&n)),
                    f.ty().and_then(sdl_named_type),
                ) {
                    types.insert(field, ty);
                }
            }
            if matches!(
                def,
                cst::Definition::InterfaceTypeDefinition(_)
                    | cst::Definition::InterfaceTypeExtension(_)
            ) {
                continue;
            }
            for (_, kind) in names.iter().filter(|(n, _)| *n == name) {
                for f in fields.iter().flat_map(|f| f.field_definitions()) {
                    if let Some(field) = f.name().and_then(|n| text(&n)) {
                        out.insert(*kind, field);
                    }
                }
            }
        }
        if out.query.is_empty() && out.mutation.is_empty() {
            return Err("SDL defines no query or mutation root fields".into());
        }
        Ok(out)
    }

    /// Root fields of an introspection result.
    pub fn from_introspection(json: &Json) -> Result<RootFields, String> {
        let schema = json
            .pointer("/data/__schema")
            .or_else(|| json.get("__schema"))
            .ok_or("introspection JSON has no `__schema` (nor `data.__schema`)")?;
        let types = schema
            .get("types")
            .and_then(Json::as_array)
            .ok_or("`__schema.types` is not an array")?;
        let mut out = RootFields::default();
        for t in types {
            let (Some(name), Some(fields)) = (
                t.get("name").and_then(Json::as_str),
                t.get("fields").and_then(Json::as_array),
            ) else {
                continue;
            };
            let map = out.types.entry(name.to_string()).or_default();
            for f in fields {
                if let (Some(field), Some(ty)) = (
                    f.get("name").and_then(Json::as_str),
                    f.get("type").and_then(introspection_named_type),
                ) {
                    map.insert(field.to_string(), ty.to_string());
                }
            }
        }
        for (i, (slot, kind)) in [
            ("queryType", OpKind::Query),
            ("mutationType", OpKind::Mutation),
            ("subscriptionType", OpKind::Subscription),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(root) = schema
                .pointer(&format!("/{slot}/name"))
                .and_then(Json::as_str)
            else {
                continue;
            };
            if let Some(r) = out.root_types.get_mut(i) {
                *r = root.to_string();
            }
            let ty = types
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some(root))
                .ok_or_else(|| format!("root type `{root}` is not among `__schema.types`"))?;
            for f in ty
                .get("fields")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = f.get("name").and_then(Json::as_str) {
                    out.insert(kind, name.to_string());
                }
            }
        }
        if out.query.is_empty() && out.mutation.is_empty() {
            return Err("introspection defines no query or mutation root fields".into());
        }
        Ok(out)
    }

    fn insert(&mut self, kind: OpKind, field: String) {
        match kind {
            OpKind::Query => self.query.insert(field),
            OpKind::Mutation => self.mutation.insert(field),
            OpKind::Subscription => self.subscription.insert(field),
        };
    }
}

/// The named type of an SDL type reference (`[Foo!]!` -> `Foo`).
fn sdl_named_type(t: cst::Type) -> Option<String> {
    match t {
        cst::Type::NamedType(n) => n.name().and_then(|n| text(&n)),
        cst::Type::ListType(l) => l.ty().and_then(sdl_named_type),
        cst::Type::NonNullType(n) => match n.named_type() {
            Some(named) => named.name().and_then(|n| text(&n)),
            None => n.list_type().and_then(|l| l.ty()).and_then(sdl_named_type),
        },
    }
}

/// The named type of an introspection type reference (`ofType` unwrapped), bounded.
fn introspection_named_type(t: &Json) -> Option<&str> {
    let mut t = t;
    for _ in 0..16 {
        match t.get("ofType") {
            Some(inner) if !inner.is_null() => t = inner,
            _ => return t.get("name").and_then(Json::as_str),
        }
    }
    None
}

/// Selections the nested-field walk visits in one document at most (fragments spread
/// in many places multiply them); a document over it is refused.
const MAX_SELECTION_VISITS: usize = 16 * 1024;

#[derive(Debug, Clone)]
struct Limits {
    document_bytes: usize,
    depth: usize,
    root_fields: usize,
    aliases: usize,
    fragments: usize,
    batch: usize,
}

#[derive(Debug, Clone)]
pub struct GraphqlDecoder {
    /// The endpoint: the service's path prefix, exactly.
    endpoint: Vec<String>,
    exact: HashMap<String, ActionRule>,
    patterns: Vec<(Glob, ActionRule)>,
    persisted: HashMap<String, String>,
    /// Boxed: the schema's types are large, and most services have none.
    schema: Option<Box<RootFields>>,
    limits: Limits,
    /// Whether to walk below root fields (`Operation::fields`): only when some guard
    /// can match a read on the service (`policy::compile` sets it); nothing else looks
    /// at nested fields.
    nested: bool,
    /// Requests already decoded by this VM (see `memo.rs`).
    memo: Memo<Vec<Operation>>,
}

/// One GraphQL request, whatever transport carried it.
struct GqlRequest {
    document: String,
    variables: Map<String, Json>,
    operation_name: Option<String>,
    over_get: bool,
}

impl GraphqlDecoder {
    pub fn compile(
        cfg: Option<&GraphqlConfig>,
        endpoint: &[String],
        at: &str,
        errs: &mut Vec<BundleError>,
    ) -> Option<GraphqlDecoder> {
        let default = GraphqlConfig::default();
        let cfg = cfg.unwrap_or(&default);
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (name, value) in cfg.mutations.iter().flatten() {
            let here = format!("{at}.mutations.{name}");
            if name.is_empty() {
                errs.push(BundleError {
                    path: here.clone(),
                    message: "empty mutation name".into(),
                });
            }
            let Some(rule) = parse_rule(value, &here, errs) else {
                continue;
            };
            let glob = Glob::new(name);
            if glob.is_wildcard() {
                patterns.push((glob, rule));
            } else {
                exact.insert(name.clone(), rule);
            }
        }
        let mut err = |path: String, message: String| errs.push(BundleError { path, message });
        let mut persisted = HashMap::new();
        for (hash, document) in cfg.persisted_queries.iter().flatten() {
            let actual = hex(&sha256(document.as_bytes()));
            if *hash != actual {
                err(
                    format!("{at}.persisted_queries.{hash}"),
                    format!("is not the lower-case SHA-256 of its document ({actual})"),
                );
            }
            persisted.insert(hash.clone(), document.clone());
        }
        let schema = match &cfg.schema {
            None => None,
            Some(GraphqlSchema {
                sdl: Some(sdl),
                introspection: None,
            }) => RootFields::from_sdl(sdl)
                .map_err(|e| err(format!("{at}.schema.sdl"), e))
                .ok()
                .map(Box::new),
            Some(GraphqlSchema {
                sdl: None,
                introspection: Some(json),
            }) => RootFields::from_introspection(json)
                .map_err(|e| err(format!("{at}.schema.introspection"), e))
                .ok()
                .map(Box::new),
            Some(_) => {
                err(
                    format!("{at}.schema"),
                    "exactly one of {\"sdl\": \"…\"}, {\"introspection\": {…}}".into(),
                );
                None
            }
        };
        let mut limit = |name: &str, value: Option<usize>, default: usize, ceiling: usize| {
            let v = value.unwrap_or(default);
            if v == 0 || v > ceiling {
                err(
                    format!("{at}.{name}"),
                    format!("must be between 1 and {ceiling}"),
                );
            }
            v
        };
        let limits = Limits {
            document_bytes: limit(
                "max_document_bytes",
                cfg.max_document_bytes,
                DEFAULT_MAX_DOCUMENT_BYTES,
                1024 * 1024,
            ),
            depth: limit("max_depth", cfg.max_depth, DEFAULT_MAX_DEPTH, 100),
            root_fields: limit(
                "max_root_fields",
                cfg.max_root_fields,
                DEFAULT_MAX_ROOT_FIELDS,
                1000,
            ),
            aliases: limit("max_aliases", cfg.max_aliases, DEFAULT_MAX_ALIASES, 1000),
            fragments: limit(
                "max_fragments",
                cfg.max_fragments,
                DEFAULT_MAX_FRAGMENTS,
                1000,
            ),
            batch: limit("max_batch", cfg.max_batch, DEFAULT_MAX_BATCH, 100),
        };
        Some(GraphqlDecoder {
            endpoint: endpoint.to_vec(),
            exact,
            patterns,
            persisted,
            schema,
            limits,
            nested: true,
            memo: Memo::new(),
        })
    }

    /// Walk below root fields or not (see `nested`).
    pub fn set_nested(&mut self, nested: bool) {
        self.nested = nested;
    }

    /// Whether the decoder walks below root fields.
    pub fn walks_nested(&self) -> bool {
        self.nested
    }

    /// The schema's root fields, when the service has one.
    pub fn schema(&self) -> Option<&RootFields> {
        self.schema.as_deref()
    }

    /// Every root field of every operation of every request in the HTTP request.
    pub fn decode(
        &self,
        service: &str,
        head: &RequestHead,
        target: &Target,
        body: &[u8],
    ) -> Result<Vec<Operation>, DecodeError> {
        if target
            .strip_prefix(&self.endpoint)
            .is_none_or(|rest| !rest.is_empty())
        {
            return undecodable(format!(
                "GraphQL is served at `/{}` only",
                self.endpoint.join("/")
            ));
        }
        let requests = self.requests(head, target, body)?;
        let batch = requests.len() > 1;
        let mut ops = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match self.operations(service, r) {
                Ok(more) => ops.extend(more),
                Err(DecodeError(e)) if batch => {
                    return undecodable(format!("batch element {i}: {e}"))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ops)
    }

    /// The GraphQL requests an HTTP request carries, by transport.
    fn requests(
        &self,
        head: &RequestHead,
        target: &Target,
        body: &[u8],
    ) -> Result<Vec<GqlRequest>, DecodeError> {
        match head.method.as_str() {
            "GET" => {
                if !body.is_empty() {
                    return undecodable("a GraphQL GET with a body: ambiguous");
                }
                only_params(target, &REQUEST_KEYS)?;
                let variables = target
                    .single_param("variables")?
                    .map(|v| parse_strict(v.as_bytes()))
                    .transpose()?;
                let extensions = target
                    .single_param("extensions")?
                    .map(|v| parse_strict(v.as_bytes()))
                    .transpose()?;
                let request = self.request(
                    target.single_param("query")?.map(str::to_string),
                    variables,
                    target.single_param("operationName")?.map(str::to_string),
                    extensions,
                    true,
                )?;
                Ok(vec![request])
            }
            "POST" => match media_type(head)? {
                Media::Json => {
                    if let Some((name, _)) = target.query.first() {
                        return undecodable(format!(
                            "query parameter `{name}` beside a GraphQL JSON body: ambiguous"
                        ));
                    }
                    match parse_strict(body)? {
                        Json::Object(m) => Ok(vec![self.request_object(m)?]),
                        Json::Array(items) => {
                            if items.is_empty() {
                                return undecodable("empty GraphQL batch");
                            }
                            if items.len() > self.limits.batch {
                                return undecodable(format!(
                                    "GraphQL batch of {} operations, over the service's max_batch of {}",
                                    items.len(),
                                    self.limits.batch
                                ));
                            }
                            items
                                .into_iter()
                                .enumerate()
                                .map(|(i, item)| match item {
                                    Json::Object(m) => self.request_object(m).map_err(|e| {
                                        DecodeError(format!("batch element {i}: {e}"))
                                    }),
                                    _ => undecodable(format!(
                                        "batch element {i} is not a GraphQL request object"
                                    )),
                                })
                                .collect()
                        }
                        _ => undecodable("GraphQL JSON body is not an object or a batch array"),
                    }
                }
                Media::Graphql => {
                    only_params(target, &["variables", "operationName"])?;
                    let Ok(document) = std::str::from_utf8(body) else {
                        return undecodable("GraphQL document is not UTF-8");
                    };
                    let variables = target
                        .single_param("variables")?
                        .map(|v| parse_strict(v.as_bytes()))
                        .transpose()?;
                    let request = self.request(
                        Some(document.to_string()),
                        variables,
                        target.single_param("operationName")?.map(str::to_string),
                        None,
                        false,
                    )?;
                    Ok(vec![request])
                }
            },
            other => undecodable(format!(
                "GraphQL over {other}: only GET and POST are served"
            )),
        }
    }

    /// One `{"query", "variables", "operationName", "extensions"}` object.
    fn request_object(&self, mut m: Map<String, Json>) -> Result<GqlRequest, DecodeError> {
        if let Some(k) = m.keys().find(|k| !REQUEST_KEYS.contains(&k.as_str())) {
            return undecodable(format!("unknown GraphQL request key `{k}`"));
        }
        let query = match m.remove("query") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s),
            Some(_) => return undecodable("`query` is not a string"),
        };
        let operation_name = match m.remove("operationName") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s),
            Some(_) => return undecodable("`operationName` is not a string"),
        };
        self.request(
            query,
            m.remove("variables"),
            operation_name,
            m.remove("extensions"),
            false,
        )
    }

    /// Checks the parts of a request and resolves a persisted query.
    fn request(
        &self,
        query: Option<String>,
        variables: Option<Json>,
        operation_name: Option<String>,
        extensions: Option<Json>,
        over_get: bool,
    ) -> Result<GqlRequest, DecodeError> {
        let variables = match variables {
            None | Some(Json::Null) => Map::new(),
            Some(Json::Object(m)) => m,
            Some(_) => return undecodable("`variables` is not an object"),
        };
        let persisted_hash = match &extensions {
            None | Some(Json::Null) => None,
            Some(Json::Object(ext)) => match ext.get("persistedQuery") {
                None | Some(Json::Null) => None,
                Some(pq) => match pq.get("sha256Hash").and_then(Json::as_str) {
                    Some(h) => Some(h.to_ascii_lowercase()),
                    None => return undecodable("`extensions.persistedQuery` has no sha256Hash"),
                },
            },
            Some(_) => return undecodable("`extensions` is not an object"),
        };
        let document = match (query, persisted_hash) {
            (Some(q), None) => q,
            (Some(q), Some(hash)) => {
                // The upstream may run the stored document for the hash, not this text:
                // both must be the same document.
                if hex(&sha256(q.as_bytes())) != hash {
                    return undecodable("persisted query hash does not match the document sent");
                }
                q
            }
            (None, Some(hash)) => match self.persisted.get(&hash) {
                Some(doc) => doc.clone(),
                None => {
                    return undecodable(format!(
                        "persisted query {hash} is not listed in the service's persisted_queries"
                    ))
                }
            },
            (None, None) => return undecodable("no GraphQL document (`query`)"),
        };
        Ok(GqlRequest {
            document,
            variables,
            operation_name,
            over_get,
        })
    }

    /// Parses one document and turns every root field of every operation into an operation.
    /// The operations of one request. The same document with the same variables,
    /// operation name and transport, for the same service, is decoded once per VM.
    fn operations(&self, service: &str, r: &GqlRequest) -> Result<Vec<Operation>, DecodeError> {
        if r.document.len() > memo::MAX_KEY_BYTES {
            return self.operations_uncached(service, r);
        }
        // Exact bytes of everything the decode reads; the lengths keep the parts apart.
        let variables = Json::Object(r.variables.clone()).to_string();
        let name = r.operation_name.as_deref();
        let key = format!(
            "{service}\0{}\0{}:{}\0{}:{}\0{variables}",
            r.over_get,
            r.document.len(),
            r.document,
            name.map_or(0, |n| n.len() + 1),
            name.unwrap_or_default(),
        );
        self.memo
            .get_or(&key, || self.operations_uncached(service, r))
    }

    fn operations_uncached(
        &self,
        service: &str,
        r: &GqlRequest,
    ) -> Result<Vec<Operation>, DecodeError> {
        if r.document.len() > self.limits.document_bytes {
            return undecodable(format!(
                "GraphQL document is {} bytes, over the service's max_document_bytes of {}",
                r.document.len(),
                self.limits.document_bytes
            ));
        }
        let tree = Parser::new(&r.document)
            .recursion_limit(PARSER_RECURSION_LIMIT)
            .token_limit(self.limits.document_bytes)
            .parse();
        if let Some(e) = tree.errors().next() {
            return undecodable(format!(
                "GraphQL does not parse: {} at byte {}{}",
                e.message(),
                e.index(),
                excerpt(&r.document, e.index())
            ));
        }
        let doc = tree.document();
        let mut operations = Vec::new();
        let mut fragments: HashMap<String, cst::FragmentDefinition> = HashMap::new();
        // Document order: what is checked first (and so which error is reported) must
        // not depend on the hash map's order — the CLI and the filter give one answer.
        let mut in_order: Vec<String> = Vec::new();
        for def in doc.definitions() {
            match def {
                cst::Definition::OperationDefinition(op) => operations.push(op),
                cst::Definition::FragmentDefinition(f) => {
                    let name = required(f.fragment_name().and_then(|n| n.name()), "fragment name")?;
                    if fragments.insert(name.clone(), f).is_some() {
                        return undecodable(format!("fragment `{name}` is defined twice"));
                    }
                    in_order.push(name);
                }
                other => {
                    return undecodable(format!(
                        "{} in a request: only operations and fragments are executable",
                        other.kind()
                    ))
                }
            }
        }
        if fragments.len() > self.limits.fragments {
            return undecodable(format!(
                "{} fragments, over the service's max_fragments of {}",
                fragments.len(),
                self.limits.fragments
            ));
        }
        self.check_names(&operations, r.operation_name.as_deref())?;

        // Depth and aliases over every definition; fragment cycles refused.
        let mut walk = Walk {
            fragments: &fragments,
            depth_of: HashMap::new(),
            visiting: Vec::new(),
            aliases: 0,
        };
        // Walking below root fields (`nested`) measures depth and aliases on the way, on
        // every fragment an operation spreads (cycles refused there); otherwise the
        // fragments are measured here, each once.
        if !self.nested {
            for name in &in_order {
                walk.fragment_depth(name)?;
            }
        }
        let mut out = Vec::new();
        let mut nested = Nested {
            schema: self.schema.as_deref(),
            fragments: &fragments,
            visits: 0,
            spreading: Vec::new(),
            aliases: 0,
            used: HashSet::new(),
        };
        for op in &operations {
            let kind = op.operation_type().map_or(OpKind::Query, |t| op_kind(&t));
            if kind == OpKind::Mutation && r.over_get {
                return undecodable("mutation over GET: GraphQL mutations are POST only");
            }
            let set = required_node(op.selection_set(), "selection set")?;
            if !self.nested {
                let depth = walk.depth(&set)?;
                self.check_depth(depth)?;
            }
            let op_name = match op.name() {
                Some(n) => required(Some(n), "operation name")?,
                None => "(anonymous)".to_string(),
            };
            let vars = Variables::of(op, &r.variables)?;
            let mut fields = Vec::new();
            let mut expanded = HashSet::new();
            root_fields(
                &set,
                &fragments,
                &mut expanded,
                &mut Vec::new(),
                &mut fields,
            )?;
            nested.used.extend(expanded);
            if fields.is_empty() {
                return undecodable(format!("operation `{op_name}` selects no field"));
            }
            // The operation's depth: 1 + the deepest root field's selection (spreads and
            // inline fragments add no level), when the walk below measures it.
            let mut deepest = 0;
            for field in fields {
                if out.len() >= self.limits.root_fields {
                    return undecodable(format!(
                        "more than the service's max_root_fields of {} root fields",
                        self.limits.root_fields
                    ));
                }
                let below = self.field_operations(
                    service,
                    kind,
                    &op_name,
                    &field,
                    &vars,
                    (&mut nested, &mut walk),
                    &mut out,
                )?;
                deepest = deepest.max(below);
            }
            if self.nested {
                self.check_depth(deepest + 1)?;
            }
        }
        // Fragments no operation spreads are measured as without the walk below (a
        // cycle among them refused, their aliases counted): one answer either way.
        if self.nested {
            for name in &in_order {
                if !nested.used.contains(name) && !walk.depth_of.contains_key(name) {
                    walk.fragment_depth(name)?;
                }
            }
        }
        let aliases = walk.aliases + nested.aliases;
        if aliases > self.limits.aliases {
            return undecodable(format!(
                "{aliases} aliases, over the service's max_aliases of {}",
                self.limits.aliases
            ));
        }
        Ok(out)
    }

    fn check_depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > self.limits.depth {
            return undecodable(format!(
                "GraphQL selection depth {depth}, over the service's max_depth of {}",
                self.limits.depth
            ));
        }
        Ok(())
    }

    /// Operation names: unique, a lone anonymous operation, and an `operationName` that
    /// names one when there are several (an upstream must not be left to pick).
    fn check_names(
        &self,
        operations: &[cst::OperationDefinition],
        selected: Option<&str>,
    ) -> Result<(), DecodeError> {
        let mut names = HashSet::new();
        for op in operations {
            match op.name() {
                None if operations.len() > 1 => {
                    return undecodable("an anonymous operation beside others")
                }
                None => {}
                Some(n) => {
                    let n = required(Some(n), "operation name")?;
                    if !names.insert(n.clone()) {
                        return undecodable(format!("operation `{n}` is defined twice"));
                    }
                }
            }
        }
        match (operations.len(), selected) {
            (0, _) => undecodable("no operation in the GraphQL document"),
            (1, None) => Ok(()),
            (_, None) => undecodable(format!(
                "{} operations and no operationName: which one runs is up to the upstream",
                operations.len()
            )),
            (_, Some(s)) if names.contains(s) => Ok(()),
            (_, Some(s)) => undecodable(format!(
                "operationName `{s}` names no operation in the document"
            )),
        }
    }

    /// The operation of one root field — one per action, when the mutation's action
    /// hinges on its arguments (`actions.rs`). With the walk below root fields on, the
    /// depth of the field's selection (0 without one), its alias counted.
    #[allow(clippy::too_many_arguments)]
    fn field_operations(
        &self,
        service: &str,
        kind: OpKind,
        op_name: &str,
        field: &cst::Field,
        vars: &Variables,
        (nested, walk): (&mut Nested, &mut Walk),
        out: &mut Vec<Operation>,
    ) -> Result<usize, DecodeError> {
        let name = required(field.name(), "field name")?;
        let meta = name.starts_with("__");
        if let Some(schema) = &self.schema {
            if !meta && !schema.of(kind).contains(&name) {
                return undecodable(format!(
                    "`{name}` is not a {} root field of the service's schema",
                    kind.as_str()
                ));
            }
        }
        let (records, unknown) = arguments(field.arguments(), &name, vars)?;
        let actions = match kind {
            OpKind::Mutation if !meta => self.mutation_rule(&name).resolve(&records, &unknown),
            _ => vec![Action::Read],
        };
        // Everything selected below the root field, as `Type.field` (with a schema) or
        // its path of names.
        let mut fields = Vec::new();
        let mut below = 0;
        if self.nested && field.alias().is_some() {
            nested.aliases += 1;
        }
        if let Some(set) = field.selection_set().filter(|_| self.nested) {
            let ty = match &self.schema {
                Some(schema) if !meta => {
                    let root = schema.root_type(kind);
                    match schema.field_type(root, &name) {
                        Some(t) => Some(t.to_string()),
                        None => {
                            return undecodable(format!(
                                "the type of root field `{name}` is not in the service's schema"
                            ))
                        }
                    }
                }
                _ => None,
            };
            below = if meta {
                walk.depth(&set)?
            } else {
                nested.collect(&set, ty.as_deref(), &name, vars, true, &mut fields)?
            };
            dedup_in_order(&mut fields);
        }
        let mut detail = format!("{} {op_name}", kind.as_str());
        if let Some(alias) = field.alias().and_then(|a| a.name()) {
            detail.push_str(&format!(" (alias `{}`)", required(Some(alias), "alias")?));
        }
        // A subscription is a standing stream, which schemas give another meaning than the
        // query field of the same name: its own resource (`subscription/<field>`), which a
        // grant on the query field does not cover (issue 18, class 5).
        let resource = match kind {
            OpKind::Subscription if !meta => format!("subscription/{name}"),
            _ => name,
        };
        let mut op = Operation::new(service, Action::Read, resource)
            .with_records(records)
            .with_unknown(unknown)
            .with_fields(fields)
            .with_detail(detail);
        if let Some((last, others)) = actions.split_last() {
            for action in others {
                let mut other = op.clone();
                other.action = *action;
                out.push(other);
            }
            op.action = *last;
            out.push(op);
        }
        Ok(below)
    }

    /// The service's schema, when one was given.
    pub fn root_fields(&self) -> Option<&RootFields> {
        self.schema.as_deref()
    }

    /// The rule of a mutation: the bundle's exact names, then its patterns in order,
    /// then the built-in name rules.
    pub fn mutation_rule(&self, name: &str) -> Cow<'_, ActionRule> {
        if let Some(r) = self.exact.get(name) {
            return Cow::Borrowed(r);
        }
        if let Some((_, r)) = self.patterns.iter().find(|(g, _)| g.matches(name)) {
            return Cow::Borrowed(r);
        }
        Cow::Owned(ActionRule::plain(builtin_action(name)))
    }
}

/// Built-in mutation rules by the words of the name (`volumeInstanceBackupDelete` →
/// volume, instance, backup, delete): the shared vocabulary (`verb_action`), without
/// reads — a mutation that reads is still a mutation, `execute`.
pub fn builtin_action(name: &str) -> Action {
    verb_action(name, false)
}

enum Media {
    Json,
    Graphql,
}

/// The request's media type: `application/json` or `application/graphql`, charset UTF-8
/// at most; anything else (forms, multipart uploads, text/plain) is refused.
fn media_type(head: &RequestHead) -> Result<Media, DecodeError> {
    match content_type(
        head,
        &["application/json", "application/graphql"],
        "GraphQL",
    )? {
        "application/graphql" => Ok(Media::Graphql),
        _ => Ok(Media::Json),
    }
}

/// Refuses query parameters outside `allowed`.
fn only_params(target: &Target, allowed: &[&str]) -> Result<(), DecodeError> {
    match target
        .query
        .iter()
        .find(|(n, _)| !allowed.contains(&n.as_str()))
    {
        Some((n, _)) => undecodable(format!("unexpected query parameter `{n}`")),
        None => Ok(()),
    }
}

fn op_kind(t: &cst::OperationType) -> OpKind {
    if t.mutation_token().is_some() {
        OpKind::Mutation
    } else if t.subscription_token().is_some() {
        OpKind::Subscription
    } else {
        OpKind::Query
    }
}

/// A name's text, without apollo-parser's panicking accessors.
fn text(n: &cst::Name) -> Option<String> {
    n.syntax().first_token().map(|t| t.text().to_string())
}

fn required(n: Option<cst::Name>, what: &str) -> Result<String, DecodeError> {
    match n.as_ref().and_then(text) {
        Some(t) => Ok(t),
        None => undecodable(format!("GraphQL {what} missing")),
    }
}

fn required_node<T>(n: Option<T>, what: &str) -> Result<T, DecodeError> {
    match n {
        Some(t) => Ok(t),
        None => undecodable(format!("GraphQL {what} missing")),
    }
}

fn excerpt(doc: &str, at: usize) -> String {
    let start = (0..=at.min(doc.len()))
        .rev()
        .find(|i| doc.is_char_boundary(*i))
        .unwrap_or(0);
    let tail: String = doc
        .get(start..)
        .unwrap_or_default()
        .chars()
        .take(EXCERPT_CHARS)
        .collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!(" (near `{tail}`)")
    }
}

/// Depth of selection sets (fragments expanded, memoised), alias count, cycle refusal.
struct Walk<'a> {
    fragments: &'a HashMap<String, cst::FragmentDefinition>,
    depth_of: HashMap<String, usize>,
    visiting: Vec<String>,
    aliases: usize,
}

impl Walk<'_> {
    fn fragment_depth(&mut self, name: &str) -> Result<usize, DecodeError> {
        if let Some(d) = self.depth_of.get(name) {
            return Ok(*d);
        }
        if self.visiting.iter().any(|v| v == name) {
            return undecodable(format!("fragment `{name}` spreads itself (cycle)"));
        }
        let Some(def) = self.fragments.get(name) else {
            return undecodable(format!("fragment `{name}` is not defined"));
        };
        let set = required_node(def.selection_set(), "fragment selection set")?;
        self.visiting.push(name.to_string());
        let d = self.depth(&set);
        self.visiting.pop();
        let d = d?;
        self.depth_of.insert(name.to_string(), d);
        Ok(d)
    }

    /// 1 + the deepest selection (a spread or inline fragment adds no level).
    fn depth(&mut self, set: &cst::SelectionSet) -> Result<usize, DecodeError> {
        let mut deepest = 0;
        for sel in set.selections() {
            let d = match sel {
                cst::Selection::Field(f) => {
                    if f.alias().is_some() {
                        self.aliases += 1;
                    }
                    match f.selection_set() {
                        Some(s) => self.depth(&s)?,
                        None => 0,
                    }
                }
                cst::Selection::InlineFragment(i) => {
                    let s = required_node(i.selection_set(), "inline fragment selection set")?;
                    self.depth(&s)?.saturating_sub(1)
                }
                cst::Selection::FragmentSpread(s) => {
                    let name = required(s.fragment_name().and_then(|n| n.name()), "spread name")?;
                    self.fragment_depth(&name)?.saturating_sub(1)
                }
            };
            deepest = deepest.max(d);
        }
        Ok(deepest + 1)
    }
}

/// Root fields of an operation, through inline fragments and spreads (each named
/// fragment expanded once: spreading it again adds the same fields; a fragment that
/// spreads itself is refused).
fn root_fields(
    set: &cst::SelectionSet,
    fragments: &HashMap<String, cst::FragmentDefinition>,
    expanded: &mut HashSet<String>,
    visiting: &mut Vec<String>,
    out: &mut Vec<cst::Field>,
) -> Result<(), DecodeError> {
    for sel in set.selections() {
        match sel {
            cst::Selection::Field(f) => out.push(f),
            cst::Selection::InlineFragment(i) => {
                let s = required_node(i.selection_set(), "inline fragment selection set")?;
                root_fields(&s, fragments, expanded, visiting, out)?;
            }
            cst::Selection::FragmentSpread(s) => {
                let name = required(s.fragment_name().and_then(|n| n.name()), "spread name")?;
                if visiting.contains(&name) {
                    return undecodable(format!("fragment `{name}` spreads itself (cycle)"));
                }
                if expanded.insert(name.clone()) {
                    let Some(def) = fragments.get(&name) else {
                        return undecodable(format!("fragment `{name}` is not defined"));
                    };
                    let s = required_node(def.selection_set(), "fragment selection set")?;
                    visiting.push(name);
                    let r = root_fields(&s, fragments, expanded, visiting, out);
                    visiting.pop();
                    r?;
                }
            }
        }
    }
    Ok(())
}

/// A field's arguments as records (values sorted, deduplicated), and the names of the
/// arguments whose value cannot be known (a variable neither given nor defaulted).
fn arguments(
    args: Option<cst::Arguments>,
    name: &str,
    vars: &Variables,
) -> Result<(Records, Vec<String>), DecodeError> {
    let mut records = Records::new();
    let mut unknown = Vec::new();
    let Some(args) = args else {
        return Ok((records, unknown));
    };
    let mut seen = HashSet::new();
    for arg in args.arguments() {
        let arg_name = required(arg.name(), "argument name")?;
        if !seen.insert(arg_name.clone()) {
            return undecodable(format!("argument `{arg_name}` of `{name}` is given twice"));
        }
        let value = required_node(arg.value(), "argument value")?;
        vars.record(&arg_name, &value, &mut records, &mut unknown)?;
    }
    records.retain(|_, values| {
        values.sort();
        values.dedup();
        !values.is_empty()
    });
    unknown.sort();
    unknown.dedup();
    Ok((records, unknown))
}

/// The walk below root fields: every selected field, through named and inline
/// fragments, typed by the schema when there is one.
struct Nested<'a> {
    schema: Option<&'a RootFields>,
    fragments: &'a HashMap<String, cst::FragmentDefinition>,
    visits: usize,
    /// Fragments being expanded (a cycle is refused).
    spreading: Vec<String>,
    /// Aliases met, each time a fragment is expanded.
    aliases: usize,
    /// Fragments spread (below root fields, and at the root).
    used: HashSet<String>,
}

impl Nested<'_> {
    /// Adds the fields of `set`, selected on type `ty` (with a schema) at `path`; the
    /// depth of `set` as `Walk::depth` counts it (1 + the deepest selection; a spread or
    /// inline fragment adds no level).
    ///
    /// Aliases are counted as `Walk` counts them, once per text: a fragment's the first
    /// time it is spread (`count` says whether this text is being counted).
    fn collect(
        &mut self,
        set: &cst::SelectionSet,
        ty: Option<&str>,
        path: &str,
        vars: &Variables,
        count: bool,
        out: &mut Vec<Field>,
    ) -> Result<usize, DecodeError> {
        let mut deepest = 0;
        for sel in set.selections() {
            self.visits += 1;
            if self.visits > MAX_SELECTION_VISITS {
                return undecodable(format!(
                    "more than {MAX_SELECTION_VISITS} selections once fragments are expanded"
                ));
            }
            match sel {
                cst::Selection::Field(f) => {
                    // One pass over the field's children (each accessor would walk them
                    // again); the name's token borrowed, not copied.
                    let (mut token, mut args, mut sub) = (None, None, None);
                    for child in f.syntax().children() {
                        match child.kind() {
                            SyntaxKind::NAME => token = child.first_token(),
                            SyntaxKind::ARGUMENTS => args = cst::Arguments::cast(child),
                            SyntaxKind::SELECTION_SET => sub = cst::SelectionSet::cast(child),
                            SyntaxKind::ALIAS if count => self.aliases += 1,
                            _ => {}
                        }
                    }
                    let Some(token) = token else {
                        return undecodable("GraphQL field name missing");
                    };
                    let name = token.text();
                    if name == "__typename" {
                        continue;
                    }
                    if name.starts_with("__") {
                        return undecodable(format!("`{name}` below the root (at `{path}`)"));
                    }
                    let child_path = dotted(path, name);
                    let (resource, child_ty) = match (self.schema, ty) {
                        (None, _) => (None, None),
                        (Some(schema), Some(t)) => match schema.field_type(t, name) {
                            Some(ct) => (Some(dotted(t, name)), Some(ct)),
                            None => {
                                return undecodable(format!(
                                    "`{name}` is not a field of `{t}` in the service's schema (at `{path}`)"
                                ))
                            }
                        },
                        (Some(_), None) => {
                            return undecodable(format!(
                                "the type of `{path}` is not in the service's schema"
                            ))
                        }
                    };
                    let (records, unknown) = arguments(args, name, vars)?;
                    // The field before the fields below it; its path, which the walk
                    // below still needs, moved in afterwards (no copy).
                    let at = out.len();
                    out.push(Field {
                        resource: resource.unwrap_or_default(),
                        records,
                        unknown,
                    });
                    if let Some(s) = sub {
                        let d = self.collect(&s, child_ty, &child_path, vars, count, out)?;
                        deepest = deepest.max(d);
                    }
                    if let Some(f) = out.get_mut(at).filter(|f| f.resource.is_empty()) {
                        f.resource = child_path;
                    }
                }
                cst::Selection::InlineFragment(i) => {
                    let s = required_node(i.selection_set(), "inline fragment selection set")?;
                    let cond = type_condition(i.type_condition())?;
                    let ty = if self.schema.is_some() {
                        cond.as_deref().or(ty)
                    } else {
                        ty
                    };
                    let d = self.collect(&s, ty, path, vars, count, out)?;
                    deepest = deepest.max(d.saturating_sub(1));
                }
                cst::Selection::FragmentSpread(s) => {
                    let name = required(s.fragment_name().and_then(|n| n.name()), "spread name")?;
                    let Some(def) = self.fragments.get(&name) else {
                        return undecodable(format!("fragment `{name}` is not defined"));
                    };
                    if self.spreading.contains(&name) {
                        return undecodable(format!("fragment `{name}` spreads itself (cycle)"));
                    }
                    let set = required_node(def.selection_set(), "fragment selection set")?;
                    let cond = type_condition(def.type_condition())?;
                    let ty = if self.schema.is_some() {
                        cond.as_deref().or(ty)
                    } else {
                        ty
                    };
                    let first = !self.used.contains(&name);
                    if first {
                        self.used.insert(name.clone());
                    }
                    self.spreading.push(name);
                    let r = self.collect(&set, ty, path, vars, first, out);
                    self.spreading.pop();
                    deepest = deepest.max(r?.saturating_sub(1));
                }
            }
        }
        Ok(deepest + 1)
    }
}

/// Drops repeated fields (a fragment spread twice, a field selected again), keeping the
/// first of each in the order selected: hashing, not sorting (the paths share long
/// prefixes, which sorting compares again and again).
fn dedup_in_order(fields: &mut Vec<Field>) {
    if fields.len() < 2 {
        return;
    }
    let keep: Vec<bool> = {
        let mut seen: HashSet<&Field> = HashSet::with_capacity(fields.len());
        fields.iter().map(|f| seen.insert(f)).collect()
    };
    let mut keep = keep.into_iter();
    fields.retain(|_| keep.next().unwrap_or(true));
}

/// `a.b`, in one allocation of the right size.
fn dotted(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + 1 + b.len());
    s.push_str(a);
    s.push('.');
    s.push_str(b);
    s
}

fn type_condition(c: Option<cst::TypeCondition>) -> Result<Option<String>, DecodeError> {
    match c {
        None => Ok(None),
        Some(c) => Ok(Some(required(
            c.named_type().and_then(|n| n.name()),
            "type condition",
        )?)),
    }
}

/// An operation's variables: the request's values, else the definitions' defaults.
struct Variables<'a> {
    given: &'a Map<String, Json>,
    defaults: HashMap<String, Option<cst::Value>>,
}

impl<'a> Variables<'a> {
    fn of(
        op: &cst::OperationDefinition,
        given: &'a Map<String, Json>,
    ) -> Result<Self, DecodeError> {
        let mut defaults = HashMap::new();
        for def in op
            .variable_definitions()
            .iter()
            .flat_map(|d| d.variable_definitions())
        {
            let name = required(def.variable().and_then(|v| v.name()), "variable name")?;
            let default = def.default_value().and_then(|d| d.value());
            if defaults.insert(name.clone(), default).is_some() {
                return undecodable(format!("variable `${name}` is defined twice"));
            }
        }
        Ok(Variables { given, defaults })
    }

    /// Adds the scalar values of an argument (nested input fields as `arg.field`) to
    /// `out`, and to `unknown` the keys whose value is a variable neither given nor
    /// defaulted.
    fn record(
        &self,
        key: &str,
        v: &cst::Value,
        out: &mut Records,
        unknown: &mut Vec<String>,
    ) -> Result<(), DecodeError> {
        let mut push = |s: String| out.entry(key.to_string()).or_default().push(s);
        match v {
            cst::Value::Variable(var) => {
                let name = required(var.name(), "variable name")?;
                let Some(default) = self.defaults.get(&name) else {
                    return undecodable(format!(
                        "variable `${name}` is not defined by its operation"
                    ));
                };
                match (self.given.get(&name), default) {
                    (Some(json), _) => record_json(key, json, out),
                    (None, Some(d)) => self.record(key, d, out, unknown)?,
                    // Not given, no default: proves nothing (a records grant will not match),
                    // and its value is unknown (an argument guard matches it).
                    (None, None) => unknown.push(key.to_string()),
                }
            }
            cst::Value::StringValue(s) => push(String::from(s)),
            cst::Value::IntValue(i) => push(token_text(i.syntax())),
            cst::Value::FloatValue(f) => push(token_text(f.syntax())),
            cst::Value::BooleanValue(b) => push(b.true_token().is_some().to_string()),
            cst::Value::EnumValue(e) => push(token_text(e.syntax())),
            cst::Value::NullValue(_) => {}
            cst::Value::ListValue(l) => {
                for item in l.values() {
                    self.record(key, &item, out, unknown)?;
                }
            }
            cst::Value::ObjectValue(o) => {
                let mut seen = HashSet::new();
                for field in o.object_fields() {
                    let name = required(field.name(), "input field name")?;
                    if !seen.insert(name.clone()) {
                        return undecodable(format!("input field `{key}.{name}` is given twice"));
                    }
                    let value = required_node(field.value(), "input field value")?;
                    self.record(&format!("{key}.{name}"), &value, out, unknown)?;
                }
            }
        }
        Ok(())
    }
}

fn token_text(node: &apollo_parser::SyntaxNode) -> String {
    node.first_token()
        .map(|t| t.text().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::name_words;

    #[test]
    fn mutation_name_rules() {
        let cases = [
            ("volumeDelete", Action::Delete),
            ("volumeInstanceBackupDelete", Action::Delete),
            ("projectScheduleDeleteForce", Action::Delete),
            ("deploymentRemove", Action::Delete),
            ("sandboxDestroy", Action::Delete),
            ("purgeServiceCache", Action::Delete),
            ("egressGatewayAssociationsClear", Action::Delete),
            ("delete_users", Action::Delete),
            ("URLDelete", Action::Delete),
            ("customDomainCreate", Action::Create),
            ("addMember", Action::Create),
            ("serviceInstanceUpdate", Action::Update),
            ("variableCollectionUpsert", Action::Update),
            ("customDomainIssueCertificate", Action::Execute),
            ("volumeInstanceBackupRestore", Action::Execute),
            ("environmentPatchCommit", Action::Execute),
            ("dropdownSettingsUpdate", Action::Update),
            ("templateDeployV2", Action::Execute),
            // Issue 18, class 2: joined verbs.
            ("orderCreateOrReplace", Action::Delete),
            ("signalReplace", Action::Delete),
            ("environmentApplyChangeSet", Action::Execute),
            ("deploymentCancel", Action::Delete),
            ("userEdit", Action::Update),
            ("orderCreateOrFrobnicate", Action::Execute),
            ("orderGetOrCreate", Action::Create),
            ("orderUpdateAndRemoveItems", Action::Delete),
        ];
        for (name, action) in cases {
            assert_eq!(builtin_action(name), action, "{name}");
        }
        assert_eq!(
            name_words("HTTPServerURLDelete_v2"),
            ["http", "server", "url", "delete", "v"]
        );
    }
}
