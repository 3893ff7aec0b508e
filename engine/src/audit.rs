//! The audit record: one JSON line per request (DESIGN.md). Never holds a key, an
//! approval key, an upstream credential or a body — only ids, decisions, digests, and
//! the records (ids) each operation touches, bounded (and hashed, or omitted, when the
//! bundle says so).
//!
//! Serialised straight from borrowed fields (no intermediate JSON tree): it is written
//! for every request, so it is on the hot path.

use crate::digest::{hex, sha256};
use crate::operation::{Action, Records, Scope};
use crate::policy::{AuditKey, AuditOptions, RecordValues};
use crate::time::format_rfc3339_millis;
use crate::verdict::{Subject, Verdict};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest record value, query or user agent kept (bytes); longer ones are cut, `…`.
pub const MAX_VALUE_BYTES: usize = 128;
pub const MAX_QUERY_BYTES: usize = 1024;
pub const MAX_USER_AGENT_BYTES: usize = 256;
/// Record keys shown per operation.
pub const MAX_RECORD_KEYS: usize = 8;

/// Context a record needs besides the verdict.
pub struct AuditContext<'a> {
    pub bundle: &'a str,
    pub environment: &'a str,
    pub now_ms: i64,
    /// Final response status as the host saw it (`None` if the stream never got one).
    pub status: Option<u16>,
    pub enforced: bool,
    pub options: &'a AuditOptions,
    /// The downstream peer's address (`None` where the host does not say).
    pub client: Option<&'a str>,
}

impl<'a> AuditContext<'a> {
    /// The context of a record from the filter: the policy's bundle, environment and
    /// audit options.
    pub fn of(policy: &'a crate::policy::Policy, now_ms: i64, status: Option<u16>) -> Self {
        AuditContext {
            bundle: &policy.name,
            environment: &policy.environment,
            now_ms,
            status,
            enforced: true,
            options: &policy.audit,
            client: None,
        }
    }

    pub fn with_client(mut self, client: Option<&'a str>) -> Self {
        self.client = client;
        self
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct Op<'a> {
    service: &'a str,
    action: Action,
    resource: &'a str,
    scope: Scope,
    /// Record key -> the values touched (bounded; hashed or omitted per the bundle).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    records: BTreeMap<&'a str, Vec<Cow<'a, str>>>,
    /// Values left out beyond `max_values` per key.
    #[serde(skip_serializing_if = "is_zero")]
    records_cut: usize,
}

#[derive(Serialize)]
struct Record<'a> {
    ts: String,
    bundle: &'a str,
    environment: &'a str,
    request_id: &'a str,
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<&'a str>,
    role: Option<&'a str>,
    service: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    query: Option<Cow<'a, str>>,
    client: Option<&'a str>,
    user_agent: Option<Cow<'a, str>>,
    operations: Vec<Op<'a>>,
    decision: &'a str,
    reason: &'a str,
    rule: Option<&'a str>,
    digest: Option<&'a str>,
    /// Who approved (several joined with `+`).
    approval: Option<String>,
    status: Option<u16>,
    enforced: bool,
}

impl<'a> Record<'a> {
    fn new(ctx: &'a AuditContext, s: &'a Subject, decision: &'a str, reason: &'a str) -> Self {
        Record {
            ts: format_rfc3339_millis(ctx.now_ms),
            bundle: ctx.bundle,
            environment: ctx.environment,
            request_id: &s.request_id,
            key: s.key.as_deref(),
            credential: s.credential.as_deref(),
            role: s.role.as_deref(),
            service: s.service.as_deref(),
            method: &s.method,
            path: &s.path,
            query: s.query.as_deref().map(|q| query(q, &ctx.options.values)),
            client: ctx.client,
            user_agent: s
                .user_agent
                .as_deref()
                .map(|u| cut(u, MAX_USER_AGENT_BYTES)),
            operations: Vec::new(),
            decision,
            reason,
            rule: None,
            digest: None,
            approval: None,
            status: ctx.status,
            enforced: ctx.enforced,
        }
    }

    fn line(&self) -> String {
        // Serialising plain strings, numbers and options cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `s`, cut at `max` bytes (on a character boundary) with `…` when longer.
fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", s.get(..end).unwrap_or_default()))
}

/// A value as the bundle wants it in records: `hmac:` and 16 hex digits when hashed.
fn value<'a>(v: &'a str, values: &RecordValues) -> Cow<'a, str> {
    match values {
        RecordValues::Hashed(Some(k)) => Cow::Owned(hashed(k, v)),
        _ => cut(v, MAX_VALUE_BYTES),
    }
}

fn hashed(k: &AuditKey, v: &str) -> String {
    format!(
        "hmac:{}",
        hex(k.mac(v.as_bytes()).get(..8).unwrap_or_default())
    )
}

/// Query parameters that carry credentials somewhere (API keys, OAuth tokens, signed
/// URLs): their values never reach a record.
const SECRET_PARAMS: [&str; 20] = [
    "apikey",
    "api_key",
    "api-key",
    "key",
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "session_token",
    "auth",
    "authorization",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "code",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-security-token",
];

/// A query value that is a credential: by its parameter's name, or a scopegate key.
fn secret_param(name: &str, value: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name)) || value.starts_with("sgk_")
}

/// The query as received, or with every value hashed (`hashed`) or dropped (`omitted`);
/// a credential's value is `<redacted>` in every mode.
fn query<'a>(q: &'a str, values: &RecordValues) -> Cow<'a, str> {
    let (plain, key) = match values {
        RecordValues::Plain => (true, None),
        RecordValues::Hashed(k) => (false, k.as_ref()),
        RecordValues::Omitted => (false, None),
    };
    if plain
        && !q
            .split('&')
            .filter_map(|p| p.split_once('='))
            .any(|(n, v)| secret_param(n, v))
    {
        return cut(q, MAX_QUERY_BYTES);
    }
    let mut out = String::with_capacity(q.len().min(MAX_QUERY_BYTES + 64));
    for (i, pair) in q.split('&').enumerate() {
        // Bounded work whatever the query: what the record cannot show is not hashed.
        if out.len() > MAX_QUERY_BYTES {
            break;
        }
        if i > 0 {
            out.push('&');
        }
        let (name, v) = pair.split_once('=').unwrap_or(("", pair));
        if !name.is_empty() {
            out.push_str(name);
            out.push('=');
        }
        match key {
            _ if secret_param(name, v) => out.push_str("<redacted>"),
            _ if plain => out.push_str(v),
            Some(k) => out.push_str(&hashed(k, v)),
            None => {}
        }
    }
    Cow::Owned(cut(&out, MAX_QUERY_BYTES).into_owned())
}

/// Whether a record key names rows: `id`, `*_id`, `*Id`, `*ID`, or a key the bundle's
/// grants name.
fn identifies(name: &str, o: &AuditOptions) -> bool {
    name.eq_ignore_ascii_case("id")
        || name.ends_with("_id")
        || name.ends_with("Id")
        || name.ends_with("ID")
        || o.record_keys.iter().any(|k| k == name)
}

/// An operation's records as the record shows them — id-like keys only — and how many
/// values were left out (beyond `max_values`, or under other keys).
fn records<'a>(r: &'a Records, o: &AuditOptions) -> (BTreeMap<&'a str, Vec<Cow<'a, str>>>, usize) {
    let mut left_out = 0;
    let names = matches!(o.values, RecordValues::Omitted | RecordValues::Hashed(None));
    let mut shown = BTreeMap::new();
    for (name, values) in r {
        if !identifies(name, o) || shown.len() >= MAX_RECORD_KEYS {
            left_out += values.len().max(1);
            continue;
        }
        let kept: Vec<Cow<str>> = if names {
            Vec::new()
        } else {
            left_out += values.len().saturating_sub(o.max_values);
            values
                .iter()
                .take(o.max_values)
                .map(|x| value(x, &o.values))
                .collect()
        };
        shown.insert(name.as_str(), kept);
    }
    (shown, left_out)
}

/// The record of a decided request, as one JSON line.
pub fn record(ctx: &AuditContext, verdict: &Verdict) -> String {
    let reason = verdict.reason();
    let mut r = Record::new(ctx, &verdict.subject, verdict.decision().as_str(), &reason);
    r.operations = verdict
        .operations
        .iter()
        .map(|op| {
            let (records, records_cut) = records(&op.records, ctx.options);
            Op {
                service: &op.service,
                action: op.action,
                resource: &op.resource,
                scope: op.scope,
                records,
                records_cut,
            }
        })
        .collect();
    r.rule = verdict.rule.as_deref();
    r.digest = verdict.digest.as_deref();
    r.approval = verdict.approval().map(|a| a.approvers.join("+"));
    r.enforced = ctx.enforced && verdict.enforced();
    r.line()
}

const INCOMPLETE: &str = "stream ended before the request was complete; nothing was forwarded";

/// The record of a stream that ended before any decision (reset while the body was
/// still arriving): nothing was forwarded.
pub fn incomplete_record(ctx: &AuditContext, subject: &Subject) -> String {
    Record::new(ctx, subject, "incomplete", INCOMPLETE).line()
}

/// Tamper evidence (bundle `audit.chain`): each record of a stream (one Wasm VM) gets
/// `"chain": {"stream", "seq", "prev"}` — the stream's random id, a sequence from 1,
/// and the hash of the stream's previous line as written (64 zeros for the first) —
/// so a missing, edited or reordered record shows ([`verify`]).
#[derive(Debug)]
pub struct Chain {
    stream: String,
    seq: u64,
    prev: [u8; 32],
    key: Option<AuditKey>,
}

/// The hash that links a line to the next: HMAC-SHA256 with the audit key, or SHA-256.
fn link(key: Option<&AuditKey>, line: &str) -> [u8; 32] {
    match key {
        Some(k) => k.mac(line.as_bytes()),
        None => sha256(line.as_bytes()),
    }
}

impl Chain {
    pub fn new(stream: String, key: Option<AuditKey>) -> Self {
        Chain {
            stream,
            seq: 0,
            prev: [0; 32],
            key,
        }
    }

    /// The record line with its place in the chain (the line is a JSON object).
    pub fn seal(&mut self, mut line: String) -> String {
        self.seq += 1;
        if line.ends_with('}') {
            line.pop();
        }
        if line.len() > 1 {
            line.push(',');
        }
        line.push_str(&format!(
            r#""chain":{{"stream":"{}","seq":{},"prev":"{}""#,
            self.stream,
            self.seq,
            hex(&self.prev)
        ));
        // Keyed: each line carries its own MAC, so the last record of a stream (which no
        // later `prev` covers) cannot be edited, nor a stream invented, without the key.
        if let Some(k) = &self.key {
            let mac = hex(&k.mac(line.as_bytes()));
            line.push_str(&format!(r#","mac":"{mac}""#));
        }
        line.push_str("}}");
        self.prev = link(self.key.as_ref(), &line);
        line
    }
}

/// What [`verify`] found in a file of records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Stream id -> (records seen, first seq seen, last seq seen).
    pub streams: BTreeMap<String, (u64, u64, u64)>,
    /// Each problem, with its line number (from 1).
    pub problems: Vec<String>,
}

/// A chained record as read: seq, line number, its `prev`, the hash of its line.
type Sealed = (u64, usize, String, [u8; 32]);

/// Checks chained records (one per line, streams interleaved, batches in any order: a
/// stream's records are taken in `seq` order): no seq is missing or repeated and each
/// record's `prev` is the hash of the stream's record before it, so no record was
/// removed, added, edited or renumbered. A stream first seen after seq 1 is a problem
/// too (its earlier records are not in the file), unless `partial`.
pub fn verify(text: &str, key: Option<&AuditKey>, partial: bool) -> Verified {
    let mut out = Verified::default();
    // Stream -> (seq, line number, prev, hash of the line), as read.
    let mut streams: BTreeMap<String, Vec<Sealed>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                out.problems.push(format!("line {n}: not JSON ({e})"));
                continue;
            }
        };
        let field = |name: &str| v.get("chain").and_then(|c| c.get(name));
        let (Some(stream), Some(seq), Some(prev)) = (
            field("stream").and_then(|x| x.as_str()),
            field("seq").and_then(|x| x.as_u64()),
            field("prev").and_then(|x| x.as_str()),
        ) else {
            out.problems
                .push(format!("line {n}: no chain (stream, seq, prev)"));
            continue;
        };
        if let Some(k) = key {
            let own = line
                .rfind(r#","mac":""#)
                .and_then(|at| Some((line.get(..at)?, field("mac")?.as_str()?)));
            match own {
                Some((signed, mac)) if hex(&k.mac(signed.as_bytes())) == mac => {}
                _ => {
                    out.problems.push(format!(
                        "line {n}: stream {stream} seq {seq}: its MAC does not match (altered, or not written with this key)"
                    ));
                }
            }
        }
        streams.entry(stream.to_string()).or_default().push((
            seq,
            n,
            prev.to_string(),
            link(key, line),
        ));
    }
    let genesis = hex(&[0; 32]);
    for (stream, mut records) in streams {
        records.sort_by_key(|r| (r.0, r.1));
        let (first, last) = match (records.first(), records.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => continue,
        };
        out.streams
            .insert(stream.clone(), (records.len() as u64, first, last));
        if first != 1 && !partial {
            out.problems.push(format!(
                "stream {stream} starts at seq {first}: records before it are missing"
            ));
        }
        let mut before: Option<&Sealed> = None;
        for r in &records {
            let (seq, n, prev, _) = r;
            match before {
                None if *seq == 1 && *prev != genesis => out.problems.push(format!(
                    "line {n}: stream {stream} seq 1 has a previous hash"
                )),
                None => {}
                Some(b) if *seq == b.0 => out.problems.push(format!(
                    "line {n}: stream {stream} seq {seq} is repeated (line {})",
                    b.1
                )),
                Some(b) if *seq > b.0 + 1 => out.problems.push(format!(
                    "line {n}: stream {stream} seq {seq} follows seq {}: records missing",
                    b.0
                )),
                Some(b) if *prev != hex(&b.3) => out.problems.push(format!(
                    "line {n}: stream {stream} seq {seq}: the record before it (line {}) was altered, or this one was",
                    b.1
                )),
                Some(_) => {}
            }
            before = Some(r);
        }
    }
    out
}

/// The decision as Envoy's access log sees it with `filter_state: fields`: one property
/// per field, `scopegate_<field>` ("-" for none). (`json` sets the record itself.)
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub decision: &'a str,
    pub reason: Cow<'a, str>,
    pub key: Option<&'a str>,
    pub role: Option<&'a str>,
    pub service: Option<&'a str>,
    pub rule: Option<&'a str>,
    /// `action resource` pairs, comma-separated.
    pub operations: String,
    pub enforced: bool,
}

impl<'a> Summary<'a> {
    pub fn of(v: &'a Verdict) -> Self {
        let mut operations = String::new();
        for (i, o) in v.operations.iter().enumerate() {
            if i > 0 {
                operations.push_str(", ");
            }
            operations.push_str(o.action.as_str());
            operations.push(' ');
            operations.push_str(&o.resource);
        }
        Summary {
            rule: v.rule.as_deref(),
            operations,
            enforced: v.enforced(),
            ..Summary::new(&v.subject, v.decision().as_str(), v.reason())
        }
    }

    /// A stream that ended before any decision (see [`incomplete_record`]).
    pub fn incomplete(s: &'a Subject) -> Self {
        Summary::new(s, "incomplete", INCOMPLETE.into())
    }

    fn new(s: &'a Subject, decision: &'a str, reason: Cow<'a, str>) -> Self {
        Summary {
            decision,
            reason,
            key: s.key.as_deref(),
            role: s.role.as_deref(),
            service: s.service.as_deref(),
            rule: None,
            operations: String::new(),
            enforced: true,
        }
    }

    /// The `fields` form: (property name, value) pairs.
    pub fn fields(&self) -> [(&'static str, &str); 8] {
        let or_dash = |v: Option<&'a str>| v.unwrap_or("-");
        [
            ("scopegate_decision", self.decision),
            ("scopegate_reason", &self.reason),
            ("scopegate_key", or_dash(self.key)),
            ("scopegate_role", or_dash(self.role)),
            ("scopegate_service", or_dash(self.service)),
            ("scopegate_rule", or_dash(self.rule)),
            ("scopegate_operations", &self.operations),
            (
                "scopegate_enforced",
                if self.enforced { "true" } else { "false" },
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Operation;
    use crate::verdict::{Outcome, Refusal};

    fn sample() -> Verdict {
        Verdict {
            outcome: Outcome::Refuse(Refusal::Denied("guard: volume* destructive".into())),
            rule: Some("guards[0]".into()),
            grants: crate::verdict::GrantSet::default(),
            subject: Subject {
                request_id: "req-1".into(),
                method: "POST".into(),
                path: "/graphql".into(),
                key: Some("agent-domains".into()),
                role: Some("domains".into()),
                service: Some("railway".into()),
                ..Subject::default()
            },
            operations: vec![Operation::new("railway", Action::Delete, "volumeDelete")],
            digest: Some("sha256:ab".into()),
            shadow: None,
        }
    }

    fn ctx(options: &AuditOptions) -> AuditContext<'_> {
        AuditContext {
            bundle: "rentals-prod",
            environment: "production",
            now_ms: 1_795_543_200_123,
            status: Some(403),
            enforced: true,
            options,
            client: Some("10.0.0.7:51234"),
        }
    }

    #[test]
    fn record_fields_in_design_order() {
        let v = sample();
        let options = AuditOptions::default();
        let ctx = ctx(&options);
        assert_eq!(
            record(&ctx, &v),
            r#"{"ts":"2026-11-24T18:00:00.123Z","bundle":"rentals-prod","environment":"production","request_id":"req-1","key":"agent-domains","role":"domains","service":"railway","method":"POST","path":"/graphql","query":null,"client":"10.0.0.7:51234","user_agent":null,"operations":[{"service":"railway","action":"delete","resource":"volumeDelete","scope":"some"}],"decision":"deny","reason":"guard: volume* destructive","rule":"guards[0]","digest":"sha256:ab","approval":null,"status":403,"enforced":true}"#
        );
        let line = incomplete_record(&ctx, &v.subject);
        assert!(line.contains(r#""decision":"incomplete""#) && line.contains(r#""operations":[]"#));
    }

    fn with_records(n: usize) -> Verdict {
        let mut v = sample();
        let mut op = Operation::new("rentals", Action::Delete, "reservations");
        op.records.insert(
            "id".into(),
            (0..n).map(|i| format!("r-{i}")).collect::<Vec<_>>(),
        );
        op.records.insert("order_id".into(), vec!["x".repeat(300)]);
        // A created row's other columns: never in the record, only counted.
        op.records.insert("password".into(), vec!["hunter2".into()]);
        v.operations = vec![op];
        v.subject.query = Some("id=eq.r-2&select=*".into());
        v.subject.user_agent = Some("agent/1.0".into());
        v
    }

    #[test]
    fn records_are_named_bounded_hashed_or_omitted() {
        let v = with_records(20);
        let plain = AuditOptions::default();
        let line: serde_json::Value = serde_json::from_str(&record(&ctx(&plain), &v)).unwrap();
        let op = &line["operations"][0];
        assert_eq!(op["records"]["id"].as_array().unwrap().len(), 16);
        assert_eq!(op["records"]["id"][0], "r-0");
        assert_eq!(op["records_cut"], 5, "4 values beyond 16, and the password");
        assert!(op["records"].get("password").is_none());
        let long = op["records"]["order_id"][0].as_str().unwrap();
        assert!(long.ends_with('…') && long.len() == MAX_VALUE_BYTES + '…'.len_utf8());
        assert_eq!(line["query"], "id=eq.r-2&select=*");
        let mut leaky = v.clone();
        leaky.subject.query = Some("id=eq.1&api_key=abc123&x=sgk_live_secret&Token=t".into());
        let text = record(&ctx(&plain), &leaky);
        assert!(
            text.contains(r#""query":"id=eq.1&api_key=<redacted>&x=<redacted>&Token=<redacted>""#),
            "{text}"
        );
        assert_eq!(line["user_agent"], "agent/1.0");

        let key = AuditKey::new(&[b'q'; 32]).unwrap();
        let hashed = AuditOptions {
            values: RecordValues::Hashed(Some(key.clone())),
            max_values: 2,
            ..AuditOptions::default()
        };
        let text = record(&ctx(&hashed), &v);
        assert!(
            !text.contains("r-0") && !text.contains("eq.r-2") && !text.contains("hunter2"),
            "{text}"
        );
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        let h = line["operations"][0]["records"]["id"][0].as_str().unwrap();
        assert_eq!(h, hashed_value(&key, "r-0"));
        assert_eq!(h.len(), "hmac:".len() + 16);
        assert_eq!(line["operations"][0]["records_cut"], 19);
        assert_eq!(
            line["query"],
            format!(
                "id={}&select={}",
                hashed_value(&key, "eq.r-2"),
                hashed_value(&key, "*")
            )
        );

        let omitted = AuditOptions {
            values: RecordValues::Omitted,
            ..AuditOptions::default()
        };
        let line: serde_json::Value = serde_json::from_str(&record(&ctx(&omitted), &v)).unwrap();
        assert_eq!(
            line["operations"][0]["records"]["id"],
            serde_json::json!([])
        );
        assert_eq!(line["query"], "id=&select=");
        assert_eq!(
            line["operations"][0]["records_cut"], 1,
            "the password's column, counted"
        );
    }

    fn hashed_value(k: &AuditKey, v: &str) -> String {
        hashed(k, v)
    }

    #[test]
    fn chain_detects_gaps_edits_and_reordering() {
        let v = sample();
        let options = AuditOptions::default();
        let mut a = Chain::new("aaaa".into(), None);
        let mut b = Chain::new("bbbb".into(), None);
        let mut lines = Vec::new();
        for i in 0..7 {
            let c = if i % 2 == 1 && i < 4 { &mut b } else { &mut a };
            lines.push(c.seal(record(&ctx(&options), &v)));
        }
        let all = lines.join("\n");
        let ok = verify(&all, None, false);
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!(ok.streams["aaaa"], (5, 1, 5));
        assert_eq!(ok.streams["bbbb"], (2, 1, 2));
        // Keyed with the wrong key, or unkeyed checked with a key: every link fails.
        let key = AuditKey::new(&[b'k'; 32]).unwrap();
        assert!(!verify(&all, Some(&key), false).problems.is_empty());

        // A record of stream a removed.
        let mut gap = lines.clone();
        gap.remove(2);
        let p = verify(&gap.join("\n"), None, false).problems;
        assert!(p.len() == 1 && p[0].contains("records missing"), "{p:?}");
        // An edit: the next record's link no longer matches.
        let mut edited = lines.clone();
        edited[0] = edited[0].replace("\"deny\"", "\"allow\"");
        let p = verify(&edited.join("\n"), None, false).problems;
        assert!(p.len() == 1 && p[0].contains("altered"), "{p:?}");
        // Batches arrive in any order: the lines' order does not matter, the seqs do.
        let mut swapped = lines.clone();
        swapped.swap(4, 5);
        assert!(verify(&swapped.join("\n"), None, false).problems.is_empty());
        // Two records' seqs swapped (the order rewritten): their links break.
        let mut renumbered = lines.clone();
        renumbered[4] = renumbered[4].replace("\"seq\":3", "\"seq\":4");
        renumbered[5] = renumbered[5].replace("\"seq\":4", "\"seq\":3");
        assert!(renumbered[4] != lines[4] && renumbered[5] != lines[5]);
        assert!(!verify(&renumbered.join("\n"), None, false)
            .problems
            .is_empty());
        // A record repeated.
        let mut twice = lines.clone();
        twice.push(lines[3].clone());
        let p = verify(&twice.join("\n"), None, false).problems;
        assert!(p.len() == 1 && p[0].contains("repeated"), "{p:?}");
        // A file that starts mid-stream: a problem unless partial.
        let tail = lines.get(4..).unwrap().join("\n");
        assert!(!verify(&tail, None, false).problems.is_empty());
        assert!(verify(&tail, None, true).problems.is_empty());
        // A keyed chain verifies with its key only; its last record, which no later
        // `prev` covers, cannot be edited, nor a stream invented.
        let mut k = Chain::new("cccc".into(), Some(key.clone()));
        let keyed = [
            k.seal(r#"{"decision":"deny"}"#.into()),
            k.seal(r#"{"decision":"deny"}"#.into()),
        ];
        assert!(verify(&keyed.join("\n"), Some(&key), false)
            .problems
            .is_empty());
        assert!(!verify(&keyed.join("\n"), None, false).problems.is_empty());
        let last_edited = [keyed[0].clone(), keyed[1].replace("deny", "allow")].join("\n");
        let p = verify(&last_edited, Some(&key), false).problems;
        assert!(p.len() == 1 && p[0].contains("MAC does not match"), "{p:?}");
        let mut forger = Chain::new("ffff".into(), None);
        let invented = [
            keyed.join("\n"),
            forger.seal(r#"{"decision":"allow"}"#.into()),
        ]
        .join("\n");
        assert!(!verify(&invented, Some(&key), false).problems.is_empty());
        // seq 0 is not a start: said, without arithmetic on it.
        assert!(!verify(
            r#"{"chain":{"stream":"z","seq":0,"prev":"00"}}"#,
            None,
            false
        )
        .problems
        .is_empty());
    }

    #[test]
    fn summary_fields() {
        let mut v = sample();
        v.subject.role = None;
        v.operations = vec![
            Operation::new("railway", Action::Delete, "volumeDelete"),
            Operation::new("railway", Action::Read, "volume"),
        ];
        let s = Summary::of(&v);
        let f = s.fields();
        assert_eq!(f[0], ("scopegate_decision", "deny"));
        assert_eq!(f[3], ("scopegate_role", "-"));
        assert_eq!(
            f[6],
            ("scopegate_operations", "delete volumeDelete, read volume")
        );
        assert_eq!(f[7], ("scopegate_enforced", "true"));
        let i = Summary::incomplete(&v.subject);
        assert_eq!(
            (i.decision, i.key, i.operations.as_str()),
            ("incomplete", Some("agent-domains"), "")
        );
    }
}
