//! Decoders: protocol-specific, pure functions from a request to operations.

pub mod actions;
pub mod expr;
pub mod graphql;
pub mod mcp;
pub mod memo;
pub mod rest;
#[cfg(feature = "sql")]
pub mod sql;
#[cfg(not(feature = "sql"))]
#[path = "sql_off.rs"]
pub mod sql;
#[cfg(feature = "sql")]
pub mod sql_fast;

use crate::operation::Records;
use serde_json::Value as Json;

/// Scalar leaves of a JSON value as records under `key`: nested objects as `key.field`,
/// lists as several values, nulls dropped (GraphQL variables, MCP arguments).
pub fn record_json(key: &str, v: &Json, out: &mut Records) {
    match v {
        Json::String(s) => out.entry(key.to_string()).or_default().push(s.clone()),
        Json::Number(n) => out.entry(key.to_string()).or_default().push(n.to_string()),
        Json::Bool(b) => out.entry(key.to_string()).or_default().push(b.to_string()),
        Json::Null => {}
        Json::Array(items) => items.iter().for_each(|i| record_json(key, i, out)),
        Json::Object(m) => m
            .iter()
            .for_each(|(k, i)| record_json(&format!("{key}.{k}"), i, out)),
    }
}

/// Words that join verbs in a name (`get_and_delete_rows`, `orderCreateOrReplace`).
pub const CONJUNCTIONS: [&str; 4] = ["and", "then", "or", "plus"];

/// Whether each word right after a conjunction is a verb `known` describes: a name of
/// several verbs whose other verb no list knows (`create_and_frobnicate_order`) does
/// something no rule can name, so the built-in rules make it `execute` (issue 18,
/// class 2).
pub fn joined_verbs_known(words: &[String], known: impl Fn(&str) -> bool) -> bool {
    words
        .windows(2)
        .filter(|w| {
            w.first()
                .is_some_and(|c| CONJUNCTIONS.contains(&c.as_str()))
        })
        .all(|w| w.get(1).is_some_and(|v| known(v)))
}

/// Lower-cased words of a camelCase, PascalCase or snake_case name (`URLDelete` → url, delete).
pub fn name_words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, c) in chars.iter().enumerate() {
        if !c.is_ascii_alphabetic() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        let prev = i.checked_sub(1).and_then(|p| chars.get(p));
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && (prev.is_some_and(char::is_ascii_lowercase)
                || (prev.is_some_and(char::is_ascii_uppercase)
                    && next.is_some_and(char::is_ascii_lowercase)));
        if boundary && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}
