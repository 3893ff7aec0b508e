//! MCP answers on their way back: list results (`tools/list`, `resources/list`,
//! `resources/templates/list`, `prompts/list`, and anything replayed on the GET stream)
//! keep only what the caller's role may reach, in plain JSON and in server-sent events.
//! An answer that cannot be read is withheld (replaced by a JSON-RPC error), never
//! passed unfiltered.

use crate::decode::mcp::{filter_lists, Listed, ToolRule};
use crate::evaluate::{has_grant_on, may_reach};
use crate::json::parse_strict;
use crate::operation::{Action, Operation};
use crate::pipeline::Engine;
use crate::policy::Decoder;
use crate::verdict::ListFilter;
use serde_json::Value as Json;

/// Longest server-sent event held while its end is awaited.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// The JSON-RPC message that replaces an answer that could not be checked.
pub const WITHHELD: &str = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"scopegate: the server's answer could not be checked, so it was withheld"}}"#;

/// A JSON answer after filtering.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Unchanged,
    Replaced(Vec<u8>),
}

impl Engine {
    /// Whether the role of `f` may reach a listed entry.
    fn visible(&self, f: &ListFilter, kind: Listed, name: &str) -> bool {
        let policy = self.policy();
        let (Some(service), Some(role)) = (policy.service(f.service), policy.role(f.role)) else {
            return false;
        };
        let Decoder::Mcp(d) = &service.decoder else {
            return false;
        };
        let read = |n: &str| {
            may_reach(
                policy,
                role,
                &Operation::new(&service.name, Action::Read, n),
            )
        };
        match kind {
            Listed::Tool => match d.tool_rule(name) {
                // Listed when some action the tool can have (its arguments decide which)
                // may be reached.
                ToolRule::Action(rule) => rule
                    .possible()
                    .any(|a| may_reach(policy, role, &Operation::new(&service.name, a, name))),
                // A SQL tool is scoped statement by statement: shown to roles that may do
                // anything on its SQL service.
                ToolRule::Sql { service, .. } => has_grant_on(policy, role, &service),
            },
            Listed::Resource | Listed::ResourceTemplate | Listed::Prompt => read(name),
        }
    }

    /// Filters one JSON-RPC message (or batch); how many entries were removed.
    pub fn filter_message(&self, f: &ListFilter, msg: &mut Json) -> usize {
        filter_lists(msg, &mut |kind, name| self.visible(f, kind, name))
    }

    /// Filters a whole `application/json` answer.
    pub fn filter_answer(&self, f: &ListFilter, body: &[u8]) -> Answer {
        if body.is_empty() {
            return Answer::Unchanged;
        }
        let Ok(mut msg) = parse_strict(body) else {
            return Answer::Replaced(WITHHELD.as_bytes().to_vec());
        };
        if self.filter_message(f, &mut msg) == 0 {
            return Answer::Unchanged;
        }
        Answer::Replaced(msg.to_string().into_bytes())
    }

    /// Filters a `text/event-stream` answer chunk by chunk: complete events come out
    /// (rewritten where they listed something unreachable); a partial one waits.
    pub fn filter_events(
        &self,
        f: &ListFilter,
        st: &mut EventStream,
        chunk: &[u8],
        end: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        if st.withheld {
            return out;
        }
        st.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(next) = event_end(&st.buf, start, end) {
            let raw = st.buf.get(start..next).unwrap_or_default();
            self.filter_event(f, raw, &mut out);
            start = next;
        }
        st.buf.drain(..start);
        if end && !st.buf.is_empty() {
            let raw = std::mem::take(&mut st.buf);
            self.filter_event(f, &raw, &mut out);
        }
        if st.buf.len() > MAX_EVENT_BYTES {
            st.buf.clear();
            st.withheld = true;
            push_event(&mut out, &[], WITHHELD);
        }
        out
    }

    fn filter_event(&self, f: &ListFilter, raw: &[u8], out: &mut Vec<u8>) {
        let (others, data) = split_event(raw);
        let Some(data) = data else {
            out.extend_from_slice(raw);
            return;
        };
        match parse_strict(data.as_bytes()) {
            Ok(mut msg) => {
                if self.filter_message(f, &mut msg) == 0 {
                    out.extend_from_slice(raw);
                } else {
                    push_event(out, &others, &msg.to_string());
                }
            }
            // Not JSON at all (a client would not read it as a message either).
            Err(_) if !data.trim_start().starts_with(['{', '[']) => out.extend_from_slice(raw),
            Err(_) => push_event(out, &others, WITHHELD),
        }
    }
}

/// State of one event-stream answer.
#[derive(Debug, Default)]
pub struct EventStream {
    buf: Vec<u8>,
    withheld: bool,
}

/// End (exclusive) of the event starting at `start`: after the blank line that ends it.
/// Lines end in CRLF, LF or CR; a CR at the very end of the buffer waits for the next
/// chunk unless the stream has ended.
fn event_end(buf: &[u8], start: usize, end: bool) -> Option<usize> {
    let mut i = start;
    let mut line_start = start;
    while let Some(&b) = buf.get(i) {
        let after = match b {
            b'\n' => i + 1,
            b'\r' => match buf.get(i + 1) {
                Some(b'\n') => i + 2,
                Some(_) => i + 1,
                None if end => i + 1,
                None => return None,
            },
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start {
            return Some(after);
        }
        line_start = after;
        i = after;
    }
    None
}

/// An event's lines other than `data`, and its data (lines joined by LF), if any.
fn split_event(raw: &[u8]) -> (Vec<&[u8]>, Option<String>) {
    let mut others = Vec::new();
    let mut data: Option<String> = None;
    for line in raw.split(|b| *b == b'\n' || *b == b'\r') {
        if line.is_empty() {
            continue;
        }
        let value = line
            .strip_prefix(b"data:")
            .map(|v| v.strip_prefix(b" ").unwrap_or(v));
        match value {
            Some(v) => {
                let v = String::from_utf8_lossy(v);
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(&v);
                    }
                    None => data = Some(v.into_owned()),
                }
            }
            None => others.push(line),
        }
    }
    (others, data)
}

fn push_event(out: &mut Vec<u8>, others: &[&[u8]], data: &str) {
    for l in others {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines() {
        let cases: [(&[u8], bool, Option<usize>); 7] = [
            (b"data: x\n\n", false, Some(9)),
            (b"data: x\r\n\r\nrest", false, Some(11)),
            (b"data: x\r\rrest", false, Some(9)),
            (b"data: x\n", false, None),
            (b"data: x\r", false, None),
            (b"data: x\r\r", false, None),
            (b"data: x\r\r", true, Some(9)),
        ];
        for (buf, end, want) in cases {
            assert_eq!(
                event_end(buf, 0, end),
                want,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn event_fields() {
        let (others, data) = split_event(b"event: message\nid: 7\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(others, vec![&b"event: message"[..], &b"id: 7"[..]]);
        assert_eq!(data.as_deref(), Some("{\"a\":\n1}"));
        let (_, none) = split_event(b": ping\n\n");
        assert_eq!(none, None);
    }
}
