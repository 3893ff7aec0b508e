//! The per-request state machine, generic over the host so it is tested natively.
//! All deciding is the engine's; this only moves bytes and acts on verdicts.

use crate::host::{Host, Level};
use crate::recorder::Recorder;
use scopegate_engine::answer::{Answer, EventStream, WITHHELD};
use scopegate_engine::audit::{self, AuditContext, Summary};
use scopegate_engine::bundle::FilterState;
use scopegate_engine::fleet::{Call, EtcdStore, Next, Settlement};
use scopegate_engine::ledger::{settle, Ledger, Spend};
use scopegate_engine::policy::Policy;
use scopegate_engine::request::DecodeKind;
use scopegate_engine::verdict::{Forward, ListFilter, Refusal};
use scopegate_engine::{Decision, Engine, Pending, Secrets, Step, Verdict};
use std::cell::RefCell;
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
            // The local ledger's lock exists before any request (see `ledger::LOCK_KEY`).
            if engine.policy().etcd.is_none() {
                scopegate_engine::ledger::prepare(&SharedData(host));
            }
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
    /// Allowed, waiting for the fleet's state store to record the approval tokens it
    /// uses and the budget it spends (`"state": {"store": "etcd"}`): the call's token.
    AwaitingStore(Verdict, Box<Settlement>, u32),
    /// Allowed, waiting for the audit sink to take the record (`required` audit).
    AwaitingAudit(Verdict, u32),
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
    /// The VM's audit outlets (shared by its streams).
    recorder: Rc<RefCell<Recorder>>,
    /// The record line already at the sink (`required` audit, before forwarding), or on
    /// its way there (the client may leave first).
    handed: Option<String>,
    /// When the request headers arrived (ms since the epoch): the decision's clock and
    /// the audit record's `ts`.
    started_ms: i64,
}

impl<H: Host> Stream<H> {
    /// A stream with outlets of its own (tests, benchmarks); the filter shares its VM's
    /// (`shared`).
    pub fn new(engine: Option<Rc<Engine>>, host: H) -> Self {
        let recorder = Rc::new(RefCell::new(Recorder::new(
            engine.as_deref().map(Engine::policy),
            &host,
        )));
        Stream::shared(engine, host, recorder)
    }

    /// A stream whose records go through the VM's recorder.
    pub fn shared(engine: Option<Rc<Engine>>, host: H, recorder: Rc<RefCell<Recorder>>) -> Self {
        Stream {
            engine,
            host,
            state: State::Start,
            body_size: 0,
            reply: Reply::Pass,
            recorder,
            handed: None,
            started_ms: 0,
        }
    }

    /// Held for the body (paused in the headers callback, waiting for body callbacks).
    pub fn buffering(&self) -> bool {
        matches!(self.state, State::Buffering(_))
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
        self.started_ms = self.host.now_ms();
        // Verified tokens only from where only Envoy's jwt_authn writes: dynamic metadata
        // (read only when the bundle has identities).
        let verified = engine.policy().identities.as_ref().and_then(|ids| {
            let metadata = self.host.dynamic_metadata()?;
            scopegate_engine::policy::verified_payload(&metadata, &ids.metadata_key)
        });
        match engine.begin_verified(headers, verified.as_ref(), !end_of_stream, self.started_ms) {
            Step::Decided(v) => self.act(v),
            Step::NeedBody(p) => {
                // Held: the headers stay the filter's to change until the decision
                // (`act` rewrites them then, once).
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
            State::Decided(v) if v.forwards() => Flow::Continue,
            _ => Flow::Pause,
        }
    }

    /// HTTP/2 trailers end the stream without an end-of-stream body callback: decide here.
    pub fn on_request_trailers(&mut self) -> Flow {
        match &self.state {
            State::Buffering(_) => self.finish(),
            State::Decided(v) if v.forwards() => Flow::Continue,
            _ => Flow::Pause,
        }
    }

    /// Chooses how an allowed MCP list answer is filtered (other answers pass).
    pub fn on_response_headers(&mut self, end_of_stream: bool) -> Flow {
        let State::Decided(v) = &self.state else {
            return Flow::Continue;
        };
        let Some(f) = v.allowed().and_then(|a| a.list_filter) else {
            return Flow::Continue;
        };
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

    /// The record, once per request: to the VM's recorder (chain, log, sink) and, as
    /// filter state, to Envoy's access log — which reads it after this callback, so the
    /// access log carries the same line as the sink, final status and client included.
    pub fn on_log(&mut self) {
        let Some(engine) = self.engine.clone() else {
            return;
        };
        let policy = engine.policy();
        // A held request's record (`required` audit) went to the collector, and to the
        // log, before forwarding, even when the client left before the collector
        // answered: one record per request.
        if let Some(line) = self.handed.take() {
            if let State::Decided(v) | State::AwaitingAudit(v, _) = &self.state {
                count_decision(&self.host, v);
                self.set_filter_state(policy, &line, || Summary::of(v));
            }
            return;
        }
        // A local reply's status is ours; only a forwarded request's is the host's.
        let status = match &self.state {
            State::Decided(v) if !v.forwards() => Some(local_status(v)),
            _ => self.host.response_status(),
        };
        let client = self.host.client_address();
        let ctx = AuditContext::of(policy, self.started_ms, status).with_client(client.as_deref());
        let (record, subject, verdict) = match &self.state {
            State::Decided(v) => {
                count_decision(&self.host, v);
                (audit::record(&ctx, v), &v.subject, Some(v))
            }
            // The client left while the body arrived, or while the state store was asked:
            // nothing was forwarded (a token the store took is spent).
            State::Buffering(pending) => {
                let s = pending.subject();
                (audit::incomplete_record(&ctx, s), s, None)
            }
            State::AwaitingStore(v, ..) => {
                (audit::incomplete_record(&ctx, &v.subject), &v.subject, None)
            }
            State::AwaitingAudit(..) | State::Start | State::Refused => return,
        };
        if verdict.is_none() {
            self.host.count("scopegate_requests_total", 1);
            self.host.count("scopegate_requests_incomplete", 1);
        }
        let mut recorder = self.recorder.borrow_mut();
        let line = recorder.seal(record);
        recorder.log(&self.host, &line);
        self.set_filter_state(policy, &line, || match verdict {
            Some(v) => Summary::of(v),
            None => Summary::incomplete(subject),
        });
        recorder.queue(&self.host, line);
    }

    /// The audit sink answered the record of a held request (`required` audit).
    fn on_audit_answer(&mut self, token: u32) {
        let State::AwaitingAudit(_, t) = &self.state else {
            return;
        };
        if *t != token {
            return;
        }
        let State::AwaitingAudit(v, _) = std::mem::replace(&mut self.state, State::Start) else {
            return;
        };
        match self.host.call_status() {
            Some(s) if (200..300).contains(&s) => {
                self.host.count(crate::sink::SENT, 1);
                if let Some(f) = v.forward() {
                    apply(&self.host, f);
                }
                self.state = State::Decided(v);
                self.host.resume_request();
            }
            status => {
                self.handed = None;
                crate::sink::lost(&self.host, 1);
                let why = match status {
                    Some(s) => format!("the collector answered {s}"),
                    None => "the collector did not answer".into(),
                };
                self.reply_locally(v.refused(Refusal::AuditUnavailable(why)));
            }
        }
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
        // A request that uses approval tokens or spends a budget records them first: in
        // the fleet's store when the bundle names one (asked, and answered, before
        // anything else happens), else in this Envoy's shared data.
        let engine = self.engine.clone();
        let v = match engine.as_ref().and_then(|e| e.policy().etcd.as_ref()) {
            Some(store) => match Spend::of(&v) {
                Some(spend) => return self.ask_state(store, v, spend),
                None => v,
            },
            None => settle(&SharedData(&self.host), v, self.started_ms),
        };
        self.proceed(v)
    }

    /// Starts the settlement of a request's state on etcd: the request is held until it
    /// is answered.
    fn ask_state(&mut self, store: &EtcdStore, v: Verdict, spend: Spend) -> Flow {
        let (settlement, call) = Settlement::start(store, spend, self.started_ms);
        match self.call_state(store, &call) {
            Some(token) => {
                self.state = State::AwaitingStore(v, Box::new(settlement), token);
                Flow::Pause
            }
            None => {
                self.reply_locally(v.refused(dispatch_refused(store)));
                Flow::Pause
            }
        }
    }

    fn call_state(&self, store: &EtcdStore, call: &Call) -> Option<u32> {
        self.host.count("scopegate_state_calls", 1);
        self.host.dispatch(
            &store.cluster,
            &call.headers(store),
            call.body.as_bytes(),
            store.timeout_ms,
        )
    }

    /// A call this request dispatched was answered: the state store's, or the audit
    /// sink's (`required` audit).
    pub fn on_call_answer(&mut self, token: u32, body_size: usize) {
        match &self.state {
            State::AwaitingStore(_, _, t) if *t == token => self.on_state_answer(body_size),
            State::AwaitingAudit(_, t) if *t == token => self.on_audit_answer(token),
            _ => {}
        }
    }

    fn on_state_answer(&mut self, body_size: usize) {
        let State::AwaitingStore(v, mut settlement, _) =
            std::mem::replace(&mut self.state, State::Start)
        else {
            return;
        };
        let status = self.host.call_status();
        let body = self.host.call_body(body_size).unwrap_or_default();
        let engine = self.engine.clone();
        let Some(store) = engine.as_ref().and_then(|e| e.policy().etcd.as_ref()) else {
            return;
        };
        match settlement.answer(status, &body) {
            Next::Call(call) => match self.call_state(store, &call) {
                Some(token) => self.state = State::AwaitingStore(v, settlement, token),
                None => self.reply_locally(v.refused(dispatch_refused(store))),
            },
            Next::Settled => {
                if self.proceed(v) == Flow::Continue {
                    self.host.resume_request();
                }
            }
            Next::Refused(r) => {
                if matches!(r, Refusal::StateUnavailable(_)) {
                    self.host.count("scopegate_state_unavailable", 1);
                    self.host.log(Level::Warn, &format!("scopegate: {r}"));
                }
                self.reply_locally(v.refused(r));
            }
        }
    }

    /// After its state is recorded: forwarded, or held for the audit sink.
    fn proceed(&mut self, v: Verdict) -> Flow {
        if !v.forwards() {
            self.reply_locally(v);
            return Flow::Pause;
        }
        let required = self.recorder.borrow().required().is_some();
        if let (true, Some(engine)) = (required, &self.engine) {
            // Required audit: the record goes to the sink, and is accepted, first; the
            // same line goes to the log and the access log (its `status` is null: Envoy's
            // access log has its own).
            let client = self.host.client_address();
            let ctx = AuditContext::of(engine.policy(), self.started_ms, None)
                .with_client(client.as_deref());
            let mut recorder = self.recorder.borrow_mut();
            let line = recorder.seal(audit::record(&ctx, &v));
            recorder.log(&self.host, &line);
            let token = recorder.required().and_then(|sink| {
                self.host.dispatch(
                    &sink.cfg.cluster,
                    &sink.headers(),
                    format!("{line}\n").as_bytes(),
                    sink.cfg.timeout_ms,
                )
            });
            drop(recorder);
            return match token {
                Some(t) => {
                    self.handed = Some(line);
                    self.state = State::AwaitingAudit(v, t);
                    Flow::Pause
                }
                None => {
                    crate::sink::lost(&self.host, 1);
                    let why = "the call to the collector was refused".to_string();
                    self.reply_locally(v.refused(Refusal::AuditUnavailable(why)));
                    Flow::Pause
                }
            };
        }
        if let Some(forward) = v.forward() {
            apply(&self.host, forward);
        }
        self.state = State::Decided(v);
        Flow::Continue
    }

    fn reply_locally(&mut self, v: Verdict) {
        let headers = v.response_headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.host
            .send_response(local_status(&v), &headers, v.response_body().as_bytes());
        self.state = State::Decided(v);
    }
}

/// The status of a refusal's local reply.
fn local_status(v: &Verdict) -> u16 {
    v.status().unwrap_or(403)
}

/// The call to the state store could not even be made (an unknown cluster, a missing
/// pseudo-header): a refusal, never a pass.
fn dispatch_refused(store: &EtcdStore) -> Refusal {
    Refusal::StateUnavailable(format!(
        "the call to cluster `{}` was refused (is the cluster defined?)",
        store.cluster
    ))
}

/// The VM's shared data (every worker of this Envoy) as the engine's ledger.
struct SharedData<'a>(&'a dyn Host);

impl Ledger for SharedData<'_> {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.0.shared_get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.0.shared_set(key, value, cas)
    }
}

impl<H: Host> Stream<H> {
    /// The record as filter state for Envoy's access log (`envoy/scopegate.yaml.tmpl`), in
    /// the bundle's `filter_state` form: `json`, the record line itself; `fields`, the
    /// summary's properties.
    fn set_filter_state<'a>(
        &self,
        policy: &Policy,
        line: &str,
        summary: impl FnOnce() -> Summary<'a>,
    ) {
        match policy.filter_state {
            FilterState::Json => self.host.set_property("scopegate", line),
            FilterState::Fields => set_fields(&self.host, &summary()),
            FilterState::Off => {}
        }
    }
}

fn set_fields(host: &dyn Host, summary: &Summary) {
    for (name, value) in summary.fields() {
        host.set_property(name, value);
    }
}

/// Counters per decided request (names listed in docs/audit-and-observability.md).
fn count_decision(host: &dyn Host, v: &Verdict) {
    host.count("scopegate_requests_total", 1);
    let decision = v.decision();
    host.count(&format!("scopegate_requests_{}", decision.as_str()), 1);
    host.count(&labelled(v), 1);
    if decision == Decision::Challenge {
        host.count("scopegate_challenges", 1);
    }
    if let Some(a) = v.approval() {
        host.count("scopegate_approvals_used", a.approvers.len() as u64);
    }
    if decision == Decision::OverBudget {
        host.count("scopegate_budget_hits", 1);
    }
    if let Some(Refusal::Undecodable(e)) = v.refusal() {
        host.count("scopegate_decode_failures", 1);
        host.count(decode_failure_metric(e.kind()), 1);
    }
    if !v.enforced() {
        host.count("scopegate_shadow_not_enforced", 1);
    }
}

/// Name of the labelled counter: `scopegate_decisions.decision.<d>.service.<s>.role.<r>`
/// — Envoy's tag extractors (`scopegate envoy` renders them) turn the three into labels
/// of `scopegate_decisions` at `/stats/prometheus`. Values lower-cased, other characters
/// `_`; `none` when the request has no service or role.
pub fn labelled(v: &Verdict) -> String {
    let s = &v.subject;
    let (service, role) = (s.service.as_deref(), s.role.as_deref());
    let decision = v.decision().as_str();
    let mut m = String::with_capacity(
        48 + decision.len() + service.map_or(4, str::len) + role.map_or(4, str::len),
    );
    m.push_str("scopegate_decisions.decision.");
    m.push_str(decision);
    for (tag, value) in [(".service.", service), (".role.", role)] {
        m.push_str(tag);
        match value {
            Some(v) if !v.is_empty() => m.extend(v.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })),
            _ => m.push_str("none"),
        }
    }
    m
}

/// `scopegate_decode_failures_<kind>`, per kind of undecodable request.
fn decode_failure_metric(kind: DecodeKind) -> &'static str {
    match kind {
        DecodeKind::Malformed => "scopegate_decode_failures_malformed",
        DecodeKind::Unmodelled => "scopegate_decode_failures_unmodelled",
        DecodeKind::Ambiguous => "scopegate_decode_failures_ambiguous",
        DecodeKind::OverLimit => "scopegate_decode_failures_over_limit",
    }
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
mod tests;
