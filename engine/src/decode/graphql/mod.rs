//! GraphQL: what a document does is the set of root fields of **every** operation in it
//! (not only the one `operationName` selects: an upstream may select differently),
//! through aliases, named and inline fragments, whatever `@skip`/`@include` say.
//!
//! Transports: POST `application/json` (one request object or a batch array), POST
//! `application/graphql` (the body is the document), GET with `query=` (mutations refused).
//! Parsing is apollo-parser's (spec-compliant, recursion and token limits); a document
//! with any syntax error is refused, and only error-free trees are walked.

mod document;
mod schema;
#[cfg(test)]
mod tests;
mod transport;

use crate::bundle::{GraphqlConfig, GraphqlSchema, Problems};
use crate::decode::actions::{parse_rule, ActionRule};
use crate::decode::memo::{self, Memo};
use crate::decode::{record_json, verb_action, Decode, Decoded, Input};
use crate::digest::{hex, sha256};
use crate::glob::Glob;
use crate::json::parse_strict;
use crate::operation::{Action, Field, Operation, Records};
use crate::request::{content_type, undecodable, DecodeError, RequestHead, Target};
use apollo_parser::cst::{self, CstNode};
use apollo_parser::{Parser, SyntaxKind};
use hashbrown::{HashMap, HashSet};
pub use schema::RootFields;
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

impl Decode for GraphqlDecoder {
    fn decode(&self, input: &Input) -> Decoded {
        self.decode_request(input).into()
    }

    /// Each GraphQL request as its document's tokens (whitespace, commas and comments
    /// dropped), its variables in canonical JSON and its operation name — however it
    /// arrived (GET, POST JSON, a batch, a persisted query).
    fn meaning(&self, input: &Input) -> Vec<String> {
        let Ok(requests) = self.requests(input.head, input.target, input.body()) else {
            return crate::decode::raw_meaning(input);
        };
        // A batch (a JSON array, even of one) is kept apart from a single request: the
        // shape of the answer differs, and a server may run a batch differently.
        let batch = input.body().trim_ascii_start().starts_with(b"[");
        let mut out = vec![if batch { "batch" } else { "single" }.to_string()];
        for r in requests {
            let document = Json::Array(
                crate::canonical::graphql_tokens(&r.document)
                    .into_iter()
                    .map(Json::String)
                    .collect(),
            );
            out.extend([
                "request".to_string(),
                crate::canonical::json(&document),
                crate::canonical::json(&Json::Object(r.variables)),
                r.operation_name.unwrap_or_default(),
            ]);
        }
        out
    }
}

impl GraphqlDecoder {
    pub fn compile(
        cfg: Option<&GraphqlConfig>,
        endpoint: &[String],
        at: &str,
        errs: &mut Problems,
    ) -> Option<GraphqlDecoder> {
        let default = GraphqlConfig::default();
        let cfg = cfg.unwrap_or(&default);
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (name, value) in cfg.mutations.iter().flatten() {
            let here = format!("{at}.mutations.{name}");
            if name.is_empty() {
                errs.push(here.clone(), "empty mutation name");
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
        let mut err = |path: String, message: String| errs.push(path, message);
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
    fn decode_request(&self, input: &Input) -> Result<Vec<Operation>, DecodeError> {
        let Input {
            service,
            head,
            target,
            ..
        } = *input;
        let body = input.body();
        target.only_at(&self.endpoint, "GraphQL")?;
        let requests = self.requests(head, target, body)?;
        let batch = requests.len() > 1;
        let mut ops = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match self.operations(service, r) {
                Ok(more) => ops.extend(more),
                Err(e) if batch => return Err(e.within(format!("batch element {i}"))),
                Err(e) => return Err(e),
            }
        }
        Ok(ops)
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

fn token_text(node: &apollo_parser::SyntaxNode) -> String {
    node.first_token()
        .map(|t| t.text().to_string())
        .unwrap_or_default()
}
