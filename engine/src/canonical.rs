//! Canonical forms: what a request means, not its bytes, for the digest an approval is
//! bound to. Any change that changes what the upstream does changes the canonical form;
//! a change that does not (JSON whitespace and member order, SQL whitespace, GraphQL
//! whitespace, commas and comments, a JSON-RPC `id`) does not. Each decoder gives its
//! protocol's form (`Decode::meaning`) as a list of fields, length-prefixed by the digest.

use serde_json::Value;

/// A JSON value in one spelling: members sorted by name, no whitespace, strings and
/// numbers as serde_json writes them (a number keeps its written form: `1.0` is not `1`).
pub fn json(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut members: Vec<(&String, &Value)> = m.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A body as its meaning: canonical JSON when it is JSON, else its SHA-256.
pub fn body(bytes: &[u8]) -> String {
    match crate::json::parse_strict(bytes) {
        Ok(v) if !bytes.is_empty() => format!("json:{}", json(&v)),
        _ => self::bytes(bytes),
    }
}

/// A body whose bytes are its meaning: their SHA-256.
pub fn bytes(bytes: &[u8]) -> String {
    format!(
        "bytes:{}",
        crate::digest::hex(&crate::digest::sha256(bytes))
    )
}

/// A GraphQL document as its tokens: whitespace, commas and comments (all insignificant
/// in GraphQL) dropped; every other token as written.
pub fn graphql_tokens(document: &str) -> Vec<String> {
    use apollo_parser::{Lexer, TokenKind};
    let mut out = Vec::new();
    for t in Lexer::new(document) {
        match t {
            Ok(t) => match t.kind() {
                TokenKind::Whitespace | TokenKind::Comment | TokenKind::Comma => {}
                _ => out.push(t.data().to_string()),
            },
            // Not lexable: the whole text stands (the decoder refused it anyway).
            Err(_) => return vec![format!("text:{document}")],
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as j;

    #[test]
    fn json_in_one_spelling() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "s"}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"s","y":2}]}"#).unwrap();
        assert_eq!(json(&a), json(&b));
        assert_eq!(json(&a), r#"{"a":null,"b":[1,{"x":"s","y":2}]}"#);
        assert_ne!(
            json(&j!([1, 2])),
            json(&j!([2, 1])),
            "order of a list is meaning"
        );
        assert_ne!(body(b"{\"a\": 1.0}"), body(b"{\"a\": 1}"));
        assert_eq!(body(b"{\"a\": 1}"), body(b" {\"a\":1}\n"));
        assert!(body(b"a,b\n1,2").starts_with("bytes:"));
    }

    #[test]
    fn graphql_tokens_drop_what_graphql_ignores() {
        let a = "mutation D($id: String!) { volumeDelete(volumeId: $id) }";
        let b = "# delete it\nmutation D($id:String!){volumeDelete(volumeId:$id),}";
        assert_eq!(graphql_tokens(a), graphql_tokens(b));
        assert_ne!(
            graphql_tokens(a),
            graphql_tokens("mutation D($id: String!) { volumeDelete(volumeId: \"x\") }")
        );
        // Inside a string, whitespace is meaning.
        assert_ne!(
            graphql_tokens(r#"{ a(s: "x y") }"#),
            graphql_tokens(r#"{ a(s: "x  y") }"#)
        );
    }
}
