//! Write bodies: the rows a PostgREST or DreamFactory write holds, and their post-image.

use super::*;
use crate::request::{ambiguous, unmodelled};

/// Which upstream reads a write body: how it treats nested values and strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reader {
    PostgRest,
    DreamFactory,
}

/// The rows a write's body holds.
#[derive(Debug, Default)]
pub(super) struct Rows {
    /// Each row: column → its value as text, `None` when the value proves nothing (JSON
    /// null, a nested value, a fraction, a DreamFactory lookup).
    pub(super) rows: Vec<BTreeMap<String, Option<String>>>,
    /// The columns the write assigns: PostgREST's `columns=`, else every key of the rows.
    pub(super) columns: BTreeSet<String>,
}

impl Rows {
    /// The values every row gives `column`, when each gives it a scalar.
    pub(super) fn values(&self, column: &str) -> Option<Vec<String>> {
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
    pub(super) fn records(&self) -> Records {
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
    pub(super) fn sets(&self) -> Sets {
        if self.rows.is_empty() {
            return Sets::new();
        }
        self.columns
            .iter()
            .map(|c| (c.clone(), self.values(c)))
            .collect()
    }

    pub(super) fn from_objects(
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
                    return ambiguous(format!(
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
pub(super) fn scalar(
    key: &str,
    value: &Json,
    reader: Reader,
) -> Result<Option<String>, DecodeError> {
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
            return unmodelled(format!(
                "nested value for {key:?}: DreamFactory writes related tables from nested records; write each table itself"
            ))
        }
        // A json/array column: written, but with no value a grant can compare.
        Json::Array(_) | Json::Object(_) => None,
    })
}

/// The body's media type: JSON only. PostgREST also reads a body without content-type as
/// JSON; its form and CSV bodies are refused rather than modelled.
pub(super) fn body_media(head: &RequestHead, reader: Reader) -> Result<(), DecodeError> {
    let raw =
        match head.header("content-type") {
            HeaderValue::Absent if reader == Reader::PostgRest => return Ok(()),
            HeaderValue::Absent => return unmodelled(
                "a DreamFactory write without content-type: send its records as application/json",
            ),
            HeaderValue::Repeated => return ambiguous("repeated content-type header"),
            HeaderValue::One(v) => String::from_utf8_lossy(v).to_ascii_lowercase(),
        };
    let media = raw.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json" => content_type(head, &["application/json"], "JSON").map(|_| ()),
        "application/x-www-form-urlencoded" | "text/csv" => unmodelled(format!(
            "a `{media}` write body is not decoded: this role's grants check the values a write assigns, which scopegate reads from JSON only; send the rows as application/json"
        )),
        _ => unmodelled(format!(
            "content-type `{raw}`: a write body is decoded as application/json only"
        )),
    }
}

/// The body as strict JSON; an empty one is refused (PostgREST and DreamFactory refuse a
/// write without rows too, and no rows prove nothing).
pub(super) fn parse_body(body: &[u8]) -> Result<Json, DecodeError> {
    if body.is_empty() {
        return undecodable("the write has no body: the rows it writes must be read to decide");
    }
    parse_strict(body)
}

/// The rows of a PostgREST POST/PATCH/PUT body (`None`: the body was not read).
pub(super) fn pgrst_rows(
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
            return unmodelled(
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
pub(super) fn pgrst_objects(body: Json, what: &str) -> Result<Vec<Map<String, Json>>, DecodeError> {
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
pub(super) fn df_rows(
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
        return unmodelled(
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
                return ambiguous(
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
            return unmodelled(format!(
                "`{k}` at the top of a DreamFactory body is read as a request option: send options as query parameters and records as {{\"resource\": [...]}}"
            ));
        }
    }
    Rows::from_objects(objects, None, Reader::DreamFactory).map(Some)
}

/// `a,b,c` where each is a plain column name.
pub(super) fn identifier_list(list: &str, what: &str) -> Result<Vec<String>, DecodeError> {
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
pub(super) fn conflict_columns(target: &Target) -> Result<Vec<String>, DecodeError> {
    match target.single_param("on_conflict")? {
        Some(list) => identifier_list(list, "on_conflict"),
        None => Ok(Vec::new()),
    }
}

/// What a row proves that satisfies both `a` and `b`: per column, the values in both.
pub(super) fn both(a: &Records, b: Records) -> Records {
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
