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
#[path = "sql/off.rs"]
pub mod sql;

use crate::operation::{Action, Operation, Records};
use crate::request::{DecodeError, RequestHead, Target};
use crate::verdict::JsonRpc;
use serde_json::Value as Json;

/// What every decoder is given: the request as the pipeline read it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The service's name (operations carry it).
    pub service: &'a str,
    /// The service's `match.path_prefix`, as segments: where its endpoint is.
    pub prefix: &'a [String],
    pub head: &'a RequestHead,
    pub target: &'a Target,
    /// The body, when the pipeline held it: always for SQL, GraphQL and MCP (empty when
    /// there is none); for REST only when its rows or arguments must be read.
    pub body: Option<&'a [u8]>,
}

impl Input<'_> {
    /// The held body, empty when there is none.
    pub fn body(&self) -> &[u8] {
        self.body.unwrap_or_default()
    }
}

/// What every decoder gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The operations, or why there are none.
    pub ops: Result<Vec<Operation>, DecodeError>,
    /// MCP: the JSON-RPC side a refusal answers with (the ids read before it, the wire).
    pub jsonrpc: Option<JsonRpc>,
}

impl From<Result<Vec<Operation>, DecodeError>> for Decoded {
    fn from(ops: Result<Vec<Operation>, DecodeError>) -> Self {
        Decoded { ops, jsonrpc: None }
    }
}

/// One signature for every protocol's decoder.
pub trait Decode {
    fn decode(&self, input: &Input) -> Decoded;

    /// What the request means, for the digest an approval is bound to (`canonical`):
    /// fields that change whenever what the upstream does changes, and only then. By
    /// default `raw_meaning`.
    fn meaning(&self, input: &Input) -> Vec<String> {
        raw_meaning(input)
    }
}

/// The query as received and the body's canonical form: the meaning of a request no
/// protocol reading applies to (a decoder's fallback when its own reading fails; such a
/// request was refused anyway).
pub fn raw_meaning(input: &Input) -> Vec<String> {
    vec![
        "query".into(),
        input.target.raw_query.clone(),
        "body".into(),
        crate::canonical::body(input.body()),
    ]
}

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

/// One vocabulary for the built-in action of a name, GraphQL mutations and MCP tools
/// alike (`editUser` and `edit_user` get the same action). A verb that destroys or
/// overwrites what exists makes a delete; words that are as often nouns (`set` in
/// `environmentApplyChangeSet`, `patch` in `environmentPatchCommit`) are no verb here, so
/// such names stay `execute` unless the bundle names their action.
pub const DELETE_WORDS: [&str; 25] = [
    "delete",
    "drop",
    "remove",
    "purge",
    "destroy",
    "erase",
    "wipe",
    "clear",
    "truncate",
    "replace",
    "overwrite",
    "cancel",
    "revoke",
    "terminate",
    "kill",
    "disable",
    "deactivate",
    "suspend",
    "expire",
    "invalidate",
    "abort",
    "detach",
    "unlink",
    "ban",
    "evict",
];
pub const UPDATE_WORDS: [&str; 5] = ["update", "upsert", "edit", "modify", "rename"];
pub const CREATE_WORDS: [&str; 3] = ["create", "add", "insert"];
pub const READ_WORDS: [&str; 10] = [
    "list", "get", "read", "search", "query", "fetch", "find", "describe", "show", "count",
];

/// Words that join verbs in a name (`get_and_delete_rows`, `orderCreateOrReplace`).
pub const CONJUNCTIONS: [&str; 4] = ["and", "then", "or", "plus"];

/// The built-in action of a name, by its words (see the lists above): a name joining a
/// verb no list knows after a conjunction (`create_and_frobnicate_order`) is `execute`;
/// else a delete word anywhere makes a delete, then an update word, then a create word;
/// then, where reads are possible (`reads`: tools, not mutations), `read` when every verb
/// — the first word and each word after a conjunction — is a read word; anything else is
/// `execute`. A name of several verbs so takes its most destructive one.
pub fn verb_action(name: &str, reads: bool) -> Action {
    let words = name_words(name);
    let has = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    let known = |w: &str| {
        [&DELETE_WORDS[..], &UPDATE_WORDS, &CREATE_WORDS, &READ_WORDS]
            .iter()
            .any(|l| l.contains(&w))
    };
    let joined_known = words
        .windows(2)
        .filter(|w| {
            w.first()
                .is_some_and(|c| CONJUNCTIONS.contains(&c.as_str()))
        })
        .all(|w| w.get(1).is_some_and(|v| known(v)));
    let verbs_read = || {
        !words.is_empty()
            && words
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    *i == 0
                        || i.checked_sub(1)
                            .and_then(|p| words.get(p))
                            .is_some_and(|p| CONJUNCTIONS.contains(&p.as_str()))
                })
                .all(|(_, w)| READ_WORDS.contains(&w.as_str()))
    };
    if !joined_known {
        Action::Execute
    } else if has(&DELETE_WORDS) {
        Action::Delete
    } else if has(&UPDATE_WORDS) {
        Action::Update
    } else if has(&CREATE_WORDS) {
        Action::Create
    } else if reads && verbs_read() {
        Action::Read
    } else {
        Action::Execute
    }
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
