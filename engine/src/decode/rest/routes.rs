//! Route templates declared in the bundle (`"style": "routes"`): matching, records from
//! `{param}` segments and declared query parameters, and bodies that could shadow them.

use super::*;
use crate::request::{ambiguous, unmodelled};

#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) methods: Vec<String>,
    pub(super) segments: Vec<Seg>,
    pub(super) resource: Vec<Seg>,
    pub(super) action: Option<Action>,
    pub(super) scope: Scope,
    /// Query parameters the route accepts (each a record); any other is refused.
    pub(super) query: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Lit(String),
    Param(String),
}

pub(super) fn compile_route(
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

pub(super) fn parse_template_part(s: &str) -> Option<Seg> {
    match s.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
        Some(name) if is_identifier(name) => Some(Seg::Param(name.to_string())),
        Some(_) => None,
        None if s.contains(['{', '}']) => None,
        None => Some(Seg::Lit(s.to_string())),
    }
}

pub(super) fn parse_resource_template(s: &str) -> Option<Vec<Seg>> {
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

pub(super) fn route(
    service: &str,
    routes: &[Route],
    head: &RequestHead,
    rest: &[String],
    target: &Target,
    body: Option<&[u8]>,
) -> Result<Vec<Operation>, DecodeError> {
    let method = head.method.as_str();
    if let Some(r) = matching(routes, method, rest) {
        let mut records = Records::new();
        for (seg, value) in r.segments.iter().zip(rest) {
            if let Seg::Param(p) = seg {
                records.insert(p.clone(), vec![value.clone()]);
            }
        }
        // The query string is an input the upstream reads (frameworks merge it into the
        // path's parameters, `?force=true` changes an action): only the parameters the
        // route declares pass, each a record; any other is refused.
        for (name, _) in &target.query {
            if !r.query.contains(name) {
                return unmodelled(format!(
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
            return unmodelled(format!("method {method} has no action"));
        };
        return Ok(vec![Operation::new(service, action, resource)
            .with_scope(r.scope)
            .with_records(records)]);
    }
    unmodelled(format!(
        "no route of the service matches {method} /{}",
        rest.join("/")
    ))
}

/// The first route whose methods and path template match.
pub(super) fn matching<'r>(
    routes: &'r [Route],
    method: &str,
    rest: &[String],
) -> Option<&'r Route> {
    routes.iter().find(|r| {
        r.methods.iter().any(|m| m == method)
            && r.segments.len() == rest.len()
            && r.segments.iter().zip(rest).all(|(seg, value)| match seg {
                Seg::Lit(l) => l == value,
                Seg::Param(_) => true,
            })
    })
}

/// The names a route's body could shadow: its `{param}`s and declared query parameters.
pub(super) fn parameters(r: &Route) -> Vec<&str> {
    r.segments
        .iter()
        .filter_map(|s| match s {
            Seg::Param(p) => Some(p.as_str()),
            Seg::Lit(_) => None,
        })
        .chain(r.query.iter().map(String::as_str))
        .collect()
}

/// A route's body (issue 18, class 3). Frameworks merge body parameters with the path's
/// and the query's (Rails `params`, Laravel `input()`, PHP `$_REQUEST`), so a body member
/// named like a route's `{param}` or a declared query parameter may override what the
/// decision was made on: refused. A route with no parameters forwards any body; one with
/// parameters accepts a JSON or form-encoded body (whose names can be read) and no other.
pub(super) fn route_body(
    r: &Route,
    head: &RequestHead,
    body: Option<&[u8]>,
) -> Result<(), DecodeError> {
    let params = parameters(r);
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return Ok(());
    };
    if params.is_empty() {
        return Ok(());
    }
    let shadow = |name: &str| -> Result<(), DecodeError> {
        match params.iter().find(|p| p.eq_ignore_ascii_case(name)) {
            Some(p) => ambiguous(format!(
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
