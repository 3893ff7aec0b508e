//! Strict JSON for request bodies: RFC 8259 as serde_json reads it, plus no duplicate
//! object keys (compared after unescaping). Two parsers that disagree on which of two
//! `"sql"` keys counts are a bypass; refusing duplicates removes the disagreement.

use crate::request::{undecodable, DecodeError};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses a whole body as one JSON value; duplicate keys and trailing data are refused.
pub fn parse_strict(body: &[u8]) -> Result<Value, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Strict::deserialize(&mut de).and_then(|Strict(v)| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => undecodable(format!("body is not strict JSON: {e}")),
    }
}

/// Whether a JSON text nests arrays and objects deeper than `limit` — a byte scan that
/// runs before any parsing (strings and their escapes skipped), so a deep body costs one
/// pass, not a recursive descent. Text that is not JSON is left to the parser.
pub fn nests_deeper_than(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(!nests_deeper_than(br#"{"a": [1, {"b": 2}]}"#, 3));
        assert!(nests_deeper_than(br#"{"a": [1, {"b": 2}]}"#, 2));
        assert!(!nests_deeper_than(br#"{"a": "[[[[{{{{\"[[["}"#, 1));
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(nests_deeper_than(deep.as_bytes(), 64));
        assert!(!nests_deeper_than(deep.as_bytes(), 65));
    }

    #[test]
    fn strict_json_table() {
        let ok = [
            r#"{"sql": "select 1", "params": [1, "a", null]}"#,
            "[]",
            "\"x\"",
        ];
        for s in ok {
            assert!(parse_strict(s.as_bytes()).is_ok(), "{s}");
        }
        let denied = [
            (
                r#"{"sql": "select 1", "sql": "drop table t"}"#,
                "duplicate key `sql`",
            ),
            (
                r#"{"sql": "select 1", "\u0073ql": "drop table t"}"#,
                "duplicate key `sql`",
            ),
            (r#"{"a": {"b": 1, "b": 2}}"#, "duplicate key `b`"),
            (r#"{"sql": "select 1"} {"sql": "x"}"#, "trailing"),
            (r#"{"sql": "select 1",}"#, "strict JSON"),
            ("\u{feff}{}", "strict JSON"),
            (r#"{"a": "\ud800"}"#, "strict JSON"),
        ];
        for (s, why) in denied {
            let e = parse_strict(s.as_bytes()).unwrap_err();
            assert!(e.0.contains(why), "{s}: {e}");
        }
    }
}
