//! REST decoding: DreamFactory, PostgREST, and route templates declared in the bundle.
//! Which rows a request touches is read from the normalised target; what a write puts in
//! them (its rows and post-image) from its body, which the pipeline hands over only when
//! a grant of the caller's role checks record values (`RestDecoder::body_holds_rows`).
//! Anything a style's grammar does not know is denied, not guessed.

use super::expr::{Cmp, Expr};
use super::record_json;
use crate::bundle::{BundleError, RestConfig, RestStyle};
use crate::json::parse_strict;
use crate::operation::{upsert_scope, Action, Operation, Records, Scope, Sets};
use crate::request::{
    config_segments, content_type, undecodable, DecodeError, HeaderValue, RequestHead, Target,
};
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

#[derive(Debug, Clone)]
struct Route {
    methods: Vec<String>,
    segments: Vec<Seg>,
    resource: Vec<Seg>,
    action: Option<Action>,
    scope: Scope,
    /// Query parameters the route accepts (each a record); any other is refused.
    query: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
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

impl RestDecoder {
    /// Compiles a service's `rest` section. `prefix` is the service's `match.path_prefix`.
    pub fn compile(
        cfg: &RestConfig,
        prefix: &[String],
        at: &str,
        errs: &mut Vec<BundleError>,
    ) -> Option<RestDecoder> {
        let mut err = |path: String, message: String| errs.push(BundleError { path, message });
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
    pub fn decode(
        &self,
        service: &str,
        head: &RequestHead,
        target: &Target,
        body: Option<&[u8]>,
    ) -> Result<Vec<Operation>, DecodeError> {
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

    /// Whether a routes-style service reads this request's body (always held: see
    /// `route_body`).
    pub fn reads_route_bodies(&self) -> bool {
        matches!(self.style, Style::Routes(_))
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

fn compile_route(
    r: &crate::bundle::Route,
    at: &str,
    err: &mut dyn FnMut(String, String),
) -> Option<Route> {
    let mut ok = true;
    let mut segments = Vec::new();
    match config_segments(&r.path) {
        Ok(segs) => {
            for s in segs {
                match parse_template_part(&s) {
                    Some(seg) => segments.push(seg),
                    None => {
                        err(format!("{at}.path"), format!("bad template segment `{s}`"));
                        ok = false;
                    }
                }
            }
        }
        Err(e) => {
            err(format!("{at}.path"), format!("not a normalised path: {e}"));
            ok = false;
        }
    }
    let params: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Seg::Param(p) => Some(p.as_str()),
            Seg::Lit(_) => None,
        })
        .collect();
    let resource = parse_resource_template(&r.resource);
    match &resource {
        None => {
            err(format!("{at}.resource"), "bad template".to_string());
            ok = false;
        }
        Some(parts) => {
            for p in parts {
                if let Seg::Param(name) = p {
                    if !params.contains(&name.as_str()) {
                        err(
                            format!("{at}.resource"),
                            format!("`{{{name}}}` is not a path parameter"),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    let action = match &r.action {
        None => None,
        Some(a) => match Action::parse(a) {
            Some(a) => Some(a),
            None => {
                err(format!("{at}.action"), format!("unknown action `{a}`"));
                ok = false;
                None
            }
        },
    };
    let scope = match r.scope.as_deref() {
        None | Some("some") => Scope::Some,
        Some("all") => Scope::All,
        Some(other) => {
            err(
                format!("{at}.scope"),
                format!("`{other}` is neither `some` nor `all`"),
            );
            ok = false;
            Scope::Some
        }
    };
    if r.methods.is_empty() {
        err(format!("{at}.methods"), "must not be empty".to_string());
        ok = false;
    }
    for (j, m) in r.methods.iter().enumerate() {
        if method_action(m).is_none() {
            err(
                format!("{at}.methods[{j}]"),
                format!("unsupported method `{m}`"),
            );
            ok = false;
        }
    }
    let query = r.query.clone().unwrap_or_default();
    for (j, q) in query.iter().enumerate() {
        if !is_identifier(q) {
            err(
                format!("{at}.query[{j}]"),
                format!("`{q}` is not a parameter name"),
            );
            ok = false;
        } else if segments
            .iter()
            .any(|s| matches!(s, Seg::Param(p) if p == q))
        {
            err(
                format!("{at}.query[{j}]"),
                format!(
                    "`{q}` is also a path parameter: which one the upstream reads is ambiguous"
                ),
            );
            ok = false;
        }
    }
    ok.then(|| Route {
        methods: r.methods.clone(),
        segments,
        resource: resource.unwrap_or_default(),
        action,
        scope,
        query,
    })
}

fn parse_template_part(s: &str) -> Option<Seg> {
    match s.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
        Some(name) if is_identifier(name) => Some(Seg::Param(name.to_string())),
        Some(_) => None,
        None if s.contains(['{', '}']) => None,
        None => Some(Seg::Lit(s.to_string())),
    }
}

fn parse_resource_template(s: &str) -> Option<Vec<Seg>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        match rest.find('{') {
            Some(0) => {
                let end = rest.find('}')?;
                let name = rest.get(1..end)?;
                if !is_identifier(name) {
                    return None;
                }
                parts.push(Seg::Param(name.to_string()));
                rest = rest.get(end + 1..)?;
            }
            Some(i) => {
                let lit = rest.get(..i)?;
                if lit.contains('}') {
                    return None;
                }
                parts.push(Seg::Lit(lit.to_string()));
                rest = rest.get(i..)?;
            }
            None => {
                if rest.contains('}') {
                    return None;
                }
                parts.push(Seg::Lit(rest.to_string()));
                rest = "";
            }
        }
    }
    (!parts.is_empty()).then_some(parts)
}

fn route(
    service: &str,
    routes: &[Route],
    head: &RequestHead,
    rest: &[String],
    target: &Target,
    body: Option<&[u8]>,
) -> Result<Vec<Operation>, DecodeError> {
    let method = head.method.as_str();
    for r in routes {
        if !r.methods.iter().any(|m| m == method) || r.segments.len() != rest.len() {
            continue;
        }
        let mut records = Records::new();
        let mut matched = true;
        for (seg, value) in r.segments.iter().zip(rest) {
            match seg {
                Seg::Lit(l) if l == value => {}
                Seg::Lit(_) => {
                    matched = false;
                    break;
                }
                Seg::Param(p) => {
                    records.insert(p.clone(), vec![value.clone()]);
                }
            }
        }
        if !matched {
            continue;
        }
        // The query string is an input the upstream reads (frameworks merge it into the
        // path's parameters, `?force=true` changes an action): only the parameters the
        // route declares pass, each a record; any other is refused.
        for (name, _) in &target.query {
            if !r.query.contains(name) {
                return undecodable(format!(
                    "query parameter `{name}` is not declared by the route (`query` in the bundle)"
                ));
            }
        }
        for name in &r.query {
            if let Some(v) = target.single_param(name)? {
                records.insert(name.clone(), vec![v.to_string()]);
            }
        }
        route_body(r, head, body)?;
        let resource: String = r
            .resource
            .iter()
            .map(|p| match p {
                Seg::Lit(l) => l.clone(),
                Seg::Param(name) => records
                    .get(name)
                    .and_then(|v| v.first())
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let Some(action) = r.action.or_else(|| method_action(method)) else {
            return undecodable(format!("method {method} has no action"));
        };
        return Ok(vec![Operation::new(service, action, resource)
            .with_scope(r.scope)
            .with_records(records)]);
    }
    undecodable(format!(
        "no route of the service matches {method} /{}",
        rest.join("/")
    ))
}

// ---------------------------------------------------------------- DreamFactory

/// Query parameters DreamFactory's database services accept that do not change which
/// rows or tables a request reaches (or that this decoder reads itself).
const DF_PARAMS: &[&str] = &[
    "ids",
    "filter",
    "id_field",
    "id_type",
    "fields",
    "limit",
    "offset",
    "order",
    "group",
    "having",
    "include_count",
    "include_schema",
    "count_only",
    "continue",
    "rollback",
    "refresh",
    "returns",
    "wrapper",
    "schema",
];

fn dreamfactory(
    service: &str,
    default_id: &str,
    head: &RequestHead,
    rest: &[String],
    target: &Target,
    body: Option<&[u8]>,
) -> Result<Vec<Operation>, DecodeError> {
    let method = head.method.as_str();
    if matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS")
        && body.is_some_and(|b| !b.is_empty())
    {
        return undecodable(format!(
            "a {method} with a body: DreamFactory reads options (ids, filter, …) and records from it, which override the URL; send them in the URL"
        ));
    }
    for (name, _) in &target.query {
        if name == "related" {
            return undecodable(
                "`related=` reaches other tables through relationships; request each table itself",
            );
        }
        if !DF_PARAMS.contains(&name.as_str()) {
            return undecodable(format!("unknown DreamFactory query parameter `{name}`"));
        }
    }
    let id_field = match target.single_param("id_field")? {
        Some(f) if is_identifier(f) => f,
        Some(_) => return undecodable("`id_field` must name one column"),
        None => default_id,
    };
    let ids = target.single_param("ids")?;
    let filter = target.single_param("filter")?;
    let reads = matches!(method, "GET" | "HEAD");
    let op = |action: Action, resource: &str| Operation::new(service, action, resource);
    let segs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let single = |what: &str| -> Result<Vec<Operation>, DecodeError> {
        if reads {
            Ok(vec![op(Action::Read, what)])
        } else {
            undecodable(format!(
                "{method} on `{what}` is not a DreamFactory operation"
            ))
        }
    };
    match segs.as_slice() {
        [] => single("_service"),
        ["_table"] | ["_proc"] | ["_func"] => single(segs.first().copied().unwrap_or_default()),
        ["_table", table] => {
            let action = match method {
                "GET" | "HEAD" => Action::Read,
                "POST" => Action::Create,
                "PUT" | "PATCH" => Action::Update,
                "DELETE" => Action::Delete,
                _ => return undecodable(format!("method {method} on a DreamFactory table")),
            };
            let (scope, records) = match (ids, filter) {
                (Some(_), Some(_)) => return undecodable("both `ids` and `filter` given"),
                (Some(ids), None) => (Scope::Some, id_records(id_field, ids)?),
                (None, Some(f)) => {
                    let e = parse_df_filter(f)?;
                    let scope = if e.bounded() { Scope::Some } else { Scope::All };
                    (scope, e.records())
                }
                (None, None) => (Scope::All, Records::new()),
            };
            let scope = if action.writes_rows() {
                scope
            } else {
                Scope::Some
            };
            let op = op(action, table).with_scope(scope);
            // With the body: a create proves what it writes (`ids`/`filter` select no row
            // of a create), an update carries its post-image.
            Ok(vec![match df_rows(head, method, action, body, false)? {
                Some(rows) if action == Action::Create => op.with_records(rows.records()),
                Some(rows) => op.with_records(records).with_sets(rows.sets()),
                None => op.with_records(records),
            }])
        }
        ["_table", table, id] => {
            if ids.is_some() || filter.is_some() {
                return undecodable("a record path cannot also carry `ids` or `filter`");
            }
            let action = match method {
                "GET" | "HEAD" => Action::Read,
                "PUT" | "PATCH" => Action::Update,
                "DELETE" => Action::Delete,
                _ => return undecodable(format!("method {method} on a DreamFactory record")),
            };
            if id.contains(',') || id.trim() != *id {
                return undecodable("a record path names one id, without commas or spaces");
            }
            let mut records = Records::new();
            records.insert(id_field.to_string(), vec![id.to_string()]);
            let op = op(action, table).with_records(records);
            Ok(vec![match df_rows(head, method, action, body, true)? {
                Some(rows) => op.with_sets(rows.sets()),
                None => op,
            }])
        }
        ["_schema"] => match method {
            "GET" | "HEAD" => Ok(vec![op(Action::Read, "_schema")]),
            "POST" | "PUT" | "PATCH" => Ok(vec![op(Action::Alter, "_schema")]),
            _ => undecodable(format!("method {method} on `_schema`")),
        },
        ["_schema", table, more @ ..] => match method {
            // The table's definition, not its data (issue 18, class 5): its own resource.
            "GET" | "HEAD" => Ok(vec![op(Action::Read, &format!("_schema/{table}"))]),
            "POST" | "PUT" | "PATCH" => Ok(vec![op(Action::Alter, table)]),
            "DELETE" if more.is_empty() => Ok(vec![op(Action::Drop, table)]),
            "DELETE" => Ok(vec![op(Action::Alter, table)]),
            _ => undecodable(format!("method {method} on `_schema`")),
        },
        [kind @ ("_proc" | "_func"), name] => match method {
            "GET" | "POST" => Ok(vec![op(Action::Execute, &format!("{kind}/{name}"))]),
            _ => undecodable(format!("method {method} on a stored procedure or function")),
        },
        _ => undecodable(format!(
            "`/{}` is not a DreamFactory resource path",
            segs.join("/")
        )),
    }
}

fn id_records(id_field: &str, ids: &str) -> Result<Records, DecodeError> {
    let mut values = Vec::new();
    for id in ids.split(',') {
        if id.is_empty() {
            return undecodable("`ids` holds an empty id");
        }
        if id.trim() != id {
            return undecodable("`ids` holds an id with surrounding spaces");
        }
        values.push(id.to_string());
    }
    values.sort();
    values.dedup();
    let mut r = Records::new();
    r.insert(id_field.to_string(), values);
    Ok(r)
}

/// DreamFactory's SQL-like `filter=` grammar, strictly:
/// `expr := and (OR and)*`, `and := unary (AND unary)*`, `unary := NOT unary | (expr) | cmp`,
/// `cmp := column op value | column [NOT] IN (values) | column IS [NOT] NULL |
///         column [NOT] LIKE value | column CONTAINS|STARTS WITH|ENDS WITH value |
///         column BETWEEN value AND value`; values are quoted strings, numbers,
/// `true`, `false` or `null`. A column compared with a column, or a literal on the left,
/// is rejected (that is how `1=1` tautologies are written).
pub fn parse_df_filter(s: &str) -> Result<Expr, DecodeError> {
    let tokens = tokenize(s)?;
    let mut p = Parser { tokens, pos: 0 };
    let e = p.or()?;
    if p.pos != p.tokens.len() {
        return undecodable("trailing text in `filter`");
    }
    Ok(e)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, DecodeError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return undecodable("unterminated string in `filter`"),
                        Some(&q) if q == quote => {
                            if chars.get(i + 1) == Some(&quote) {
                                v.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some('\\') => {
                            return undecodable("backslash escapes in `filter` are ambiguous")
                        }
                        Some(&ch) => {
                            v.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('&', Some('&')) => ("AND", 2),
                    ('|', Some('|')) => ("OR", 2),
                    ('=', _) => ("=", 1),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => return undecodable(format!("unexpected `{c}` in `filter`")),
                };
                out.push(if op == "AND" || op == "OR" {
                    Tok::Word(op.to_string())
                } else {
                    Tok::Op(op)
                });
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.')
                {
                    i += 1;
                }
                let n: String = chars.get(start..i).unwrap_or_default().iter().collect();
                if n.parse::<f64>().is_err() || n.starts_with('+') {
                    return undecodable(format!("bad number `{n}` in `filter`"));
                }
                out.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == '.')
                {
                    i += 1;
                }
                out.push(Tok::Word(
                    chars.get(start..i).unwrap_or_default().iter().collect(),
                ));
            }
            other => return undecodable(format!("unexpected `{other}` in `filter`")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

const MAX_FILTER_DEPTH: usize = 32;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }
    fn depth_check(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_FILTER_DEPTH {
            return undecodable("`filter` nests too deeply");
        }
        Ok(())
    }
    fn or(&mut self) -> Result<Expr, DecodeError> {
        self.or_at(0)
    }
    fn or_at(&mut self, depth: usize) -> Result<Expr, DecodeError> {
        self.depth_check(depth)?;
        let mut parts = vec![self.and_at(depth)?];
        while self.keyword("OR") {
            parts.push(self.and_at(depth)?);
        }
        Ok(one_or(parts, Expr::Or))
    }
    fn and_at(&mut self, depth: usize) -> Result<Expr, DecodeError> {
        let mut parts = vec![self.unary(depth)?];
        while self.keyword("AND") {
            parts.push(self.unary(depth)?);
        }
        Ok(one_or(parts, Expr::And))
    }
    fn unary(&mut self, depth: usize) -> Result<Expr, DecodeError> {
        self.depth_check(depth)?;
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or_at(depth + 1)?;
            if self.next() != Some(Tok::RParen) {
                return undecodable("unbalanced parentheses in `filter`");
            }
            return Ok(e);
        }
        self.comparison()
    }
    fn value(&mut self) -> Result<String, DecodeError> {
        match self.next() {
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => Ok(s),
            Some(Tok::Word(w))
                if ["true", "false", "null"].contains(&w.to_ascii_lowercase().as_str()) =>
            {
                Ok(w.to_ascii_lowercase())
            }
            Some(Tok::Word(w)) => undecodable(format!(
                "`{w}` is not a literal: `filter` compares columns with literal values only"
            )),
            _ => undecodable("`filter` expects a literal value"),
        }
    }
    fn values_list(&mut self) -> Result<Vec<String>, DecodeError> {
        if self.next() != Some(Tok::LParen) {
            return undecodable("IN expects a parenthesised list");
        }
        let mut v = vec![self.value()?];
        loop {
            match self.next() {
                Some(Tok::Comma) => v.push(self.value()?),
                Some(Tok::RParen) => return Ok(v),
                _ => return undecodable("bad IN list in `filter`"),
            }
        }
    }
    fn comparison(&mut self) -> Result<Expr, DecodeError> {
        let column = match self.next() {
            Some(Tok::Word(w)) if !is_keyword(&w) => w,
            _ => return undecodable("`filter` terms start with a column name"),
        };
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let v = self.value()?;
            let cmp = match op {
                "=" if v == "null" => Cmp::Bounding,
                "=" => Cmp::Eq,
                "!=" => Cmp::NotEq,
                _ => Cmp::Bounding,
            };
            return Ok(Expr::term(column, cmp, vec![v]));
        }
        let word_op = |p: &mut Parser, w: &str| p.keyword(w);
        if word_op(self, "eq") {
            let v = self.value()?;
            return Ok(Expr::term(column, Cmp::Eq, vec![v]));
        }
        if word_op(self, "ne") {
            self.value()?;
            return Ok(Expr::term(column, Cmp::NotEq, vec![]));
        }
        for w in ["gt", "ge", "lt", "le", "gte", "lte"] {
            if word_op(self, w) {
                self.value()?;
                return Ok(Expr::term(column, Cmp::Bounding, vec![]));
            }
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return undecodable("IS expects NULL");
            }
            let t = Expr::term(column, Cmp::Bounding, vec![]);
            return Ok(if negated { Expr::Not(Box::new(t)) } else { t });
        }
        if self.keyword("BETWEEN") {
            self.value()?;
            if !self.keyword("AND") {
                return undecodable("BETWEEN expects AND");
            }
            self.value()?;
            return Ok(Expr::term(column, Cmp::Bounding, vec![]));
        }
        let negated = self.keyword("NOT");
        let t = if self.keyword("IN") {
            Expr::term(column, Cmp::Eq, self.values_list()?)
        } else if self.keyword("LIKE") {
            let pattern = self.value()?;
            Expr::term(column, like_cmp(&pattern, &['%', '_']), vec![])
        } else if !negated && self.keyword("CONTAINS") {
            let v = self.value()?;
            let cmp = if v.is_empty() {
                Cmp::Wildcard
            } else {
                Cmp::Bounding
            };
            Expr::term(column, cmp, vec![])
        } else if !negated && (self.keyword("STARTS") || self.keyword("ENDS")) {
            if !self.keyword("WITH") {
                return undecodable("STARTS/ENDS expects WITH");
            }
            let v = self.value()?;
            let cmp = if v.is_empty() {
                Cmp::Wildcard
            } else {
                Cmp::Bounding
            };
            Expr::term(column, cmp, vec![])
        } else {
            return undecodable(format!("unknown comparison after `{column}` in `filter`"));
        };
        Ok(if negated { Expr::Not(Box::new(t)) } else { t })
    }
}

/// A single operand as itself, several joined by `wrap`.
fn one_or(mut parts: Vec<Expr>, wrap: fn(Vec<Expr>) -> Expr) -> Expr {
    match parts.len() {
        1 => parts.pop().unwrap_or_else(|| wrap(Vec::new())),
        _ => wrap(parts),
    }
}

fn is_keyword(w: &str) -> bool {
    [
        "and", "or", "not", "in", "is", "null", "like", "true", "false",
    ]
    .contains(&w.to_ascii_lowercase().as_str())
}

/// `like`-style patterns made only of wildcards match every row.
fn like_cmp(pattern: &str, wildcards: &[char]) -> Cmp {
    if pattern.chars().all(|c| wildcards.contains(&c)) {
        Cmp::Wildcard
    } else {
        Cmp::Bounding
    }
}

// ---------------------------------------------------------------- PostgREST

/// Query parameters PostgREST reserves; every other parameter is a filter.
const PGRST_RESERVED: &[&str] = &[
    "select",
    "order",
    "limit",
    "offset",
    "on_conflict",
    "columns",
];

fn postgrest(
    service: &str,
    default_schema: &str,
    head: &RequestHead,
    rest: &[String],
    target: &Target,
    body: Option<&[u8]>,
) -> Result<Vec<Operation>, DecodeError> {
    let method = head.method.as_str();
    let segs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let schema = profile(head, default_schema)?;
    let qualify = |name: &str| match &schema {
        Some(s) => format!("{s}.{name}"),
        None => name.to_string(),
    };
    match segs.as_slice() {
        [] => match method {
            // The description of the schema the profile selects (PostgREST switches the
            // OpenAPI output with Accept-Profile): `private._openapi`, not the default's.
            "GET" | "HEAD" | "OPTIONS" => Ok(vec![Operation::new(
                service,
                Action::Read,
                qualify("_openapi"),
            )]),
            _ => undecodable(format!("{method} on the PostgREST root")),
        },
        ["rpc", function] => match method {
            "GET" | "HEAD" | "POST" => {
                let (records, unknown) = rpc_arguments(head, target, body)?;
                let mut ops = vec![Operation::new(
                    service,
                    Action::Execute,
                    format!("rpc/{}", qualify(function)),
                )
                .with_records(records)
                .with_unknown(unknown)];
                ops.extend(embedded_reads(service, target, &qualify)?);
                Ok(ops)
            }
            _ => undecodable(format!("{method} on a PostgREST function")),
        },
        [table] => {
            let filter = pgrst_filters(target)?;
            let bounded = filter.bounded();
            let records = filter.records();
            let resource = qualify(table);
            let op = |action: Action, scope: Scope| {
                Operation::new(service, action, resource.clone())
                    .with_scope(scope)
                    .with_records(records.clone())
            };
            let write_scope = if bounded { Scope::Some } else { Scope::All };
            let mut ops = match method {
                "GET" | "HEAD" | "OPTIONS" => vec![op(Action::Read, Scope::Some)],
                "POST" => {
                    let merge = prefers_merge(head)?;
                    let rows = pgrst_rows(head, target, body, false)?;
                    let create = Operation::new(service, Action::Create, resource.clone());
                    let update = Operation::new(service, Action::Update, resource.clone());
                    match rows {
                        None if merge => vec![create, update],
                        None => vec![create],
                        Some(rows) => {
                            let mut v = vec![create.with_records(rows.records())];
                            if merge {
                                // `ON CONFLICT (…) DO UPDATE SET c = EXCLUDED.c` for every
                                // column written: the row updated is the one whose conflict
                                // key equals a new row's (`on_conflict=`; the primary key,
                                // which the decoder does not know, without it).
                                let keys = conflict_columns(target)?;
                                let records: Records = rows
                                    .records()
                                    .into_iter()
                                    .filter(|(k, _)| keys.contains(k))
                                    .collect();
                                // Bounded only by keys read from every row.
                                let scope = upsert_scope(&keys, &records);
                                v.push(
                                    update
                                        .with_scope(scope)
                                        .with_records(records)
                                        .with_sets(rows.sets()),
                                );
                            }
                            v
                        }
                    }
                }
                "PUT" => {
                    let rows = pgrst_rows(head, target, body, true)?;
                    let create = op(Action::Create, Scope::Some);
                    let update = op(Action::Update, write_scope);
                    match rows {
                        None => vec![create, update],
                        // The row is inserted only if it satisfies the filter: it proves
                        // both what the filter and what the body say.
                        Some(rows) => vec![
                            create.with_records(both(&records, rows.records())),
                            update.with_sets(rows.sets()),
                        ],
                    }
                }
                "PATCH" => {
                    let update = op(Action::Update, write_scope);
                    match pgrst_rows(head, target, body, false)? {
                        Some(rows) => vec![update.with_sets(rows.sets())],
                        None => vec![update],
                    }
                }
                "DELETE" => vec![op(Action::Delete, write_scope)],
                _ => return undecodable(format!("method {method} on a PostgREST table")),
            };
            ops.extend(embedded_reads(service, target, &qualify)?);
            Ok(ops)
        }
        _ => undecodable(format!(
            "`/{}` is not a PostgREST resource path",
            segs.join("/")
        )),
    }
}

/// The schema a request addresses through `Accept-Profile`/`Content-Profile`,
/// `None` when it is the default one.
fn profile(head: &RequestHead, default_schema: &str) -> Result<Option<String>, DecodeError> {
    // PostgREST reads the schema from `Accept-Profile` on GET and HEAD, from
    // `Content-Profile` on every other method (RPC included): the other header would be
    // ignored upstream while the decoder read it, so it is refused, not guessed.
    let (used, ignored) = match head.method.as_str() {
        "GET" | "HEAD" | "OPTIONS" => ("accept-profile", "content-profile"),
        _ => ("content-profile", "accept-profile"),
    };
    if head.single_header(ignored)?.is_some() {
        return undecodable(format!(
            "`{ignored}` on a {} request: PostgREST picks the schema from `{used}` here and would ignore it",
            head.method
        ));
    }
    match head.single_header(used)? {
        None => Ok(None),
        Some(s) if s == default_schema => Ok(None),
        Some(s) if is_identifier(&s) => Ok(Some(s)),
        Some(_) => undecodable("profile header does not name one schema"),
    }
}

/// Whether `Prefer` asks for an upsert. A `resolution` preference in any other spelling
/// is refused: the upstream might read it as a merge the filter did not see.
fn prefers_merge(head: &RequestHead) -> Result<bool, DecodeError> {
    let Some(prefer) = head.single_header("prefer")? else {
        return Ok(false);
    };
    let mut merge = false;
    for token in prefer.split(',').map(str::trim) {
        match token {
            "resolution=merge-duplicates" => merge = true,
            "resolution=ignore-duplicates" => {}
            t if t.to_ascii_lowercase().contains("resolution") => {
                return undecodable(format!("unrecognised Prefer `{t}`"))
            }
            _ => {}
        }
    }
    Ok(merge)
}

/// Top-level filters of a PostgREST request, ANDed as PostgREST does.
fn pgrst_filters(target: &Target) -> Result<Expr, DecodeError> {
    let mut parts = Vec::new();
    for (name, value) in &target.query {
        if PGRST_RESERVED.contains(&name.as_str()) {
            continue;
        }
        let (negated, logic) = match name.as_str() {
            "and" | "or" => (false, name.as_str()),
            "not.and" => (true, "and"),
            "not.or" => (true, "or"),
            n if n.contains('.') => {
                // Filter or modifier on an embedded resource (`child.col=eq.1`): it
                // narrows the embedding, never the rows of the table addressed.
                let (_, last) = n.rsplit_once('.').unwrap_or((n, n));
                if PGRST_RESERVED.contains(&last) || last == "and" || last == "or" {
                    continue;
                }
                pgrst_term(last, value, false)?;
                continue;
            }
            column => {
                parts.push(pgrst_term(column, value, false)?);
                continue;
            }
        };
        let inner = value
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| DecodeError(format!("`{name}` expects a parenthesised list")))?;
        let tree = pgrst_logic(logic, inner, 0)?;
        parts.push(if negated {
            Expr::Not(Box::new(tree))
        } else {
            tree
        });
    }
    Ok(Expr::And(parts))
}

fn pgrst_logic(kind: &str, inner: &str, depth: usize) -> Result<Expr, DecodeError> {
    if depth > MAX_FILTER_DEPTH {
        return undecodable("logic tree nests too deeply");
    }
    let mut parts = Vec::new();
    for item in split_top(inner, ',')? {
        let (negated, item) = match item.strip_prefix("not.") {
            Some(rest) if rest.starts_with("and(") || rest.starts_with("or(") => (true, rest),
            _ => (false, item),
        };
        let e = if let Some(rest) = item
            .strip_prefix("and(")
            .or_else(|| item.strip_prefix("or("))
        {
            let sub = if item.starts_with("and(") {
                "and"
            } else {
                "or"
            };
            let body = rest
                .strip_suffix(')')
                .ok_or_else(|| DecodeError("unbalanced logic tree".to_string()))?;
            pgrst_logic(sub, body, depth + 1)?
        } else {
            let (column, filter) = item
                .split_once('.')
                .ok_or_else(|| DecodeError(format!("`{item}` is not a filter")))?;
            if !is_identifier(column) {
                return undecodable(format!("`{column}` is not a column"));
            }
            pgrst_term(column, filter, true)?
        };
        parts.push(if negated { Expr::Not(Box::new(e)) } else { e });
    }
    if parts.is_empty() {
        return undecodable("empty logic tree");
    }
    Ok(if kind == "and" {
        Expr::And(parts)
    } else {
        Expr::Or(parts)
    })
}

/// Splits on `sep` outside parentheses and double quotes.
fn split_top(s: &str, sep: char) -> Result<Vec<&str>, DecodeError> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0usize);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| DecodeError("unbalanced parentheses".to_string()))?;
            }
            c if c == sep && !quoted && depth == 0 => {
                out.push(s.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return undecodable("unbalanced parentheses or quotes");
    }
    out.push(s.get(start..).unwrap_or_default());
    Ok(out)
}

/// One PostgREST filter `[not.]op[(any|all)].value` on `column`. `in_tree`: the filter
/// sits in an `and=(…)`/`or=(…)` tree, where values may be double-quoted; a top-level
/// `eq` value is compared exactly as written.
fn pgrst_term(column: &str, filter: &str, in_tree: bool) -> Result<Expr, DecodeError> {
    if !is_identifier(column) {
        return undecodable(format!("`{column}` is not a column name"));
    }
    let (negated, filter) = match filter.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, filter),
    };
    let Some((op, arg)) = filter.split_once('.') else {
        return undecodable(format!("`{column}={filter}` has no operator"));
    };
    let (base, modifier) = match op.split_once('(') {
        Some((b, m)) if m == "any)" || m == "all)" => (b, true),
        Some((b, lang)) if b.ends_with("fts") && lang.ends_with(')') => (b, false),
        Some(_) => return undecodable(format!("bad operator `{op}`")),
        None => (op, false),
    };
    let cmp = match base {
        "eq" if !modifier => Cmp::Eq,
        "in" if !modifier => {
            let inner = arg
                .strip_prefix('(')
                .and_then(|a| a.strip_suffix(')'))
                .ok_or_else(|| DecodeError("`in` expects a parenthesised list".to_string()))?;
            let values = split_top(inner, ',')?
                .into_iter()
                .map(unquote)
                .collect::<Result<Vec<_>, _>>()?;
            let t = Expr::term(column, Cmp::Eq, values);
            return Ok(if negated { Expr::Not(Box::new(t)) } else { t });
        }
        "neq" | "isdistinct" | "match" | "imatch" => Cmp::NotEq,
        "like" | "ilike" => like_cmp(arg, &['*', '%', '_']),
        // `is.not_null` holds for every row of a NOT NULL column: it bounds nothing.
        "is" if arg == "not_null" => Cmp::NotEq,
        "is" => {
            if !["null", "true", "false", "unknown"].contains(&arg) {
                return undecodable(format!("`is.{arg}` is not a PostgREST value"));
            }
            Cmp::Bounding
        }
        "eq" | "gt" | "gte" | "lt" | "lte" | "fts" | "plfts" | "phfts" | "wfts" | "cs" | "cd"
        | "ov" | "sl" | "sr" | "nxr" | "nxl" | "adj" => Cmp::Bounding,
        other => return undecodable(format!("unknown PostgREST operator `{other}`")),
    };
    let values = if cmp == Cmp::Eq && in_tree {
        vec![unquote(arg)?]
    } else if cmp == Cmp::Eq {
        vec![arg.to_string()]
    } else {
        vec![]
    };
    let t = Expr::term(column, cmp, values);
    Ok(if negated { Expr::Not(Box::new(t)) } else { t })
}

/// A value as PostgREST reads it inside `in.(…)` lists and logic trees: double quotes
/// delimit (with backslash escapes). Nothing is trimmed: a proof must name exactly what
/// the upstream compares, and an untrimmed value can only fail to match a grant.
fn unquote(v: &str) -> Result<String, DecodeError> {
    match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) => out.push(e),
                        None => return undecodable("dangling escape"),
                    },
                    '"' => return undecodable("stray quote in value"),
                    c => out.push(c),
                }
            }
            Ok(out)
        }
        None if v.contains('"') => undecodable("stray quote in value"),
        None => Ok(v.to_string()),
    }
}

/// Reads of embedded resources named in `select` (`select=*,vehicles(*)`), which
/// PostgREST joins in: each is a read of that table.
/// A PostgREST function call's arguments, as records (issue 18, class 3): on a POST the
/// JSON body's members (an array of objects calls once per object: every object's
/// values); on GET/HEAD every parameter PostgREST does not reserve — it passes those
/// naming a parameter of the function as arguments and filters the result on the rest,
/// and which is which depends on the function's signature, so each counts as both. A
/// POST body that was not held (no grant or guard needs it) leaves every argument
/// unknown (`*`): a guard's argument condition then matches, a `records` grant does not.
fn rpc_arguments(
    head: &RequestHead,
    target: &Target,
    body: Option<&[u8]>,
) -> Result<(Records, Vec<String>), DecodeError> {
    let mut records = Records::new();
    if head.method != "POST" {
        for (name, value) in &target.query {
            if !PGRST_RESERVED.contains(&name.as_str()) {
                records.entry(name.clone()).or_default().push(value.clone());
            }
        }
        return Ok((records, Vec::new()));
    }
    let Some(body) = body else {
        return Ok((records, vec!["*".to_string()]));
    };
    if body.is_empty() {
        return Ok((records, Vec::new()));
    }
    body_media(head, Reader::PostgRest)?;
    for object in &pgrst_objects(parse_strict(body)?, "function")? {
        for (name, value) in object {
            record_json(name, value, &mut records);
        }
    }
    for values in records.values_mut() {
        values.sort();
        values.dedup();
    }
    Ok((records, Vec::new()))
}

/// A route's body (issue 18, class 3). Frameworks merge body parameters with the path's
/// and the query's (Rails `params`, Laravel `input()`, PHP `$_REQUEST`), so a body member
/// named like a route's `{param}` or a declared query parameter may override what the
/// decision was made on: refused. A route with no parameters forwards any body; one with
/// parameters accepts a JSON or form-encoded body (whose names can be read) and no other.
fn route_body(r: &Route, head: &RequestHead, body: Option<&[u8]>) -> Result<(), DecodeError> {
    let params: Vec<&str> = r
        .segments
        .iter()
        .filter_map(|s| match s {
            Seg::Param(p) => Some(p.as_str()),
            Seg::Lit(_) => None,
        })
        .chain(r.query.iter().map(String::as_str))
        .collect();
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return Ok(());
    };
    if params.is_empty() {
        return Ok(());
    }
    let shadow = |name: &str| -> Result<(), DecodeError> {
        match params.iter().find(|p| p.eq_ignore_ascii_case(name)) {
            Some(p) => undecodable(format!(
                "body member `{name}` beside the route's parameter `{p}`: a framework may merge it over the value decided on"
            )),
            None => Ok(()),
        }
    };
    let media = content_type(
        head,
        &["application/json", "application/x-www-form-urlencoded"],
        "a body on a route with parameters (whose names must be read)",
    )?;
    match media {
        "application/json" => {
            let objects = match parse_strict(body)? {
                Json::Object(m) => vec![m],
                Json::Array(items) => items
                    .into_iter()
                    .filter_map(|i| match i {
                        Json::Object(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for o in &objects {
                for name in o.keys() {
                    shadow(name)?;
                }
            }
            Ok(())
        }
        _ => {
            // application/x-www-form-urlencoded
            let text = std::str::from_utf8(body)
                .or_else(|_| undecodable("a form body that is not UTF-8"))?;
            let form = Target::parse(&format!("/?{text}"))?;
            for (name, _) in &form.query {
                // `id[]`, `id[x]`: the same parameter to PHP and Rails.
                shadow(name.split('[').next().unwrap_or(name))?;
            }
            Ok(())
        }
    }
}

fn embedded_reads(
    service: &str,
    target: &Target,
    qualify: &dyn Fn(&str) -> String,
) -> Result<Vec<Operation>, DecodeError> {
    let mut ops = Vec::new();
    for select in target.params("select") {
        collect_embeds(select, 0, &mut |name| {
            ops.push(Operation::new(service, Action::Read, qualify(name)));
        })?;
    }
    Ok(ops)
}

fn collect_embeds(
    select: &str,
    depth: usize,
    out: &mut dyn FnMut(&str),
) -> Result<(), DecodeError> {
    if depth > MAX_FILTER_DEPTH {
        return undecodable("`select` nests too deeply");
    }
    for item in split_top(select, ',')? {
        let item = item.trim();
        let Some(open) = item.find('(') else {
            continue;
        };
        let head = item.get(..open).unwrap_or_default();
        let inner = item
            .get(open + 1..)
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| DecodeError(format!("bad `select` item `{item}`")))?;
        let head = head.strip_prefix("...").unwrap_or(head);
        // `alias:name!hint` — an alias is `x:`, a cast `::` never precedes `(`.
        let name = match head.split_once(':') {
            Some((_, n)) if !n.starts_with(':') => n,
            Some(_) => return undecodable(format!("bad `select` item `{item}`")),
            None => head,
        };
        let name = name.split('!').next().unwrap_or_default();
        if inner.trim().is_empty() && (name == "count" || name.contains('.')) {
            continue; // aggregate: `count()`, `amount.sum()`
        }
        if !is_identifier(name) {
            return undecodable(format!("`{name}` in `select` is not a resource name"));
        }
        out(name);
        collect_embeds(inner, depth + 1, out)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- Write bodies

/// Which upstream reads a write body: how it treats nested values and strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    PostgRest,
    DreamFactory,
}

/// The rows a write's body holds.
#[derive(Debug, Default)]
struct Rows {
    /// Each row: column → its value as text, `None` when the value proves nothing (JSON
    /// null, a nested value, a fraction, a DreamFactory lookup).
    rows: Vec<BTreeMap<String, Option<String>>>,
    /// The columns the write assigns: PostgREST's `columns=`, else every key of the rows.
    columns: BTreeSet<String>,
}

impl Rows {
    /// The values every row gives `column`, when each gives it a scalar.
    fn values(&self, column: &str) -> Option<Vec<String>> {
        let mut values: Vec<String> = self
            .rows
            .iter()
            .map(|r| r.get(column).cloned().flatten())
            .collect::<Option<_>>()?;
        values.sort();
        values.dedup();
        Some(values)
    }

    /// What a create proves about the rows it makes, as `INSERT … VALUES` does: each
    /// column every row gives a scalar, with those values. A column a row leaves out, or
    /// gives null or a nested value, proves nothing.
    fn records(&self) -> Records {
        if self.rows.is_empty() {
            return Records::new();
        }
        self.columns
            .iter()
            .filter_map(|c| Some((c.clone(), self.values(c)?)))
            .collect()
    }

    /// What an update assigns: each column written → the scalar values it gets, or `None`
    /// (null, a nested value, or a row that leaves it out and so writes NULL or the default).
    fn sets(&self) -> Sets {
        if self.rows.is_empty() {
            return Sets::new();
        }
        self.columns
            .iter()
            .map(|c| (c.clone(), self.values(c)))
            .collect()
    }

    fn from_objects(
        objects: Vec<Map<String, Json>>,
        columns: Option<Vec<String>>,
        reader: Reader,
    ) -> Result<Rows, DecodeError> {
        let mut rows = Vec::with_capacity(objects.len());
        let mut keys = BTreeSet::new();
        for object in objects {
            let mut folded = BTreeSet::new();
            let mut row = BTreeMap::new();
            for (key, value) in object {
                if !is_identifier(&key) {
                    return undecodable(format!("body key {key:?} is not a plain column name"));
                }
                // DreamFactory matches keys to columns case-insensitively (so do some
                // databases): two spellings of one column are two values for it.
                if !folded.insert(key.to_ascii_lowercase()) {
                    return undecodable(format!(
                        "body keys that differ only in case ({key:?}) may name one column"
                    ));
                }
                let value = scalar(&key, &value, reader)?;
                keys.insert(key.clone());
                row.insert(key, value);
            }
            rows.push(row);
        }
        let columns = match columns {
            Some(listed) => listed.into_iter().collect(),
            None => keys,
        };
        Ok(Rows { rows, columns })
    }
}

/// A body value as the text a grant compares, `None` when it proves nothing.
fn scalar(key: &str, value: &Json, reader: Reader) -> Result<Option<String>, DecodeError> {
    Ok(match value {
        // DreamFactory replaces `{lookup}` references in record values server-side.
        Json::String(s) if reader == Reader::DreamFactory && s.contains('{') => None,
        Json::String(s) => Some(s.clone()),
        Json::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        // A fraction or an exponent: its text here need not be the value stored.
        Json::Number(_) => None,
        Json::Bool(b) => Some(b.to_string()),
        Json::Null => None,
        Json::Array(_) | Json::Object(_) if reader == Reader::DreamFactory => {
            return undecodable(format!(
                "nested value for {key:?}: DreamFactory writes related tables from nested records; write each table itself"
            ))
        }
        // A json/array column: written, but with no value a grant can compare.
        Json::Array(_) | Json::Object(_) => None,
    })
}

/// The body's media type: JSON only. PostgREST also reads a body without content-type as
/// JSON; its form and CSV bodies are refused rather than modelled.
fn body_media(head: &RequestHead, reader: Reader) -> Result<(), DecodeError> {
    let raw =
        match head.header("content-type") {
            HeaderValue::Absent if reader == Reader::PostgRest => return Ok(()),
            HeaderValue::Absent => return undecodable(
                "a DreamFactory write without content-type: send its records as application/json",
            ),
            HeaderValue::Repeated => return undecodable("repeated content-type header"),
            HeaderValue::One(v) => String::from_utf8_lossy(v).to_ascii_lowercase(),
        };
    let media = raw.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json" => content_type(head, &["application/json"], "JSON").map(|_| ()),
        "application/x-www-form-urlencoded" | "text/csv" => undecodable(format!(
            "a `{media}` write body is not decoded: this role's grants check the values a write assigns, which scopegate reads from JSON only; send the rows as application/json"
        )),
        _ => undecodable(format!(
            "content-type `{raw}`: a write body is decoded as application/json only"
        )),
    }
}

/// The body as strict JSON; an empty one is refused (PostgREST and DreamFactory refuse a
/// write without rows too, and no rows prove nothing).
fn parse_body(body: &[u8]) -> Result<Json, DecodeError> {
    if body.is_empty() {
        return undecodable("the write has no body: the rows it writes must be read to decide");
    }
    parse_strict(body)
}

/// The rows of a PostgREST POST/PATCH/PUT body (`None`: the body was not read).
fn pgrst_rows(
    head: &RequestHead,
    target: &Target,
    body: Option<&[u8]>,
    put: bool,
) -> Result<Option<Rows>, DecodeError> {
    let Some(body) = body else {
        return Ok(None);
    };
    body_media(head, Reader::PostgRest)?;
    // `columns=`: only the listed keys are written (a listed key a row lacks gets NULL or
    // its default). PostgREST ignores it on PUT, where every key is written.
    let columns = match target.single_param("columns")? {
        None => None,
        Some(_) if put => {
            return undecodable(
                "`columns` on a PUT: PostgREST ignores it there and writes every key of the body; leave it out",
            )
        }
        Some(list) => Some(identifier_list(list, "columns")?),
    };
    let objects = pgrst_objects(parse_body(body)?, "write")?;
    Rows::from_objects(objects, columns, Reader::PostgRest).map(Some)
}

/// A PostgREST body's objects: one object, or an array of objects (a bulk write; a
/// function called once per object).
fn pgrst_objects(body: Json, what: &str) -> Result<Vec<Map<String, Json>>, DecodeError> {
    match body {
        Json::Object(m) => Ok(vec![m]),
        Json::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Json::Object(m) => Ok(m),
                _ => undecodable(format!("a PostgREST {what} body array holds objects only")),
            })
            .collect(),
        _ => undecodable(format!(
            "a PostgREST {what} body is an object or an array of objects"
        )),
    }
}

/// The records of a DreamFactory POST/PATCH on `_table/{t}` (a JSON array of records,
/// `{"resource": [...]}`, or one record) or on `_table/{t}/{id}` (one record object).
/// `None` when the body was not read or the action writes no rows.
fn df_rows(
    head: &RequestHead,
    method: &str,
    action: Action,
    body: Option<&[u8]>,
    record_path: bool,
) -> Result<Option<Rows>, DecodeError> {
    let Some(body) = body else {
        return Ok(None);
    };
    if !matches!(action, Action::Create | Action::Update) {
        return Ok(None);
    }
    if method == "PUT" {
        return undecodable(
            "DreamFactory PUT replaces whole records on some databases (MongoDB), clearing the fields it leaves out: what it assigns cannot be read from the body; use PATCH",
        );
    }
    body_media(head, Reader::DreamFactory)?;
    let doc = parse_body(body)?;
    let records = |items: Vec<Json>| -> Result<Vec<Map<String, Json>>, DecodeError> {
        items
            .into_iter()
            .map(|i| match i {
                Json::Object(m) => Ok(m),
                _ => undecodable("a DreamFactory record list holds objects only"),
            })
            .collect()
    };
    // Whether the records came in a list (`[…]` or `{"resource": […]}`) or bare.
    enum DocKind {
        List,
        Bare,
    }
    let doc_kind = match &doc {
        Json::Array(_) => DocKind::List,
        Json::Object(m) if !record_path && m.contains_key("resource") => DocKind::List,
        _ => DocKind::Bare,
    };
    let objects = match doc {
        Json::Object(m) if record_path => vec![m],
        _ if record_path => {
            return undecodable("a DreamFactory record path takes one record object")
        }
        Json::Array(items) => records(items)?,
        Json::Object(mut m) if m.contains_key("resource") => {
            if m.len() != 1 {
                return undecodable(
                    "members beside `resource` in a DreamFactory body are read as request options: send them as query parameters",
                );
            }
            match m.remove("resource") {
                Some(Json::Array(items)) => records(items)?,
                _ => return undecodable("`resource` is not an array of records"),
            }
        }
        Json::Object(m) => vec![m],
        _ => return undecodable(
            "a DreamFactory write body is a record, a list of records, or {\"resource\": [...]}",
        ),
    };
    // A record sent bare (not in a list or `resource`) shares the body's top level with
    // request options: DreamFactory would read `ids`, `filter`, … there as options.
    if !matches!(doc_kind, DocKind::List) {
        if let Some(k) = objects
            .iter()
            .flat_map(|o| o.keys())
            .find(|k| DF_PARAMS.contains(&k.as_str()) || k.as_str() == "related")
        {
            return undecodable(format!(
                "`{k}` at the top of a DreamFactory body is read as a request option: send options as query parameters and records as {{\"resource\": [...]}}"
            ));
        }
    }
    Rows::from_objects(objects, None, Reader::DreamFactory).map(Some)
}

/// `a,b,c` where each is a plain column name.
fn identifier_list(list: &str, what: &str) -> Result<Vec<String>, DecodeError> {
    list.split(',')
        .map(|c| {
            if is_identifier(c) {
                Ok(c.to_string())
            } else {
                undecodable(format!("`{what}` lists {c:?}, not a plain column name"))
            }
        })
        .collect()
}

/// The columns of PostgREST's `on_conflict=` (none: the primary key, unknown here).
fn conflict_columns(target: &Target) -> Result<Vec<String>, DecodeError> {
    match target.single_param("on_conflict")? {
        Some(list) => identifier_list(list, "on_conflict"),
        None => Ok(Vec::new()),
    }
}

/// What a row proves that satisfies both `a` and `b`: per column, the values in both.
fn both(a: &Records, b: Records) -> Records {
    let mut out = a.clone();
    for (column, values) in b {
        match out.get_mut(&column) {
            Some(known) => known.retain(|v| values.contains(v)),
            None => {
                out.insert(column, values);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Route as RouteCfg;

    fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHead {
        let mut h = vec![
            (":method".to_string(), method.as_bytes().to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            (":authority".to_string(), b"api.test".to_vec()),
        ];
        for (n, v) in headers {
            h.push((n.to_string(), v.as_bytes().to_vec()));
        }
        RequestHead::from_headers(h).unwrap()
    }

    fn decoder(style: RestStyle, prefix: &str, routes: Option<Vec<RouteCfg>>) -> RestDecoder {
        let cfg = RestConfig {
            style,
            base_path: None,
            id_field: None,
            default_schema: None,
            routes,
        };
        let mut errs = Vec::new();
        let prefix = config_segments(prefix).unwrap();
        let d = RestDecoder::compile(&cfg, &prefix, "services[0].rest", &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        d.unwrap()
    }

    /// Renders ops compactly: `action resource scope {records}`.
    fn show(ops: &[Operation]) -> Vec<String> {
        ops.iter()
            .map(|o| {
                let mut s = format!(
                    "{} {} {}",
                    o.action,
                    o.resource,
                    if o.scope == Scope::All { "all" } else { "some" }
                );
                if !o.records.is_empty() {
                    s.push_str(&format!(" {:?}", o.records));
                }
                if !o.sets.is_empty() {
                    s.push_str(&format!(" sets {:?}", o.sets));
                }
                s
            })
            .collect()
    }

    fn run(
        d: &RestDecoder,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Vec<String>, String> {
        run_body(d, method, path, headers, None)
    }

    /// `run` with the body the pipeline hands over when a grant checks record values.
    fn run_body(
        d: &RestDecoder,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let h = head(method, path, headers);
        let t = Target::parse(&h.path).map_err(|e| e.0)?;
        d.decode("svc", &h, &t, body.map(str::as_bytes))
            .map(|ops| show(&ops))
            .map_err(|e| e.0)
    }

    #[test]
    fn dreamfactory_table() {
        let d = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
        let ok: &[(&str, &str, &[&str])] = &[
            ("GET", "/api/v2/rentals/_table/reservations", &["read reservations some"]),
            ("GET", "/api/v2/rentals/_table/reservations?limit=5&fields=id", &["read reservations some"]),
            ("DELETE", "/api/v2/rentals/_table/reservations", &["delete reservations all"]),
            ("PATCH", "/api/v2/rentals/_table/reservations", &["update reservations all"]),
            ("POST", "/api/v2/rentals/_table/reservations", &["create reservations some"]),
            ("DELETE", "/api/v2/rentals/_table/reservations?ids=r-2,r-1", &[r#"delete reservations some {"id": ["r-1", "r-2"]}"#]),
            ("DELETE", "/api/v2/rentals/_table/reservations?ids=7&id_field=vehicle_id", &[r#"delete reservations some {"vehicle_id": ["7"]}"#]),
            ("DELETE", "/api/v2/rentals/_table/reservations/r-17", &[r#"delete reservations some {"id": ["r-17"]}"#]),
            ("GET", "/api/v2/rentals/_table/reservations/r%2017", &[r#"read reservations some {"id": ["r 17"]}"#]),
            ("DELETE", "/api/v2/rentals/_table/reservations?filter=(tenant_id%3D'acme')%20and%20(starts_at<'2024-01-01')", &[r#"delete reservations some {"tenant_id": ["acme"]}"#]),
            ("DELETE", "/api/v2/rentals/_table/reservations?filter=id%20IN%20('a','b')", &[r#"delete reservations some {"id": ["a", "b"]}"#]),
            ("DELETE", "/api/v2/rentals/_table/reservations?filter=id!%3D'x'", &["delete reservations all"]),
            ("DELETE", "/api/v2/rentals/_table/reservations?filter=name%20like%20'%25'", &["delete reservations all"]),
            ("DELETE", "/api/v2/rentals/_table/reservations?filter=(id%3D1)%20or%20(name%20is%20not%20null)", &["delete reservations all"]),
            ("DELETE", "/api/v2/rentals/_table/reservations?filter=(id%3D1)%20or%20(id%3D2)", &[r#"delete reservations some {"id": ["1", "2"]}"#]),
            ("GET", "/api/v2/rentals/_table", &["read _table some"]),
            ("GET", "/api/v2/rentals", &["read _service some"]),
            ("DELETE", "/api/v2/rentals/_schema/reservations", &["drop reservations some"]),
            ("PATCH", "/api/v2/rentals/_schema/reservations", &["alter reservations some"]),
            ("DELETE", "/api/v2/rentals/_schema/reservations/_field/notes", &["alter reservations some"]),
            ("POST", "/api/v2/rentals/_schema", &["alter _schema some"]),
            ("GET", "/api/v2/rentals/_schema/reservations", &["read _schema/reservations some"]),
            ("POST", "/api/v2/rentals/_proc/cleanup", &["execute _proc/cleanup some"]),
            ("GET", "/api/v2/rentals/_func/total", &["execute _func/total some"]),
        ];
        for (m, p, want) in ok {
            assert_eq!(run(&d, m, p, &[]).unwrap(), *want, "{m} {p}");
        }
        let denied: &[(&str, &str, &str)] = &[
            (
                "GET",
                "/api/v2/rentals/_table/reservations?related=vehicle_by_vehicle_id",
                "related",
            ),
            (
                "GET",
                "/api/v2/rentals/_table/reservations?foo=1",
                "unknown DreamFactory query parameter",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?ids=1&ids=2",
                "repeated",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?ids=1&filter=id%3D1",
                "both",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?ids=1,,2",
                "empty id",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?ids=1,%202",
                "surrounding spaces",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations/1,2",
                "one id",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?filter=1%3D1",
                "column name",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?filter=id%3Did",
                "not a literal",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?filter=id%3D'1'%20--",
                "bad number",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?filter=id%3D'1'%3B",
                "unexpected `;`",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?filter=id%3D'a\\'",
                "backslash",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations/1?ids=2",
                "record path",
            ),
            (
                "POST",
                "/api/v2/rentals/_table/reservations/1",
                "DreamFactory record",
            ),
            (
                "DELETE",
                "/api/v2/rentals/_table/reservations?_method=GET",
                "unknown DreamFactory query parameter",
            ),
            (
                "GET",
                "/api/v2/rentals/_user/session",
                "not a DreamFactory resource path",
            ),
            (
                "GET",
                "/api/v2/rentalsx/_table/reservations",
                "outside the service's base path",
            ),
            (
                "TRACE",
                "/api/v2/rentals/_table/reservations",
                "method TRACE",
            ),
            ("DELETE", "/api/v2/rentals/_schema", "method DELETE"),
        ];
        for (m, p, why) in denied {
            let err = run(&d, m, p, &[]).unwrap_err();
            assert!(err.contains(why), "{m} {p}: {err}");
        }
    }

    type Headers<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn postgrest_table() {
        let d = decoder(RestStyle::Postgrest, "/rest", None);
        let ok: &[(&str, &str, Headers, &[&str])] = &[
            (
                "GET",
                "/rest/reservations?select=id,customer&id=eq.r-1",
                &[],
                &[r#"read reservations some {"id": ["r-1"]}"#],
            ),
            (
                "GET",
                "/rest/reservations?select=*,vehicles(*)",
                &[],
                &["read reservations some", "read vehicles some"],
            ),
            (
                "GET",
                "/rest/reservations?select=id,car:vehicles!fk_vehicle(model,owners(name))",
                &[],
                &[
                    "read reservations some",
                    "read vehicles some",
                    "read owners some",
                ],
            ),
            (
                "GET",
                "/rest/reservations?select=count(),amount.sum()",
                &[],
                &["read reservations some"],
            ),
            (
                "DELETE",
                "/rest/reservations",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?limit=1&order=id",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?id=eq.r-17",
                &[],
                &[r#"delete reservations some {"id": ["r-17"]}"#],
            ),
            (
                "DELETE",
                "/rest/reservations?id=in.(r-1,\"r,2\")",
                &[],
                &[r#"delete reservations some {"id": ["r,2", "r-1"]}"#],
            ),
            (
                "DELETE",
                "/rest/reservations?id=eq.%22r-1%22",
                &[],
                &[r#"delete reservations some {"id": ["\"r-1\""]}"#],
            ),
            (
                "DELETE",
                "/rest/reservations?or=(id.eq.%22r-1%22)",
                &[],
                &[r#"delete reservations some {"id": ["r-1"]}"#],
            ),
            (
                "DELETE",
                "/rest/reservations?id=not.eq.r-17",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?id=neq.r-17",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?customer=like.*",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?customer=like.A*",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?starts_at=lt.2024-01-01",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?vehicles.id=eq.1",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?or=(id.eq.a,id.eq.b)",
                &[],
                &[r#"delete reservations some {"id": ["a", "b"]}"#],
            ),
            (
                "DELETE",
                "/rest/reservations?or=(id.eq.a,customer.not.is.null)",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?not.or=(id.eq.a,id.eq.b)",
                &[],
                &["delete reservations all"],
            ),
            (
                "DELETE",
                "/rest/reservations?and=(tenant_id.eq.acme,or(id.eq.1,id.eq.2))",
                &[],
                &[r#"delete reservations some {"id": ["1", "2"], "tenant_id": ["acme"]}"#],
            ),
            (
                "PATCH",
                "/rest/reservations?tenant_id=eq.acme&tenant_id=eq.globex",
                &[],
                &["update reservations all"],
            ),
            (
                "PATCH",
                "/rest/reservations",
                &[],
                &["update reservations all"],
            ),
            (
                "POST",
                "/rest/reservations",
                &[],
                &["create reservations some"],
            ),
            (
                "POST",
                "/rest/reservations?on_conflict=id",
                &[("prefer", "return=minimal, resolution=merge-duplicates")],
                &["create reservations some", "update reservations some"],
            ),
            (
                "PUT",
                "/rest/reservations?id=eq.r-1",
                &[],
                &[
                    r#"create reservations some {"id": ["r-1"]}"#,
                    r#"update reservations some {"id": ["r-1"]}"#,
                ],
            ),
            (
                "GET",
                "/rest/reservations",
                &[("accept-profile", "private")],
                &["read private.reservations some"],
            ),
            (
                "GET",
                "/rest/reservations",
                &[("accept-profile", "public")],
                &["read reservations some"],
            ),
            (
                "DELETE",
                "/rest/reservations?id=eq.1",
                &[("content-profile", "audit")],
                &[r#"delete audit.reservations some {"id": ["1"]}"#],
            ),
            (
                "POST",
                "/rest/rpc/purge_old",
                &[],
                &["execute rpc/purge_old some"],
            ),
            ("GET", "/rest/", &[], &["read _openapi some"]),
        ];
        for (m, p, h, want) in ok {
            assert_eq!(run(&d, m, p, h).unwrap(), *want, "{m} {p}");
        }
        let denied: &[(&str, &str, Headers, &str)] = &[
            (
                "DELETE",
                "/rest/reservations?id=bogus.1",
                &[],
                "unknown PostgREST operator",
            ),
            ("DELETE", "/rest/reservations?id=1", &[], "no operator"),
            (
                "POST",
                "/rest/reservations",
                &[("prefer", "resolution=Merge-Duplicates")],
                "unrecognised Prefer",
            ),
            (
                "DELETE",
                "/rest/reservations/1",
                &[],
                "not a PostgREST resource path",
            ),
            (
                "DELETE",
                "/rest/reservations?or=(id.eq.a",
                &[],
                "parenthesised",
            ),
            ("DELETE", "/rest/reservations?or=()", &[], "not a filter"),
            (
                "GET",
                "/rest/reservations?select=*,bad%20name(*)",
                &[],
                "not a resource name",
            ),
            (
                "GET",
                "/rest/reservations",
                &[("accept-profile", "a"), ("content-profile", "b")],
                "would ignore it",
            ),
            // Issue 18, class 3: the header the method does not use is refused.
            (
                "GET",
                "/rest/reservations",
                &[("content-profile", "private")],
                "`content-profile` on a GET request",
            ),
            (
                "DELETE",
                "/rest/reservations?id=eq.1",
                &[("accept-profile", "audit")],
                "`accept-profile` on a DELETE request",
            ),
            (
                "POST",
                "/rest/rpc/purge_old",
                &[("accept-profile", "audit")],
                "`accept-profile` on a POST request",
            ),
            (
                "GET",
                "/rest/reservations",
                &[("accept-profile", "a"), ("accept-profile", "b")],
                "repeated",
            ),
            (
                "GET",
                "/rest/reservations",
                &[("accept-profile", "a b")],
                "one schema",
            ),
            (
                "POST",
                "/rest/reservations",
                &[("prefer", "a"), ("prefer", "b")],
                "repeated",
            ),
            ("DELETE", "/rest/", &[], "root"),
        ];
        for (m, p, h, why) in denied {
            let err = run(&d, m, p, h).unwrap_err();
            assert!(err.contains(why), "{m} {p}: {err}");
        }
    }

    #[test]
    fn route_templates() {
        let r = |methods: &[&str],
                 path: &str,
                 resource: &str,
                 action: Option<&str>,
                 scope: Option<&str>| RouteCfg {
            methods: methods.iter().map(|s| s.to_string()).collect(),
            path: path.to_string(),
            resource: resource.to_string(),
            action: action.map(str::to_string),
            scope: scope.map(str::to_string),
            query: None,
        };
        let d = decoder(
            RestStyle::Routes,
            "/v1",
            Some(vec![
                r(&["GET"], "/reservations", "reservations", None, None),
                r(
                    &["DELETE"],
                    "/reservations",
                    "reservations",
                    None,
                    Some("all"),
                ),
                r(
                    &["GET", "DELETE"],
                    "/reservations/{id}",
                    "reservations",
                    None,
                    None,
                ),
                r(
                    &["POST"],
                    "/reservations/{id}/cancel",
                    "reservations",
                    Some("update"),
                    None,
                ),
                r(&["GET"], "/tables/{table}/rows", "db.{table}", None, None),
                RouteCfg {
                    query: Some(vec!["limit".into(), "tenant".into()]),
                    ..r(&["GET"], "/orders", "orders", None, None)
                },
            ]),
        );
        let ok: &[(&str, &str, &[&str])] = &[
            ("GET", "/v1/reservations", &["read reservations some"]),
            ("DELETE", "/v1/reservations", &["delete reservations all"]),
            (
                "DELETE",
                "/v1/reservations/r-1",
                &[r#"delete reservations some {"id": ["r-1"]}"#],
            ),
            (
                "POST",
                "/v1/reservations/r-1/cancel",
                &[r#"update reservations some {"id": ["r-1"]}"#],
            ),
            (
                "GET",
                "/v1/tables/payments/rows",
                &[r#"read db.payments some {"table": ["payments"]}"#],
            ),
            // Declared query parameters are records.
            (
                "GET",
                "/v1/orders?tenant=acme&limit=5",
                &[r#"read orders some {"limit": ["5"], "tenant": ["acme"]}"#],
            ),
        ];
        for (m, p, want) in ok {
            assert_eq!(run(&d, m, p, &[]).unwrap(), *want, "{m} {p}");
        }
        // Issue 18, class 3: a query parameter the route does not declare is refused (a
        // framework may merge `?id=` into the path's `{id}`, `?force=true` changes an action).
        for (m, p, want) in [
            (
                "DELETE",
                "/v1/reservations/r-1?id=r-2",
                "`id` is not declared",
            ),
            (
                "POST",
                "/v1/reservations/r-1/cancel?force=true",
                "`force` is not declared",
            ),
            ("GET", "/v1/orders?tenant=acme&tenant=globex", "repeated"),
        ] {
            let e = run(&d, m, p, &[]).unwrap_err();
            assert!(e.contains(want), "{m} {p}: {e}");
        }
        for (m, p) in [
            ("PUT", "/v1/reservations/r-1"),
            ("GET", "/v1/reservations/r-1/x"),
            ("GET", "/v1/other"),
        ] {
            assert!(
                run(&d, m, p, &[]).unwrap_err().contains("no route"),
                "{m} {p}"
            );
        }
        let mut errs = Vec::new();
        let bad = RestConfig {
            style: RestStyle::Routes,
            base_path: None,
            id_field: Some("x".into()),
            default_schema: None,
            routes: Some(vec![
                r(&["GET"], "/a/{b c}", "x", None, None),
                r(&["BREW"], "/a", "x", None, None),
                r(
                    &["GET"],
                    "/a/{id}",
                    "{nope}",
                    Some("obliterate"),
                    Some("most"),
                ),
            ]),
        };
        RestDecoder::compile(&bad, &[], "services[2].rest", &mut errs);
        let paths: Vec<String> = errs.iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [
                "services[2].rest.id_field",
                "services[2].rest.routes[0].path",
                "services[2].rest.routes[1].methods[0]",
                "services[2].rest.routes[2].resource",
                "services[2].rest.routes[2].action",
                "services[2].rest.routes[2].scope",
            ]
        );
    }
    const JSON_CT: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn postgrest_write_bodies() {
        let d = decoder(RestStyle::Postgrest, "/rest", None);
        let json: Headers = &[JSON_CT];
        let ok: &[(&str, &str, Headers, &str, &[&str])] = &[
            // PATCH: the filter says which rows, the body what they become.
            (
                "PATCH",
                "/rest/reservations?tenant_id=eq.acme",
                json,
                r#"{"tenant_id":"globex"}"#,
                &[
                    r#"update reservations some {"tenant_id": ["acme"]} sets {"tenant_id": Some(["globex"])}"#,
                ],
            ),
            (
                "PATCH",
                "/rest/reservations?tenant_id=eq.acme",
                json,
                r#"{"customer":"Ada"}"#,
                &[
                    r#"update reservations some {"tenant_id": ["acme"]} sets {"customer": Some(["Ada"])}"#,
                ],
            ),
            (
                "PATCH",
                "/rest/reservations?tenant_id=eq.acme",
                json,
                r#"{"tenant_id":null}"#,
                &[r#"update reservations some {"tenant_id": ["acme"]} sets {"tenant_id": None}"#],
            ),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                &[("content-type", "application/json; charset=utf-8")],
                r#"{"meta":{"a":1},"tags":["x"],"n":1.5,"e":1e2,"ok":true,"seats":7,"big":-9}"#,
                &[
                    r#"update reservations some {"id": ["1"]} sets {"big": Some(["-9"]), "e": None, "meta": None, "n": None, "ok": Some(["true"]), "seats": Some(["7"]), "tags": None}"#,
                ],
            ),
            // No content-type: PostgREST reads the body as JSON.
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                &[],
                r#"{"tenant_id":"acme"}"#,
                &[r#"update reservations some {"id": ["1"]} sets {"tenant_id": Some(["acme"])}"#],
            ),
            // `{}` assigns nothing (PostgREST runs no UPDATE).
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                json,
                "{}",
                &[r#"update reservations some {"id": ["1"]}"#],
            ),
            // Several rows: any of them may be the one applied.
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                json,
                r#"[{"tenant_id":"acme"},{"tenant_id":"globex"}]"#,
                &[
                    r#"update reservations some {"id": ["1"]} sets {"tenant_id": Some(["acme", "globex"])}"#,
                ],
            ),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                json,
                r#"[{"a":"1"},{"b":"2"}]"#,
                &[r#"update reservations some {"id": ["1"]} sets {"a": None, "b": None}"#],
            ),
            // `columns=`: only the listed keys are written; a listed key a row lacks is
            // NULL or its default.
            (
                "PATCH",
                "/rest/reservations?id=eq.1&columns=customer,tenant_id",
                json,
                r#"{"customer":"Ada","id":"9"}"#,
                &[
                    r#"update reservations some {"id": ["1"]} sets {"customer": Some(["Ada"]), "tenant_id": None}"#,
                ],
            ),
            // POST: the rows created prove their values, as INSERT … VALUES does.
            (
                "POST",
                "/rest/reservations",
                json,
                r#"[{"id":"r-1","tenant_id":"acme"},{"id":"r-2","tenant_id":"acme"}]"#,
                &[r#"create reservations some {"id": ["r-1", "r-2"], "tenant_id": ["acme"]}"#],
            ),
            (
                "POST",
                "/rest/reservations",
                json,
                r#"[{"id":"r-1","tenant_id":"acme"},{"id":"r-2"}]"#,
                &[r#"create reservations some {"id": ["r-1", "r-2"]}"#],
            ),
            (
                "POST",
                "/rest/reservations",
                json,
                r#"{"id":"r-1","tenant_id":null,"meta":{"a":"acme"}}"#,
                &[r#"create reservations some {"id": ["r-1"]}"#],
            ),
            (
                "POST",
                "/rest/reservations",
                json,
                "[]",
                &["create reservations some"],
            ),
            (
                "POST",
                "/rest/reservations?columns=id,tenant_id",
                json,
                r#"[{"id":"r-1","tenant_id":"acme","customer":"Ada"}]"#,
                &[r#"create reservations some {"id": ["r-1"], "tenant_id": ["acme"]}"#],
            ),
            (
                "POST",
                "/rest/reservations?columns=id,tenant_id",
                json,
                r#"{"id":"r-1"}"#,
                &[r#"create reservations some {"id": ["r-1"]}"#],
            ),
            // Upsert: the update half assigns every column written, to the rows whose
            // conflict key equals a new row's.
            (
                "POST",
                "/rest/reservations?on_conflict=id,tenant_id",
                &[JSON_CT, ("prefer", "resolution=merge-duplicates")],
                r#"{"id":"r-1","tenant_id":"acme","customer":"Ada"}"#,
                &[
                    r#"create reservations some {"customer": ["Ada"], "id": ["r-1"], "tenant_id": ["acme"]}"#,
                    r#"update reservations some {"id": ["r-1"], "tenant_id": ["acme"]} sets {"customer": Some(["Ada"]), "id": Some(["r-1"]), "tenant_id": Some(["acme"])}"#,
                ],
            ),
            (
                "POST",
                "/rest/reservations",
                &[JSON_CT, ("prefer", "resolution=merge-duplicates")],
                r#"{"id":"r-1","tenant_id":"globex"}"#,
                &[
                    r#"create reservations some {"id": ["r-1"], "tenant_id": ["globex"]}"#,
                    r#"update reservations all sets {"id": Some(["r-1"]), "tenant_id": Some(["globex"])}"#,
                ],
            ),
            // PUT: the row is written only if it satisfies the filter.
            (
                "PUT",
                "/rest/reservations?id=eq.r-1",
                json,
                r#"{"id":"r-1","tenant_id":"acme"}"#,
                &[
                    r#"create reservations some {"id": ["r-1"], "tenant_id": ["acme"]}"#,
                    r#"update reservations some {"id": ["r-1"]} sets {"id": Some(["r-1"]), "tenant_id": Some(["acme"])}"#,
                ],
            ),
            (
                "PUT",
                "/rest/reservations?id=eq.r-1",
                json,
                r#"{"id":"r-2"}"#,
                &[
                    r#"create reservations some {"id": []}"#,
                    r#"update reservations some {"id": ["r-1"]} sets {"id": Some(["r-2"])}"#,
                ],
            ),
            // Bodies of other methods are not rows.
            (
                "DELETE",
                "/rest/reservations?id=eq.1",
                &[],
                "anything",
                &[r#"delete reservations some {"id": ["1"]}"#],
            ),
        ];
        for (m, p, h, body, want) in ok {
            assert_eq!(
                run_body(&d, m, p, h, Some(body)).unwrap(),
                *want,
                "{m} {p} {body}"
            );
        }
        let denied: &[(&str, &str, Headers, &str, &str)] = &[
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                &[("content-type", "application/x-www-form-urlencoded")],
                "tenant_id=globex",
                "not decoded",
            ),
            (
                "POST",
                "/rest/reservations",
                &[("content-type", "text/csv")],
                "id,tenant_id\nr-1,globex",
                "not decoded",
            ),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                &[("content-type", "text/plain")],
                "{}",
                "application/json only",
            ),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                &[("content-type", "application/json; charset=latin1")],
                "{}",
                "charset",
            ),
            ("PATCH", "/rest/reservations?id=eq.1", json, "", "no body"),
            ("POST", "/rest/reservations", &[], "", "no body"),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                json,
                "tenant_id",
                "not strict JSON",
            ),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                json,
                r#"{"tenant_id":"acme","tenant_id":"globex"}"#,
                "duplicate key",
            ),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                json,
                r#"{"tenant id":"globex"}"#,
                "not a plain column name",
            ),
            (
                "PATCH",
                "/rest/reservations?id=eq.1",
                json,
                r#"{"tenant_id":"acme","Tenant_Id":"globex"}"#,
                "differ only in case",
            ),
            ("POST", "/rest/reservations", json, "[1]", "objects only"),
            (
                "POST",
                "/rest/reservations",
                json,
                r#""r-1""#,
                "object or an array",
            ),
            (
                "POST",
                "/rest/reservations?columns=id,bad-col",
                json,
                "{}",
                "not a plain column name",
            ),
            (
                "POST",
                "/rest/reservations?columns=id&columns=tenant_id",
                json,
                "{}",
                "repeated",
            ),
            (
                "PUT",
                "/rest/reservations?id=eq.r-1&columns=id",
                json,
                r#"{"id":"r-1"}"#,
                "`columns` on a PUT",
            ),
            (
                "POST",
                "/rest/reservations?on_conflict=id,%22x%22",
                &[JSON_CT, ("prefer", "resolution=merge-duplicates")],
                r#"{"id":"r-1"}"#,
                "not a plain column name",
            ),
        ];
        for (m, p, h, body, why) in denied {
            let err = run_body(&d, m, p, h, Some(body)).unwrap_err();
            assert!(err.contains(why), "{m} {p} {body}: {err}");
        }
    }

    #[test]
    fn dreamfactory_reads_and_deletes_with_a_body_are_refused() {
        // Issue 18, class 3: DreamFactory copies options missing from the URL from a JSON
        // body and acts on its records; for a DELETE, body `ids` win over a URL filter.
        let d = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
        let t = "/api/v2/rentals/_table/reservations";
        assert!(d.reads_body_options());
        for (m, path, body) in [
            (
                "DELETE",
                format!("{t}?filter=id%3D'r-1'"),
                r#"{"ids":"r-2,r-3"}"#,
            ),
            ("GET", format!("{t}?ids=r-1"), r#"{"filter":"1=1"}"#),
            (
                "DELETE",
                format!("{t}/r-1"),
                r#"{"resource":[{"id":"r-9"}]}"#,
            ),
        ] {
            let err = run_body(
                &d,
                m,
                &path,
                &[("content-type", "application/json")],
                Some(body),
            )
            .unwrap_err();
            assert!(err.contains("with a body"), "{m} {path}: {err}");
        }
        // An empty body is no body.
        assert_eq!(
            run_body(&d, "DELETE", &format!("{t}/r-1"), &[], Some("")).unwrap(),
            [r#"delete reservations some {"id": ["r-1"]}"#]
        );
        let pg = decoder(RestStyle::Postgrest, "/rest", None);
        assert!(!pg.reads_body_options());
    }

    #[test]
    fn dreamfactory_write_bodies() {
        let d = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
        let t = "/api/v2/rentals/_table/reservations";
        let acme = format!("{t}?filter=tenant_id%3D'acme'");
        let ok: &[(&str, &str, &str, &[&str])] = &[
            (
                "PATCH",
                &acme,
                r#"{"resource":[{"id":1,"tenant_id":"globex"}]}"#,
                &[
                    r#"update reservations some {"tenant_id": ["acme"]} sets {"id": Some(["1"]), "tenant_id": Some(["globex"])}"#,
                ],
            ),
            (
                "PATCH",
                &acme,
                r#"[{"customer":"Ada"}]"#,
                &[
                    r#"update reservations some {"tenant_id": ["acme"]} sets {"customer": Some(["Ada"])}"#,
                ],
            ),
            // A lookup (`{…}`) is replaced server-side: its value is not known.
            (
                "PATCH",
                &acme,
                r#"{"resource":[{"tenant_id":"{user.tenant}"}]}"#,
                &[r#"update reservations some {"tenant_id": ["acme"]} sets {"tenant_id": None}"#],
            ),
            (
                "PATCH",
                "/api/v2/rentals/_table/reservations/r-1",
                r#"{"customer":"Ada","tenant_id":null}"#,
                &[
                    r#"update reservations some {"id": ["r-1"]} sets {"customer": Some(["Ada"]), "tenant_id": None}"#,
                ],
            ),
            (
                "PATCH",
                t,
                r#"{"resource":[{"id":1,"tenant_id":"acme"}]}"#,
                &[
                    r#"update reservations all sets {"id": Some(["1"]), "tenant_id": Some(["acme"])}"#,
                ],
            ),
            // A create proves what it writes; `ids`/`filter` select no row of a create.
            (
                "POST",
                t,
                r#"{"resource":[{"tenant_id":"acme"},{"tenant_id":"acme","id":2}]}"#,
                &[r#"create reservations some {"tenant_id": ["acme"]}"#],
            ),
            (
                "POST",
                &format!("{t}?ids=x"),
                r#"[{"tenant_id":"acme"}]"#,
                &[r#"create reservations some {"tenant_id": ["acme"]}"#],
            ),
            (
                "POST",
                t,
                r#"{"tenant_id":"acme"}"#,
                &[r#"create reservations some {"tenant_id": ["acme"]}"#],
            ),
        ];
        for (m, p, body, want) in ok {
            assert_eq!(
                run_body(&d, m, p, &[JSON_CT], Some(body)).unwrap(),
                *want,
                "{m} {p} {body}"
            );
        }
        let denied: &[(&str, &str, Headers, &str, &str)] = &[
            (
                "PUT",
                "/api/v2/rentals/_table/reservations/r-1",
                &[JSON_CT],
                r#"{"tenant_id":"acme"}"#,
                "use PATCH",
            ),
            (
                "PUT",
                t,
                &[JSON_CT],
                r#"[{"tenant_id":"acme"}]"#,
                "use PATCH",
            ),
            (
                "PATCH",
                "/api/v2/rentals/_table/reservations/r-1",
                &[JSON_CT],
                r#"[{"customer":"Ada"}]"#,
                "one record object",
            ),
            (
                "PATCH",
                &acme,
                &[JSON_CT],
                r#"{"resource":[{"customer":"Ada"}],"ids":"1"}"#,
                "beside `resource`",
            ),
            (
                "PATCH",
                &acme,
                &[JSON_CT],
                r#"{"resource":{"customer":"Ada"}}"#,
                "not an array",
            ),
            (
                "POST",
                t,
                &[JSON_CT],
                r#"{"resource":[{"id":1,"vehicle_by_vehicle_id":{"id":9}}]}"#,
                "nested value",
            ),
            (
                "PATCH",
                "/api/v2/rentals/_table/reservations/r-1",
                &[JSON_CT],
                r#"{"resource":[{"tenant_id":"globex"}]}"#,
                "nested value",
            ),
            (
                "PATCH",
                &acme,
                &[JSON_CT],
                r#"[{"tenant_id":"acme","TENANT_ID":"globex"}]"#,
                "differ only in case",
            ),
            (
                "PATCH",
                &acme,
                &[JSON_CT],
                r#"[{"$set":{"tenant_id":"globex"}}]"#,
                "not a plain column name",
            ),
            (
                "POST",
                t,
                &[],
                r#"[{"tenant_id":"acme"}]"#,
                "without content-type",
            ),
            (
                "POST",
                t,
                &[("content-type", "application/xml")],
                "<resource/>",
                "application/json only",
            ),
            ("POST", t, &[JSON_CT], "", "no body"),
            ("POST", t, &[JSON_CT], "true", "a record, a list of records"),
        ];
        for (m, p, h, body, why) in denied {
            let err = run_body(&d, m, p, h, Some(body)).unwrap_err();
            assert!(err.contains(why), "{m} {p} {body}: {err}");
        }
    }

    #[test]
    fn which_bodies_hold_rows() {
        let pg = decoder(RestStyle::Postgrest, "/rest", None);
        let df = decoder(RestStyle::Dreamfactory, "/api/v2/rentals", None);
        let routes = decoder(
            RestStyle::Routes,
            "/v1",
            Some(vec![RouteCfg {
                methods: vec!["POST".into()],
                path: "/reservations".into(),
                resource: "reservations".into(),
                action: None,
                scope: None,
                query: None,
            }]),
        );
        let cases: &[(&RestDecoder, &str, &str, bool)] = &[
            (&pg, "POST", "/rest/reservations", true),
            (&pg, "PATCH", "/rest/reservations?id=eq.1", true),
            (&pg, "PUT", "/rest/reservations?id=eq.1", true),
            (&pg, "GET", "/rest/reservations", false),
            (&pg, "DELETE", "/rest/reservations", false),
            // A function's arguments (held when a grant or guard needs them).
            (&pg, "POST", "/rest/rpc/purge", true),
            (&pg, "GET", "/rest/rpc/purge", false),
            (&pg, "POST", "/rest/rpc", true), // a table named `rpc`
            (&pg, "POST", "/other/reservations", false),
            (&df, "POST", "/api/v2/rentals/_table/reservations", true),
            (
                &df,
                "PATCH",
                "/api/v2/rentals/_table/reservations/r-1",
                true,
            ),
            (&df, "PUT", "/api/v2/rentals/_table/reservations", true),
            (&df, "DELETE", "/api/v2/rentals/_table/reservations", false),
            (&df, "POST", "/api/v2/rentals/_proc/cleanup", false),
            (&df, "PATCH", "/api/v2/rentals/_schema/reservations", false),
            (&routes, "POST", "/v1/reservations", false),
        ];
        for (d, m, p, want) in cases {
            let t = Target::parse(p).unwrap();
            assert_eq!(d.body_holds_rows(m, &t), *want, "{m} {p}");
            assert_eq!(
                d.body_holds_arguments(m, &t),
                *want && p.contains("/rpc/"),
                "arguments: {m} {p}"
            );
        }
    }
}
