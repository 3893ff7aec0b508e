//! DreamFactory (`"style": "dreamfactory"`): `_table`, `_schema`, `_proc`, `_func`, and its
//! options in the URL or the body.

use super::*;
use crate::request::{ambiguous, unmodelled};

/// Query parameters DreamFactory's database services accept that do not change which
/// rows or tables a request reaches (or that this decoder reads itself).
pub(super) const DF_PARAMS: &[&str] = &[
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

pub(super) fn dreamfactory(
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
        return ambiguous(format!(
            "a {method} with a body: DreamFactory reads options (ids, filter, …) and records from it, which override the URL; send them in the URL"
        ));
    }
    for (name, _) in &target.query {
        if name == "related" {
            return unmodelled(
                "`related=` reaches other tables through relationships; request each table itself",
            );
        }
        if !DF_PARAMS.contains(&name.as_str()) {
            return unmodelled(format!("unknown DreamFactory query parameter `{name}`"));
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
            unmodelled(format!(
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
                _ => return unmodelled(format!("method {method} on a DreamFactory table")),
            };
            let (scope, records) = match (ids, filter) {
                (Some(_), Some(_)) => return ambiguous("both `ids` and `filter` given"),
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
                return ambiguous("a record path cannot also carry `ids` or `filter`");
            }
            let action = match method {
                "GET" | "HEAD" => Action::Read,
                "PUT" | "PATCH" => Action::Update,
                "DELETE" => Action::Delete,
                _ => return unmodelled(format!("method {method} on a DreamFactory record")),
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
            _ => unmodelled(format!("method {method} on `_schema`")),
        },
        ["_schema", table, more @ ..] => match method {
            // The table's definition, not its data (issue 18, class 5): its own resource.
            "GET" | "HEAD" => Ok(vec![op(Action::Read, &format!("_schema/{table}"))]),
            "POST" | "PUT" | "PATCH" => Ok(vec![op(Action::Alter, table)]),
            "DELETE" if more.is_empty() => Ok(vec![op(Action::Drop, table)]),
            "DELETE" => Ok(vec![op(Action::Alter, table)]),
            _ => unmodelled(format!("method {method} on `_schema`")),
        },
        [kind @ ("_proc" | "_func"), name] => match method {
            "GET" | "POST" => Ok(vec![op(Action::Execute, &format!("{kind}/{name}"))]),
            _ => unmodelled(format!("method {method} on a stored procedure or function")),
        },
        _ => undecodable(format!(
            "`/{}` is not a DreamFactory resource path",
            segs.join("/")
        )),
    }
}

pub(super) fn id_records(id_field: &str, ids: &str) -> Result<Records, DecodeError> {
    let mut values = Vec::new();
    for id in ids.split(',') {
        if id.is_empty() {
            return undecodable("`ids` holds an empty id");
        }
        if id.trim() != id {
            return ambiguous("`ids` holds an id with surrounding spaces");
        }
        values.push(id.to_string());
    }
    values.sort();
    values.dedup();
    let mut r = Records::new();
    r.insert(id_field.to_string(), values);
    Ok(r)
}
