//! REST decoding: DreamFactory, PostgREST, and route templates declared in the bundle.
//! Which rows a request touches is read from the normalised target; what a write puts in
//! them (its rows and post-image) from its body, which the pipeline hands over only when
//! a grant of the caller's role checks record values (`RestDecoder::body_holds_rows`).
//! Anything a style's grammar does not know is denied, not guessed.

mod bodies;
mod df_filter;
mod dreamfactory;
mod postgrest;
mod routes;
#[cfg(test)]
mod tests;

use crate::bundle::{Problems, RestConfig, RestStyle};
use crate::decode::expr::{Cmp, Expr};
use crate::decode::{record_json, Decode, Decoded, Input};
use crate::json::parse_strict;
use crate::operation::{upsert_scope, Action, Operation, Records, Scope, Sets};
use crate::request::{
    config_segments, content_type, undecodable, DecodeError, HeaderValue, RequestHead, Target,
};
use bodies::*;
use df_filter::*;
use dreamfactory::*;
use postgrest::*;
use routes::*;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub struct RestDecoder {
    base: Vec<String>,
    style: Style,
}

#[derive(Debug, Clone)]
enum Style {
    DreamFactory { id_field: String },
    PostgRest { default_schema: String },
    Routes(Vec<Route>),
}

/// The action a plain REST method stands for.
pub fn method_action(method: &str) -> Option<Action> {
    match method {
        "GET" | "HEAD" | "OPTIONS" => Some(Action::Read),
        "POST" => Some(Action::Create),
        "PUT" | "PATCH" => Some(Action::Update),
        "DELETE" => Some(Action::Delete),
        _ => None,
    }
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Headers whose values change what a REST upstream does (PostgREST's schema profiles,
/// `Prefer` resolutions, the body's media type, the rows a read returns).
const MEANING_HEADERS: [&str; 5] = [
    "content-type",
    "prefer",
    "accept-profile",
    "content-profile",
    "range",
];

impl Decode for RestDecoder {
    fn decode(&self, input: &Input) -> Decoded {
        self.operations(input).into()
    }

    /// The decoded query pairs in order, the headers that carry meaning, the body's
    /// canonical form (JSON in one spelling).
    fn meaning(&self, input: &Input) -> Vec<String> {
        let mut out = Vec::new();
        for (name, value) in &input.target.query {
            out.extend(["param".to_string(), name.clone(), value.clone()]);
        }
        for (name, value) in &input.head.headers {
            if MEANING_HEADERS.contains(&name.as_str()) {
                out.extend([
                    "header".to_string(),
                    name.clone(),
                    String::from_utf8_lossy(value).trim().to_string(),
                ]);
            }
        }
        // JSON in one spelling only when the upstream reads it as JSON: a text body's
        // bytes are its meaning.
        let body = input.body();
        let body = if self.body_is_json(input.head) {
            crate::canonical::body(body)
        } else {
            crate::canonical::bytes(body)
        };
        out.extend(["body".to_string(), body]);
        out
    }
}

impl RestDecoder {
    /// Compiles a service's `rest` section. `prefix` is the service's `match.path_prefix`.
    pub fn compile(
        cfg: &RestConfig,
        prefix: &[String],
        at: &str,
        errs: &mut Problems,
    ) -> Option<RestDecoder> {
        let mut err = |path: String, message: String| errs.push(path, message);
        let base = match &cfg.base_path {
            Some(p) => match config_segments(p) {
                Ok(s) => s,
                Err(e) => {
                    err(
                        format!("{at}.base_path"),
                        format!("not a normalised path: {e}"),
                    );
                    return None;
                }
            },
            None => prefix.to_vec(),
        };
        let only = |field: &str, set: bool, style: &str, err: &mut dyn FnMut(String, String)| {
            if set {
                err(
                    format!("{at}.{field}"),
                    format!("not used by style `{style}`"),
                );
            }
        };
        let style = match cfg.style {
            RestStyle::Dreamfactory => {
                only(
                    "default_schema",
                    cfg.default_schema.is_some(),
                    "dreamfactory",
                    &mut err,
                );
                only("routes", cfg.routes.is_some(), "dreamfactory", &mut err);
                let id_field = cfg.id_field.clone().unwrap_or_else(|| "id".to_string());
                if !is_identifier(&id_field) {
                    err(
                        format!("{at}.id_field"),
                        "must be an identifier".to_string(),
                    );
                }
                Style::DreamFactory { id_field }
            }
            RestStyle::Postgrest => {
                only("id_field", cfg.id_field.is_some(), "postgrest", &mut err);
                only("routes", cfg.routes.is_some(), "postgrest", &mut err);
                let default_schema = cfg
                    .default_schema
                    .clone()
                    .unwrap_or_else(|| "public".to_string());
                if !is_identifier(&default_schema) {
                    err(
                        format!("{at}.default_schema"),
                        "must be an identifier".to_string(),
                    );
                }
                Style::PostgRest { default_schema }
            }
            RestStyle::Routes => {
                only("id_field", cfg.id_field.is_some(), "routes", &mut err);
                only(
                    "default_schema",
                    cfg.default_schema.is_some(),
                    "routes",
                    &mut err,
                );
                let Some(routes) = &cfg.routes else {
                    err(
                        format!("{at}.routes"),
                        "style `routes` needs a routes list".to_string(),
                    );
                    return None;
                };
                if routes.is_empty() {
                    err(format!("{at}.routes"), "must not be empty".to_string());
                }
                let mut out = Vec::new();
                for (i, r) in routes.iter().enumerate() {
                    let here = format!("{at}.routes[{i}]");
                    if let Some(route) = compile_route(r, &here, &mut err) {
                        out.push(route);
                    }
                }
                Style::Routes(out)
            }
        };
        Some(RestDecoder { base, style })
    }

    /// Decodes a request. `body` is the request body when the pipeline read it for its
    /// rows (`body_holds_rows`, and a grant of the role checks record values): creates then
    /// prove the records of the rows they write and updates carry their post-image
    /// (`Operation::sets`). `None` decides on the head alone.
    fn operations(&self, input: &Input) -> Result<Vec<Operation>, DecodeError> {
        let Input {
            service,
            head,
            target,
            body,
            ..
        } = *input;
        let Some(rest) = target.strip_prefix(&self.base) else {
            return undecodable("path is outside the service's base path");
        };
        let mut ops = match &self.style {
            Style::DreamFactory { id_field } => {
                dreamfactory(service, id_field, head, rest, target, body)?
            }
            Style::PostgRest { default_schema } => {
                postgrest(service, default_schema, head, rest, target, body)?
            }
            Style::Routes(routes) => route(service, routes, head, rest, target, body)?,
        };
        ops.dedup();
        Ok(ops)
    }

    /// Whether the request's body holds rows or arguments: PostgREST POST/PATCH/PUT on a
    /// table or POST on a function (`body_holds_arguments`), DreamFactory POST/PATCH/PUT
    /// on `_table/{t}` or `_table/{t}/{id}`. Only these bodies say what a write assigns
    /// or a call is given; route templates never read one.
    pub fn body_holds_rows(&self, method: &str, target: &Target) -> bool {
        if !matches!(method, "POST" | "PATCH" | "PUT") {
            return false;
        }
        let Some(rest) = target.strip_prefix(&self.base) else {
            return false;
        };
        match &self.style {
            Style::PostgRest { .. } => rest.len() == 1 || self.body_holds_arguments(method, target),
            Style::DreamFactory { .. } => {
                rest.first().is_some_and(|s| s == "_table") && matches!(rest.len(), 2 | 3)
            }
            Style::Routes(_) => false,
        }
    }

    /// Whether a routes-style service reads this request's body: when the route it
    /// matches has parameters a body member could shadow (`route_body`); a body to a
    /// route without any streams through unread, whatever its size.
    pub fn reads_route_body(&self, method: &str, target: &Target) -> bool {
        let Style::Routes(routes) = &self.style else {
            return false;
        };
        target
            .strip_prefix(&self.base)
            .and_then(|rest| matching(routes, method, rest))
            .is_some_and(|r| !parameters(r).is_empty())
    }

    /// Whether the body holds a function's arguments: a PostgREST POST on `rpc/{f}`.
    pub fn body_holds_arguments(&self, method: &str, target: &Target) -> bool {
        method == "POST"
            && matches!(self.style, Style::PostgRest { .. })
            && target
                .strip_prefix(&self.base)
                .is_some_and(|rest| rest.len() == 2 && rest.first().is_some_and(|s| s == "rpc"))
    }

    /// Whether the upstream reads request options from a body, whatever the method:
    /// DreamFactory copies `ids`, `filter`, `fields`, … missing from the URL from a JSON
    /// body and acts on body records (on a DELETE, body `ids` or records win over a URL
    /// `filter`), so its bodies are always held and read: refused on GET/HEAD/DELETE,
    /// decoded (options refused) on writes.
    pub fn reads_body_options(&self) -> bool {
        matches!(self.style, Style::DreamFactory { .. })
    }

    /// Whether `decode` reads a held body as JSON (for the pipeline's depth limit):
    /// `application/json`, or no content-type at all on PostgREST, which reads that as
    /// JSON too.
    pub fn body_is_json(&self, head: &RequestHead) -> bool {
        match head.header("content-type") {
            HeaderValue::Absent => matches!(self.style, Style::PostgRest { .. }),
            _ => content_type(head, &["application/json"], "JSON").is_ok(),
        }
    }
}
