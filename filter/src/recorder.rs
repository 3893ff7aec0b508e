//! Where a request's audit record goes, once per VM: sealed into the VM's chain
//! (`audit.chain`), written to Envoy's log at the bundle's level (`audit.log`), and queued
//! for the HTTP sink. Also watches Envoy's log level: when it hides the record's line,
//! the operator is told, at a level that shows.

use crate::host::{Host, Level};
use crate::sink::Sink;
use scopegate_engine::audit::Chain;
use scopegate_engine::bundle::{AuditLog, FilterState};
use scopegate_engine::policy::Policy;

#[derive(Debug, Default)]
pub struct Recorder {
    pub sink: Option<Sink>,
    chain: Option<Chain>,
    /// The level of the record's line; `None`: no line (`audit.log: off`).
    log: Option<Level>,
    /// The access log gets the record through filter state.
    filter_state: bool,
    /// Envoy's level when its hiding the line was last said.
    said: Option<Level>,
}

impl Recorder {
    pub fn new(policy: Option<&Policy>, host: &dyn Host) -> Self {
        let Some(p) = policy else {
            return Recorder::default();
        };
        let chain = p.audit.chain.then(|| {
            // Without randomness (never seen in Envoy) the VM's start time still tells
            // streams apart.
            let stream = host
                .random_id()
                .unwrap_or_else(|| format!("t{:x}", host.now_ms()));
            Chain::new(stream, p.audit.chain_key.clone())
        });
        Recorder {
            sink: p.audit_sink.clone().map(Sink::new),
            chain,
            log: p.audit.log.map(|l| match l {
                AuditLog::Warn => Level::Warn,
                AuditLog::Info | AuditLog::Off => Level::Info,
            }),
            filter_state: p.filter_state == FilterState::Json,
            said: None,
        }
    }

    /// The sink, when a request is forwarded only after it took the record.
    pub fn required(&self) -> Option<&Sink> {
        self.sink.as_ref().filter(|s| s.cfg.required)
    }

    /// The record as it leaves the VM: sealed into the chain when the bundle asks.
    pub fn seal(&mut self, record: String) -> String {
        match &mut self.chain {
            Some(c) => c.seal(record),
            None => record,
        }
    }

    /// Writes a sealed record to Envoy's log.
    pub fn log(&self, host: &dyn Host, line: &str) {
        if let Some(level) = self.log {
            host.log(level, line);
        }
    }

    /// Queues a sealed record for the sink (if any).
    pub fn queue(&mut self, host: &dyn Host, line: String) {
        if let Some(sink) = &mut self.sink {
            sink.push(host, line);
        }
    }

    /// Compares the record's log level with Envoy's (on configure and on every tick):
    /// when Envoy's hides the line, says so once per level, at that level.
    pub fn check_level(&mut self, host: &dyn Host) {
        let Some(shown) = host.log_level() else {
            return;
        };
        let hidden = self.log.is_none_or(|l| l < shown);
        if !hidden {
            self.said = None;
            return;
        }
        if self.said == Some(shown) {
            return;
        }
        self.said = Some(shown);
        let elsewhere = match (self.filter_state, self.sink.is_some()) {
            (true, true) => "the access log (filter state `scopegate`) and the audit sink",
            (true, false) => "the access log (filter state `scopegate`)",
            (false, true) => "the audit sink",
            (false, false) => "nothing: this bundle has no sink and `filter_state` is not `json`, so NO AUDIT RECORD REACHES ANYONE",
        };
        let why = match self.log {
            None => "the bundle writes no audit line to Envoy's log (`audit.log: off`)".to_string(),
            Some(l) => format!(
                "Envoy's log level for Wasm ({}) hides the audit records this bundle writes at {}",
                name(shown),
                name(l)
            ),
        };
        let fix = if self.log.is_some() {
            "; set `audit.log: warn` in the bundle, or lower the level of Envoy's `wasm` logger"
        } else {
            ""
        };
        // Said at the level Envoy shows (a hidden `off` bundle with other outlets is
        // not news: said at info).
        let level = if !self.filter_state && self.sink.is_none() {
            Level::Critical
        } else if self.log.is_none() {
            Level::Info
        } else {
            shown.max(Level::Warn)
        };
        host.log(
            level,
            &format!("scopegate: {why}; records reach operators through {elsewhere}{fix}"),
        );
    }
}

fn name(l: Level) -> &'static str {
    match l {
        Level::Info => "info",
        Level::Warn => "warning",
        Level::Error => "error",
        Level::Critical => "critical",
    }
}
