//! The per-request state machine, generic over the host so it is tested natively.
//! All deciding is the engine's; this only moves bytes and acts on verdicts.

use crate::host::{Host, Level};
use scopegate_engine::answer::{Answer, EventStream, WITHHELD};
use scopegate_engine::audit::{self, AuditContext};
use scopegate_engine::verdict::{Forward, ListFilter, Refusal};
use scopegate_engine::{Decision, Engine, Pending, Secrets, Step, Verdict};
use std::rc::Rc;

/// What the host should do with the stream after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// Compiles the plugin configuration; `None` (and error logs) if it is unusable.
pub fn configure(host: &dyn Host) -> Option<Engine> {
    let Some(config) = host.plugin_configuration() else {
        host.log(
            Level::Critical,
            "scopegate: no plugin configuration (the bundle JSON)",
        );
        return None;
    };
    let env = |name: &str| host.env_var(name);
    match Engine::from_json(&config, &Secrets::Env(&env)) {
        Ok(engine) => {
            let summary = engine.policy().summary();
            host.log(Level::Info, &format!("scopegate: loaded {summary}"));
            Some(engine)
        }
        Err(errors) => {
            for line in errors.to_string().lines() {
                host.log(Level::Critical, &format!("scopegate: {line}"));
            }
            None
        }
    }
}

enum State {
    /// Before request headers.
    Start,
    /// Held while the body arrives.
    Buffering(Pending),
    /// Decided; the verdict is kept for the audit record.
    Decided(Verdict),
    /// Unconfigured VM: refused.
    Refused,
}

/// How an allowed MCP answer that lists tools, resources or prompts comes back.
enum Reply {
    /// Not filtered.
    Pass,
    /// `application/json`: held whole (headers too, so `content-length` is set right),
    /// filtered at its end.
    Whole(ListFilter),
    /// An encoded body the filter cannot read: held, then withheld.
    Withhold,
    /// `text/event-stream`: filtered event by event as it streams.
    Events(ListFilter, EventStream),
}

/// Longest JSON answer held for filtering; a longer one is withheld.
const MAX_HELD_ANSWER: usize = 16 * 1024 * 1024;

pub struct Stream<H: Host> {
    engine: Option<Rc<Engine>>,
    host: H,
    state: State,
    body_size: usize,
    reply: Reply,
}

impl<H: Host> Stream<H> {
    pub fn new(engine: Option<Rc<Engine>>, host: H) -> Self {
        Stream {
            engine,
            host,
            state: State::Start,
            body_size: 0,
            reply: Reply::Pass,
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    pub fn on_request_headers(&mut self, end_of_stream: bool) -> Flow {
        let Some(engine) = self.engine.clone() else {
            self.state = State::Refused;
            let body = br#"{"decision":"deny","reason":"scopegate is not configured"}"#;
            self.host
                .send_response(503, &[("content-type", "application/json")], body);
            return Flow::Pause;
        };
        let headers = self.host.request_headers();
        match engine.begin(headers, !end_of_stream, self.host.now_ms()) {
            Step::Decided(v) => self.act(v),
            Step::NeedBody(p) => {
                // Safe before the decision: the request is held until it is made.
                apply(&self.host, p.forward());
                self.state = State::Buffering(p);
                Flow::Pause
            }
        }
    }

    pub fn on_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        self.body_size = body_size;
        match &self.state {
            State::Buffering(p) if body_size > p.max_body_bytes() => {
                self.decide_with(|engine, p, _| engine.too_large(p))
            }
            State::Buffering(_) if end_of_stream => self.finish(),
            State::Buffering(_) => Flow::Pause,
            State::Decided(v) if v.decision == Decision::Allow => Flow::Continue,
            _ => Flow::Pause,
        }
    }

    /// HTTP/2 trailers end the stream without an end-of-stream body callback: decide here.
    pub fn on_request_trailers(&mut self) -> Flow {
        match &self.state {
            State::Buffering(_) => self.finish(),
            State::Decided(v) if v.decision == Decision::Allow => Flow::Continue,
            _ => Flow::Pause,
        }
    }

    /// Chooses how an allowed MCP list answer is filtered (other answers pass).
    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Flow {
        let State::Decided(Verdict {
            list_filter: Some(f),
            ..
        }) = &self.state
        else {
            return Flow::Continue;
        };
        let f = *f;
        if end_of_stream {
            return Flow::Continue;
        }
        let h = &self.host;
        let encoded = h
            .response_header("content-encoding")
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
        let media = h
            .response_header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        self.reply = if encoded {
            h.remove_response_header("content-encoding");
            h.set_response_header("content-type", "application/json");
            Reply::Withhold
        } else if media.starts_with("application/json") {
            Reply::Whole(f)
        } else if media.starts_with("text/event-stream") {
            h.remove_response_header("content-length");
            Reply::Events(f, EventStream::default())
        } else {
            Reply::Pass
        };
        match self.reply {
            Reply::Whole(_) | Reply::Withhold => Flow::Pause,
            _ => Flow::Continue,
        }
    }

    pub fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Flow {
        let Some(engine) = self.engine.clone() else {
            return Flow::Continue;
        };
        match &mut self.reply {
            Reply::Pass => Flow::Continue,
            Reply::Whole(_) | Reply::Withhold if body_size > MAX_HELD_ANSWER => {
                self.reply = Reply::Withhold;
                self.replace_answer(body_size, None);
                Flow::Continue
            }
            Reply::Whole(_) | Reply::Withhold if !end_of_stream => Flow::Pause,
            Reply::Whole(f) => {
                let f = *f;
                self.replace_answer(body_size, Some((&engine, f)));
                Flow::Continue
            }
            Reply::Withhold => {
                self.replace_answer(body_size, None);
                Flow::Continue
            }
            Reply::Events(f, st) => {
                let chunk = self.host.response_body(body_size).unwrap_or_default();
                let out = engine.filter_events(f, st, &chunk, end_of_stream);
                if out != chunk && !self.host.set_response_body(body_size, &out) {
                    self.host.log(
                        Level::Error,
                        "scopegate: cannot rewrite an MCP event stream",
                    );
                }
                Flow::Continue
            }
        }
    }

    /// Upstream trailers end the answer without an end-of-stream body callback.
    pub fn on_response_trailers(&mut self) -> Flow {
        match self.reply {
            Reply::Whole(_) | Reply::Withhold => {
                let size = self.host.response_body(usize::MAX).map_or(0, |b| b.len());
                self.on_response_body(size, true)
            }
            _ => Flow::Continue,
        }
    }

    /// Replaces a held answer with its filtered form (`None`: withheld).
    fn replace_answer(&mut self, size: usize, filter: Option<(&Engine, ListFilter)>) {
        let h = &self.host;
        let body = match (filter, h.response_body(size)) {
            (Some((engine, f)), Some(body)) => match engine.filter_answer(&f, &body) {
                Answer::Unchanged => return,
                Answer::Replaced(b) => b,
            },
            _ => WITHHELD.as_bytes().to_vec(),
        };
        if h.set_response_body(size, &body) {
            h.set_response_header("content-length", &body.len().to_string());
        } else {
            h.log(Level::Error, "scopegate: cannot rewrite an MCP answer");
        }
    }

    pub fn on_log(&mut self) {
        let Some(engine) = &self.engine else {
            return;
        };
        let p = engine.policy();
        let ctx = AuditContext {
            bundle: &p.name,
            environment: &p.environment,
            now_ms: self.host.now_ms(),
            status: self.host.response_status(),
            enforced: true,
        };
        let record = match &self.state {
            State::Decided(v) => audit::record(&ctx, v),
            State::Buffering(pending) => audit::incomplete_record(&ctx, pending.subject()),
            State::Start | State::Refused => return,
        };
        self.host.log(Level::Info, &record);
    }

    fn finish(&mut self) -> Flow {
        let size = self.body_size;
        self.decide_with(|engine, p, host| match host.request_body(size) {
            Some(body) => engine.finish(p, &body),
            None => engine.unreadable(p),
        })
    }

    fn decide_with(&mut self, f: impl FnOnce(&Engine, Pending, &H) -> Verdict) -> Flow {
        let (Some(engine), State::Buffering(p)) = (
            self.engine.clone(),
            std::mem::replace(&mut self.state, State::Start),
        ) else {
            return Flow::Pause;
        };
        let v = f(&engine, p, &self.host);
        self.act(v)
    }

    fn act(&mut self, v: Verdict) -> Flow {
        let v = settle(&self.host, v);
        let flow = match (&v.forward, v.status()) {
            (Some(forward), None) => {
                apply(&self.host, forward);
                Flow::Continue
            }
            (_, status) => {
                let headers = v.response_headers();
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                self.host.send_response(
                    status.unwrap_or(403),
                    &headers,
                    v.response_body().as_bytes(),
                );
                Flow::Pause
            }
        };
        self.state = State::Decided(v);
        flow
    }
}

/// What the engine cannot know without state shared by the VM's workers: whether an
/// approval token was already used, and what the key has spent of its budget. Checked,
/// then recorded, with compare-and-swap; any doubt refuses.
fn settle(host: &dyn Host, v: Verdict) -> Verdict {
    if v.forward.is_none() {
        return v;
    }
    let nonces: Vec<(String, i64)> = v
        .approval
        .as_ref()
        .map(|a| a.nonces.clone())
        .unwrap_or_default();
    let mut claims = Vec::new();
    for (nonce, exp) in &nonces {
        let key = format!("scopegate:nonce:{nonce}");
        match host.shared_get(&key) {
            (Some(used), _) if !used.is_empty() => {
                return v.refused(Refusal::BadProof(format!(
                    "approval token already used (nonce `{nonce}`): a token allows one request"
                )));
            }
            (_, cas) => claims.push((key, exp.to_le_bytes().to_vec(), cas)),
        }
    }
    if let Some(b) = v.budget.clone() {
        let counter = b.counter();
        let (count, cas) = match host.shared_get(&counter) {
            (Some(bytes), cas) => (
                bytes
                    .get(..4)
                    .and_then(|s| <[u8; 4]>::try_from(s).ok())
                    .map_or(u32::MAX, u32::from_le_bytes),
                cas,
            ),
            (None, cas) => (0, cas),
        };
        let after = count.saturating_add(b.cost);
        if after > b.limit {
            return v.refused(Refusal::OverBudget {
                key: b.key,
                limit: b.limit,
                per: b.per,
            });
        }
        claims.push((counter, after.to_le_bytes().to_vec(), cas));
    }
    for (key, value, cas) in claims {
        if !host.shared_set(&key, &value, cas) {
            // Another worker changed it between our read and write: refuse rather than
            // double-spend a token or a budget.
            return v.refused(Refusal::BadProof(
                "a concurrent request used the same approval or budget; retry".into(),
            ));
        }
    }
    v
}

fn apply(host: &dyn Host, f: &Forward) {
    for name in &f.remove {
        host.remove_request_header(name);
    }
    for (name, value) in &f.set {
        host.set_request_header(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Fake {
        config: String,
        headers: RefCell<Vec<(String, Vec<u8>)>>,
        body: Vec<u8>,
        sent: RefCell<Option<(u16, String)>>,
        logs: RefCell<Vec<(Level, String)>>,
        resp_headers: RefCell<Vec<(String, String)>>,
        resp_body: RefCell<Vec<u8>>,
        shared: RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>,
    }

    impl Host for &Fake {
        fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
            self.headers.borrow().clone()
        }
        fn request_body(&self, size: usize) -> Option<Vec<u8>> {
            self.body.get(..size).map(<[u8]>::to_vec)
        }
        fn remove_request_header(&self, name: &str) {
            self.headers.borrow_mut().retain(|(n, _)| n != name);
        }
        fn set_request_header(&self, name: &str, value: &str) {
            self.remove_request_header(name);
            self.headers
                .borrow_mut()
                .push((name.to_string(), value.as_bytes().to_vec()));
        }
        fn send_response(&self, status: u16, _: &[(&str, &str)], body: &[u8]) {
            *self.sent.borrow_mut() = Some((status, String::from_utf8_lossy(body).into_owned()));
        }
        fn response_header(&self, name: &str) -> Option<String> {
            let h = self.resp_headers.borrow();
            h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        }
        fn remove_response_header(&self, name: &str) {
            self.resp_headers.borrow_mut().retain(|(n, _)| n != name);
        }
        fn set_response_header(&self, name: &str, value: &str) {
            self.remove_response_header(name);
            self.resp_headers
                .borrow_mut()
                .push((name.to_string(), value.to_string()));
        }
        fn response_body(&self, size: usize) -> Option<Vec<u8>> {
            let b = self.resp_body.borrow();
            Some(b.get(..size.min(b.len()))?.to_vec())
        }
        fn set_response_body(&self, size: usize, data: &[u8]) -> bool {
            let mut b = self.resp_body.borrow_mut();
            let at = size.min(b.len());
            let keep = b.split_off(at);
            *b = [data, &keep].concat();
            true
        }
        fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.shared.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, Some(0)),
            }
        }
        fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
            let mut m = self.shared.borrow_mut();
            let current = m.get(key).map_or(0, |(_, c)| *c);
            if cas.is_some_and(|c| c != current) {
                return false;
            }
            m.insert(key.to_string(), (value.to_vec(), current + 1));
            true
        }
        fn response_status(&self) -> Option<u16> {
            self.sent.borrow().as_ref().map(|s| s.0).or(Some(200))
        }
        fn now_ms(&self) -> i64 {
            1_795_543_200_000
        }
        fn log(&self, level: Level, message: &str) {
            self.logs.borrow_mut().push((level, message.to_string()));
        }
        fn plugin_configuration(&self) -> Option<Vec<u8>> {
            Some(self.config.as_bytes().to_vec())
        }
        fn env_var(&self, name: &str) -> Option<String> {
            match name {
                "UPSTREAM_TOKEN" => Some("upstream-secret".to_string()),
                "SCOPEGATE_APPROVAL_KEY" => Some(APPROVAL_KEY.to_string()),
                _ => None,
            }
        }
    }

    const APPROVAL_KEY: &str = "approval-key-for-filter-tests-0123456789";

    // sha256("reader-key") and sha256("writer-key").
    const BUNDLE: &str = r#"{
      "bundle": "t", "version": 1, "environment": "production",
      "services": [{"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"},
        "rest": {"style": "postgrest"}, "limits": {"max_body_bytes": 16},
        "upstream_auth": {"header": "authorization", "prefix": "Bearer ", "env": "UPSTREAM_TOKEN"}}],
      "roles": [
        {"name": "reader", "allow": [{"service": "rentals", "resources": ["reservations"], "actions": ["read"]}]},
        {"name": "writer", "budget": {"destructive": 1, "per": "1h"}, "allow": [{"service": "rentals", "resources": ["reservations"], "actions": ["read", "create", "delete"], "friction": "approval"}]}],
      "keys": [
        {"id": "reader-1", "sha256": "SHA_READER", "role": "reader"},
        {"id": "writer-1", "sha256": "SHA_WRITER", "role": "writer"}]
    }"#;

    fn fake(method: &str, path: &str, key: &str, body: &[u8]) -> Fake {
        let sha = |k: &str| {
            scopegate_engine::digest::hex(&scopegate_engine::digest::sha256(k.as_bytes()))
        };
        let h = |n: &str, v: &str| (n.to_string(), v.as_bytes().to_vec());
        Fake {
            config: BUNDLE
                .replace("SHA_READER", &sha("reader-key"))
                .replace("SHA_WRITER", &sha("writer-key")),
            headers: RefCell::new(vec![
                h(":method", method),
                h(":path", path),
                h(":authority", "api.test"),
                h("authorization", &format!("Bearer {key}")),
                h("x-scopegate-role", "admin"),
                h("x-request-id", "req-1"),
            ]),
            body: body.to_vec(),
            ..Fake::default()
        }
    }

    fn stream(f: &Fake) -> Stream<&Fake> {
        Stream::new(configure(&f).map(Rc::new), f)
    }

    fn header(f: &Fake, name: &str) -> Option<String> {
        f.headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    fn audit_line(f: &Fake) -> serde_json::Value {
        let logs = f.logs.borrow();
        let (_, line) = logs.last().unwrap();
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn allowed_get_forwards_with_upstream_auth_and_identity() {
        let f = fake("GET", "/rest/reservations?id=eq.1", "reader-key", b"");
        let mut s = stream(&f);
        assert_eq!(s.on_request_headers(true), Flow::Continue);
        assert_eq!(
            header(&f, "authorization").unwrap(),
            "Bearer upstream-secret"
        );
        assert_eq!(header(&f, "x-scopegate-key").unwrap(), "reader-1");
        assert_eq!(header(&f, "x-scopegate-role").unwrap(), "reader");
        assert!(f.sent.borrow().is_none());
        s.on_log();
        let rec = audit_line(&f);
        assert_eq!(rec["decision"], "allow");
        assert_eq!(rec["status"], 200);
        assert_eq!(rec["key"], "reader-1");
        assert_eq!(rec["ts"], "2026-11-24T18:00:00.000Z");
        assert!(!rec.to_string().contains("reader-key"));
        assert!(!rec.to_string().contains("upstream-secret"));
    }

    #[test]
    fn denied_delete_replies_locally() {
        let f = fake("DELETE", "/rest/reservations?id=eq.1", "reader-key", b"");
        let mut s = stream(&f);
        assert_eq!(s.on_request_headers(true), Flow::Pause);
        let (status, body) = f.sent.borrow().clone().unwrap();
        assert_eq!(status, 403);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["decision"], "deny");
        assert_eq!(body["request_id"], "req-1");
        s.on_log();
        assert_eq!(audit_line(&f)["status"], 403);
    }

    #[test]
    fn challenge_waits_for_body_and_trailers() {
        let f = fake("POST", "/rest/reservations", "writer-key", b"{\"id\":1}");
        let mut s = stream(&f);
        assert_eq!(s.on_request_headers(false), Flow::Pause);
        assert!(f.sent.borrow().is_none());
        assert_eq!(s.on_request_body(4, false), Flow::Pause);
        assert_eq!(s.on_request_body(8, false), Flow::Pause);
        assert!(
            f.sent.borrow().is_none(),
            "no decision before the body ends"
        );
        assert_eq!(s.on_request_trailers(), Flow::Pause);
        let (status, body) = f.sent.borrow().clone().unwrap();
        assert_eq!(status, 428);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["friction"], "approval");
        assert!(body["challenge"].as_str().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn oversized_body_is_413() {
        let f = fake("POST", "/rest/reservations", "writer-key", &[b'x'; 40]);
        let mut s = stream(&f);
        assert_eq!(s.on_request_headers(false), Flow::Pause);
        assert_eq!(s.on_request_body(17, false), Flow::Pause);
        assert_eq!(f.sent.borrow().as_ref().unwrap().0, 413);
        s.on_log();
        assert_eq!(audit_line(&f)["decision"], "too_large");
    }

    #[test]
    fn reset_mid_body_is_audited_incomplete() {
        let f = fake("POST", "/rest/reservations", "writer-key", b"{}");
        let mut s = stream(&f);
        assert_eq!(s.on_request_headers(false), Flow::Pause);
        s.on_log();
        assert_eq!(audit_line(&f)["decision"], "incomplete");
    }

    #[test]
    fn bad_bundle_refuses_configuration_and_traffic() {
        let mut f = fake("GET", "/rest/reservations", "reader-key", b"");
        f.config = f
            .config
            .replace("\"role\": \"writer\"}]", "\"role\": \"ghost\"}]");
        assert!(configure(&&f).is_none());
        let logs = f.logs.borrow().clone();
        assert!(
            logs.iter()
                .any(|(l, m)| *l == Level::Critical
                    && m.contains("keys[1].role: unknown role `ghost`")),
            "{logs:?}"
        );
        let mut s = Stream::new(None, &f);
        assert_eq!(s.on_request_headers(true), Flow::Pause);
        assert_eq!(f.sent.borrow().as_ref().unwrap().0, 503);
    }

    const MCP_BUNDLE: &str = r#"{"bundle": "m", "version": 1, "environment": "production",
      "services": [{"name": "tools", "protocol": "mcp", "match": {"path_prefix": "/mcp"}}],
      "roles": [{"name": "reader", "allow": [{"service": "tools", "resources": ["get_*"], "actions": ["read"]}]}],
      "keys": [{"id": "reader-1", "sha256": "SHA_READER", "role": "reader"}]}"#;

    const TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_vehicle"},{"name":"delete_reservation"}]}}"#;

    fn mcp_list() -> Fake {
        let mut f = fake("POST", "/mcp", "reader-key", b"");
        let sha = scopegate_engine::digest::hex(&scopegate_engine::digest::sha256(b"reader-key"));
        f.config = MCP_BUNDLE.replace("SHA_READER", &sha);
        f.body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec();
        f.headers.borrow_mut().extend([
            ("content-type".to_string(), b"application/json".to_vec()),
            ("accept-encoding".to_string(), b"gzip".to_vec()),
        ]);
        f
    }

    fn respond(f: &Fake, content_type: &str, body: &str) {
        *f.resp_headers.borrow_mut() = vec![
            ("content-type".into(), content_type.into()),
            ("content-length".into(), body.len().to_string()),
        ];
        *f.resp_body.borrow_mut() = body.as_bytes().to_vec();
    }

    #[test]
    fn mcp_json_list_answer_is_filtered_with_its_length() {
        let f = mcp_list();
        let mut s = stream(&f);
        assert_eq!(s.on_request_headers(false), Flow::Pause);
        assert_eq!(s.on_request_body(f.body.len(), true), Flow::Continue);
        assert!(
            header(&f, "accept-encoding").is_none(),
            "answers are asked for uncompressed"
        );
        respond(&f, "application/json", TOOLS);
        assert_eq!(
            s.on_response_headers(false),
            Flow::Pause,
            "headers wait for the length"
        );
        assert_eq!(s.on_response_body(10, false), Flow::Pause);
        assert_eq!(s.on_response_body(TOOLS.len(), true), Flow::Continue);
        let body = String::from_utf8(f.resp_body.borrow().clone()).unwrap();
        assert!(
            body.contains("get_vehicle") && !body.contains("delete_reservation"),
            "{body}"
        );
        assert_eq!(
            (&f).response_header("content-length").unwrap(),
            body.len().to_string()
        );
    }

    #[test]
    fn mcp_event_stream_and_encoded_answers() {
        let f = mcp_list();
        let mut s = stream(&f);
        s.on_request_headers(false);
        s.on_request_body(f.body.len(), true);
        let events = format!("event: message\ndata: {TOOLS}\n\n");
        respond(&f, "text/event-stream", &events);
        assert_eq!(s.on_response_headers(false), Flow::Continue);
        assert!((&f).response_header("content-length").is_none());
        assert_eq!(s.on_response_body(events.len(), true), Flow::Continue);
        let body = String::from_utf8(f.resp_body.borrow().clone()).unwrap();
        assert!(body.starts_with("event: message\ndata: {"), "{body}");
        assert!(!body.contains("delete_reservation"), "{body}");

        // A compressed answer cannot be read: withheld, never passed.
        let f = mcp_list();
        let mut s = stream(&f);
        s.on_request_headers(false);
        s.on_request_body(f.body.len(), true);
        respond(&f, "application/json", "\u{1f}\u{8b}gzip");
        (&f).set_response_header("content-encoding", "gzip");
        assert_eq!(s.on_response_headers(false), Flow::Pause);
        assert_eq!(s.on_response_body(6, true), Flow::Continue);
        let body = String::from_utf8(f.resp_body.borrow().clone()).unwrap();
        assert!(body.contains("withheld"), "{body}");
        assert!((&f).response_header("content-encoding").is_none());
    }

    #[test]
    fn approval_tokens_are_single_use_and_budgets_count() {
        use scopegate_engine::approval::{issue, ApprovalKey, Grant};
        let f = fake("DELETE", "/rest/reservations?id=eq.1", "writer-key", b"");
        let original = f.headers.borrow().clone();
        let mut s = stream(&f);
        assert_eq!(s.on_request_headers(true), Flow::Pause);
        let (status, body) = f.sent.borrow().clone().unwrap();
        assert_eq!(status, 428);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let digest = body["challenge"].as_str().unwrap().to_string();
        let key = ApprovalKey::new(APPROVAL_KEY.as_bytes()).unwrap();
        let token = |nonce: &str| {
            issue(
                &key,
                &Grant {
                    v: 1,
                    digest: digest.clone(),
                    key: "writer-1".into(),
                    exp: 1_795_543_200 + 300,
                    approver: "alice".into(),
                    nonce: nonce.into(),
                },
            )
        };
        // The same filter VM (shared data) sees three retries.
        let retry = |t: &str| {
            let mut h = original.clone();
            h.push(("x-scopegate-approval".to_string(), t.as_bytes().to_vec()));
            *f.headers.borrow_mut() = h;
            *f.sent.borrow_mut() = None;
            let mut s = stream(&f);
            let flow = s.on_request_headers(true);
            s.on_log();
            (flow, f.sent.borrow().clone())
        };
        let (flow, sent) = retry(&token("n-1"));
        assert_eq!((flow, sent), (Flow::Continue, None), "approved: forwarded");
        assert!(
            header(&f, "x-scopegate-approval").is_none(),
            "the token is not forwarded"
        );
        assert_eq!(audit_line(&f)["approval"], "alice");
        let (flow, sent) = retry(&token("n-1"));
        assert_eq!(flow, Flow::Pause);
        let (status, body) = sent.unwrap();
        assert_eq!(status, 403);
        assert!(body.contains("already used"), "{body}");
        let (_, sent) = retry(&token("n-2"));
        let (status, body) = sent.unwrap();
        assert_eq!(status, 429, "{body}");
        assert!(
            body.contains("budget of 1 destructive operations per 1h"),
            "{body}"
        );
        assert_eq!(audit_line(&f)["decision"], "over_budget");
    }
}
