//! Strict JSON for request bodies: RFC 8259 as serde_json reads it, plus no duplicate
//! object keys (compared after unescaping). Two parsers that disagree on which of two
//! `"sql"` keys counts are a bypass; refusing duplicates removes the disagreement.

use crate::request::{ambiguous, undecodable, DecodeError};
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
        Ok(v) => match inexact_number(body) {
            // Read here as a 64-bit float, by a numeric column or Python's int as
            // written: two readings of one body.
            Some(n) => ambiguous(format!(
                "JSON number `{n}` has more precision than a 64-bit float (or overflows it): its readers would not agree on its value"
            )),
            None => Ok(v),
        },
        Err(e) => undecodable(format!("body is not strict JSON: {e}")),
    }
}

/// The first number of a JSON text (strings skipped) that a 64-bit float does not hold
/// exactly as written: more significant digits than it keeps, or out of its range.
/// Integers that fit 64 bits are exact (they are read as integers).
fn inexact_number(body: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut in_string = false;
    while let Some(&b) = body.get(i) {
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while body.get(i).is_some_and(|c| {
                c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
            }) {
                i += 1;
            }
            let token =
                std::str::from_utf8(body.get(start..i).unwrap_or_default()).unwrap_or_default();
            if !number_is_exact(token) {
                return Some(token.chars().take(40).collect());
            }
            continue;
        }
        i += 1;
    }
    None
}

fn number_is_exact(token: &str) -> bool {
    if token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok() {
        return true;
    }
    match token.parse::<f64>() {
        Ok(f) if f.is_finite() => significand(token) == significand(&format!("{f:e}")),
        _ => false,
    }
}

/// A decimal number's significant digits and the power of ten of its first one:
/// `0.0120` and `1.2e-2` are both ("12", -2).
fn significand(text: &str) -> (bool, String, i64) {
    let negative = text.starts_with('-');
    let text = text.trim_start_matches(['-', '+']);
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(at) => (
            text.get(..at).unwrap_or_default(),
            text.get(at + 1..)
                .and_then(|e| e.parse::<i64>().ok())
                .unwrap_or(0),
        ),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int}{frac}");
    let leading = digits
        .len()
        .saturating_sub(digits.trim_start_matches('0').len());
    let digits = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string();
    if digits.is_empty() {
        return (false, String::new(), 0);
    }
    let first = i64::try_from(int.len())
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(leading).unwrap_or(0))
        .saturating_sub(1)
        .saturating_add(exp);
    (negative, digits, first)
}

/// Whether a JSON text nests arrays and objects deeper than `limit` — a byte scan that
/// runs before any parsing (strings and their escapes skipped), so a deep body costs one
/// pass, not a recursive descent. Text that is not JSON is left to the parser.
pub fn nests_deeper_than(body: &[u8], limit: usize) -> bool {
    // No more opening brackets in all than the limit: it cannot nest deeper. One
    // branch-free pass decides the common body (`[` is 0x5b, `{` 0x7b: they, and only
    // they, are `{` with bit 0x20 set).
    let opening: usize = body.iter().map(|&b| usize::from((b | 0x20) == b'{')).sum();
    if opening <= limit {
        return false;
    }
    let (mut depth, mut rest) = (0usize, body);
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'"' => rest = after_string(rest),
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

/// What follows the string whose opening quote was just read (empty if it never closes).
fn after_string(mut rest: &[u8]) -> &[u8] {
    loop {
        let Some(i) = rest.iter().position(|&c| c == b'"' || c == b'\\') else {
            return &[];
        };
        let (quote, after) = (rest.get(i) == Some(&b'"'), rest.get(i + 1..).unwrap_or(&[]));
        if quote {
            return after;
        }
        // A backslash: the next byte is escaped, whatever it is.
        rest = after.get(1..).unwrap_or(&[]);
    }
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

    /// The scan before the counting shortcut and the string skip, kept as the oracle.
    fn reference(body: &[u8], limit: usize) -> bool {
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

    #[test]
    fn nesting_scan_agrees_with_the_plain_scan() {
        // Every string over a small alphabet rich in the bytes that matter, up to length 7,
        // at every limit that can differ; then long pseudo-random texts.
        let alphabet = b"[]{}\"\\a";
        let mut text = Vec::new();
        for len in 0..=7u32 {
            for mut n in 0..(alphabet.len() as u64).pow(len) {
                text.clear();
                for _ in 0..len {
                    text.push(alphabet[(n % alphabet.len() as u64) as usize]);
                    n /= alphabet.len() as u64;
                }
                for limit in 0..5 {
                    assert_eq!(
                        nests_deeper_than(&text, limit),
                        reference(&text, limit),
                        "{:?} {limit}",
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            text.clear();
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for limit in [1, 3, 8, 64] {
                assert_eq!(nests_deeper_than(&text, limit), reference(&text, limit));
            }
        }
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

    #[test]
    fn numbers_a_float_does_not_hold_are_refused() {
        for exact in [
            r#"{"a": 1}"#,
            r#"{"a": -9223372036854775808, "b": 18446744073709551615}"#,
            r#"{"a": 0.1, "b": 1e20, "c": 100.000, "d": -2.5E-3, "e": 0}"#,
            r#"{"a": 100000000000000000000}"#,
            r#"{"s": "123456789012345678901234567890.5"}"#,
        ] {
            assert!(parse_strict(exact.as_bytes()).is_ok(), "{exact}");
        }
        for inexact in [
            r#"{"id": 100000000000000000001}"#,
            r#"{"a": 0.1000000000000000055511}"#,
            r#"[1e400]"#,
            r#"{"a": 1e-400}"#,
        ] {
            let e = parse_strict(inexact.as_bytes()).unwrap_err();
            assert!(
                e.0.contains("more precision") || e.0.contains("out of range"),
                "{inexact}: {e}"
            );
        }
    }
}
