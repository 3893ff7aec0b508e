//! What is filtered on the way back: list answers (tools, resources, templates, prompts)
//! and the GET stream, down to what the caller's role may reach.

use super::*;

/// Plumbing whose answers list what a role may reach; also the GET stream, on which a
/// server may replay earlier answers. Their responses are filtered (`filter_lists`).
const FILTERED: [&str; 5] = [
    "mcp:tools/list",
    "mcp:resources/list",
    "mcp:resources/templates/list",
    "mcp:prompts/list",
    "mcp:stream",
];

/// Whether a request's answer must be filtered (it lists tools, resources or prompts,
/// or is the GET stream on which a server may replay such answers).
pub fn answer_is_filtered(ops: &[Operation]) -> bool {
    ops.iter().any(|o| FILTERED.contains(&o.resource.as_str()))
}

/// What an entry of a list answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    Tool,
    Resource,
    ResourceTemplate,
    Prompt,
}

/// Filters the list results in one server message (or batch of messages): entries of
/// `result.tools`, `result.resources`, `result.resourceTemplates` and `result.prompts`
/// are kept only where `keep` says so (an entry without a string name is dropped).
/// Returns how many entries were removed.
pub fn filter_lists(msg: &mut Json, keep: &mut dyn FnMut(Listed, &str) -> bool) -> usize {
    if let Json::Array(batch) = msg {
        return batch.iter_mut().map(|m| filter_lists(m, keep)).sum();
    }
    let Some(result) = msg.get_mut("result").and_then(Json::as_object_mut) else {
        return 0;
    };
    let mut removed = 0;
    for (key, kind, name_key) in [
        ("tools", Listed::Tool, "name"),
        ("resources", Listed::Resource, "uri"),
        ("resourceTemplates", Listed::ResourceTemplate, "uriTemplate"),
        ("prompts", Listed::Prompt, "name"),
    ] {
        if let Some(list) = result.get_mut(key) {
            let Json::Array(entries) = list else {
                // Not a list: nothing a client could use; replace it by an empty one.
                *list = Json::Array(Vec::new());
                removed += 1;
                continue;
            };
            let before = entries.len();
            entries.retain(|e| {
                e.get(name_key)
                    .and_then(Json::as_str)
                    .is_some_and(|n| keep(kind, n))
            });
            removed += before - entries.len();
        }
    }
    removed
}
