//! PostgREST (`"style": "postgrest"`): tables, functions and the OpenAPI root; filters,
//! embeds, profiles and `Prefer`.

use super::*;
use crate::request::{ambiguous, over_limit, unmodelled};

/// Query parameters PostgREST reserves; every other parameter is a filter.
pub(super) const PGRST_RESERVED: &[&str] = &[
    "select",
    "order",
    "limit",
    "offset",
    "on_conflict",
    "columns",
];

pub(super) fn postgrest(
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
            _ => unmodelled(format!("{method} on the PostgREST root")),
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
            _ => unmodelled(format!("{method} on a PostgREST function")),
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
                _ => return unmodelled(format!("method {method} on a PostgREST table")),
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
pub(super) fn profile(
    head: &RequestHead,
    default_schema: &str,
) -> Result<Option<String>, DecodeError> {
    // PostgREST reads the schema from `Accept-Profile` on GET and HEAD, from
    // `Content-Profile` on every other method (RPC included): the other header would be
    // ignored upstream while the decoder read it, so it is refused, not guessed.
    let (used, ignored) = match head.method.as_str() {
        "GET" | "HEAD" | "OPTIONS" => ("accept-profile", "content-profile"),
        _ => ("content-profile", "accept-profile"),
    };
    if head.single_header(ignored)?.is_some() {
        return ambiguous(format!(
            "`{ignored}` on a {} request: PostgREST picks the schema from `{used}` here and would ignore it",
            head.method
        ));
    }
    match head.single_header(used)? {
        None => Ok(None),
        Some(s) if s == default_schema => Ok(None),
        Some(s) if is_identifier(&s) => Ok(Some(s)),
        Some(_) => ambiguous("profile header does not name one schema"),
    }
}

/// Whether `Prefer` asks for an upsert. A `resolution` preference in any other spelling
/// is refused: the upstream might read it as a merge the filter did not see.
pub(super) fn prefers_merge(head: &RequestHead) -> Result<bool, DecodeError> {
    let Some(prefer) = head.single_header("prefer")? else {
        return Ok(false);
    };
    let mut merge = false;
    for token in prefer.split(',').map(str::trim) {
        match token {
            "resolution=merge-duplicates" => merge = true,
            "resolution=ignore-duplicates" => {}
            t if t.to_ascii_lowercase().contains("resolution") => {
                return unmodelled(format!("unrecognised Prefer `{t}`"))
            }
            _ => {}
        }
    }
    Ok(merge)
}

/// Top-level filters of a PostgREST request, ANDed as PostgREST does.
pub(super) fn pgrst_filters(target: &Target) -> Result<Expr, DecodeError> {
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
            .ok_or_else(|| {
                DecodeError::malformed(format!("`{name}` expects a parenthesised list"))
            })?;
        let tree = pgrst_logic(logic, inner, 0)?;
        parts.push(if negated {
            Expr::Not(Box::new(tree))
        } else {
            tree
        });
    }
    Ok(Expr::And(parts))
}

pub(super) fn pgrst_logic(kind: &str, inner: &str, depth: usize) -> Result<Expr, DecodeError> {
    if depth > MAX_FILTER_DEPTH {
        return over_limit("logic tree nests too deeply");
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
                .ok_or_else(|| DecodeError::malformed("unbalanced logic tree"))?;
            pgrst_logic(sub, body, depth + 1)?
        } else {
            let (column, filter) = item
                .split_once('.')
                .ok_or_else(|| DecodeError::malformed(format!("`{item}` is not a filter")))?;
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
pub(super) fn split_top(s: &str, sep: char) -> Result<Vec<&str>, DecodeError> {
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
                    .ok_or_else(|| DecodeError::malformed("unbalanced parentheses"))?;
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
pub(super) fn pgrst_term(column: &str, filter: &str, in_tree: bool) -> Result<Expr, DecodeError> {
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
                .ok_or_else(|| DecodeError::malformed("`in` expects a parenthesised list"))?;
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
        other => return unmodelled(format!("unknown PostgREST operator `{other}`")),
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
pub(super) fn unquote(v: &str) -> Result<String, DecodeError> {
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
pub(super) fn rpc_arguments(
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

pub(super) fn embedded_reads(
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

pub(super) fn collect_embeds(
    select: &str,
    depth: usize,
    out: &mut dyn FnMut(&str),
) -> Result<(), DecodeError> {
    if depth > MAX_FILTER_DEPTH {
        return over_limit("`select` nests too deeply");
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
            .ok_or_else(|| DecodeError::malformed(format!("bad `select` item `{item}`")))?;
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
