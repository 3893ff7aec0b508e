//! The HTTP audit sink: records queued by the streams, batched as JSON Lines and POSTed
//! by the root context on its tick (or soon after a batch fills) to the collector's
//! Envoy cluster. The queue is bounded; every record dropped (queue full, call refused,
//! collector error or timeout) is counted — `scopegate_audit_records_dropped` — never
//! silently lost.

use crate::host::{Host, Level, COUNTS_EVERY_MS};
use scopegate_engine::policy::AuditSink;
use std::collections::{HashMap, VecDeque};

pub const DROPPED: &str = "scopegate_audit_records_dropped";
pub const SENT: &str = "scopegate_audit_records_sent";
pub const SINK_FAILURES: &str = "scopegate_audit_sink_failures";

/// Records that did not reach the collector: counted as dropped, and the failed call.
pub fn lost(host: &dyn Host, records: u64) {
    host.count(DROPPED, records);
    host.count(SINK_FAILURES, 1);
}

#[derive(Debug)]
pub struct Sink {
    pub cfg: AuditSink,
    queue: VecDeque<String>,
    in_flight: HashMap<u32, usize>,
    soon: bool,
    /// When the queue was last sent (ms since the epoch).
    flushed_ms: i64,
}

impl Sink {
    pub fn new(cfg: AuditSink) -> Self {
        Sink {
            cfg,
            queue: VecDeque::new(),
            in_flight: HashMap::new(),
            soon: false,
            flushed_ms: 0,
        }
    }

    /// The root's tick period: the sink's `flush_ms`, or sooner for the counters.
    pub fn period(&self) -> u64 {
        self.cfg.flush_ms.min(COUNTS_EVERY_MS)
    }

    /// On the root's tick: sends the queue when a batch filled or `flush_ms` has passed
    /// (within half a tick: timers fire a little early or late).
    pub fn tick(&mut self, host: &dyn Host) {
        let now = host.now_ms();
        let wait = self.cfg.flush_ms.saturating_sub(self.period() / 2);
        let due = now.saturating_sub(self.flushed_ms) >= i64::try_from(wait).unwrap_or(i64::MAX);
        if self.soon || due {
            self.flushed_ms = now;
            self.flush(host);
        }
    }

    /// Queues a record; a full batch asks the root for a tick right away.
    pub fn push(&mut self, host: &dyn Host, record: String) {
        if self.queue.len() >= self.cfg.queue {
            host.count(DROPPED, 1);
            return;
        }
        self.queue.push_back(record);
        if self.queue.len() >= self.cfg.batch && !self.soon {
            self.soon = true;
            host.tick_every(1);
        }
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The headers of a POST to the collector.
    pub fn headers(&self) -> [(&str, &str); 4] {
        [
            (":method", "POST"),
            (":path", &self.cfg.path),
            (":authority", &self.cfg.authority),
            ("content-type", "application/x-ndjson"),
        ]
    }

    /// Sends everything queued, a batch per call (root context, on tick).
    pub fn flush(&mut self, host: &dyn Host) {
        while !self.queue.is_empty() {
            let n = self.queue.len().min(self.cfg.batch);
            let mut body = String::new();
            for line in self.queue.drain(..n) {
                body.push_str(&line);
                body.push('\n');
            }
            match host.dispatch(
                &self.cfg.cluster,
                &self.headers(),
                body.as_bytes(),
                self.cfg.timeout_ms,
            ) {
                Some(token) => {
                    self.in_flight.insert(token, n);
                }
                None => {
                    lost(host, n as u64);
                    host.log(
                        Level::Warn,
                        &format!(
                            "scopegate: audit sink `{}` refused a call; {n} records dropped",
                            self.cfg.cluster
                        ),
                    );
                }
            }
        }
        if self.soon {
            self.soon = false;
            host.tick_every(self.period());
        }
    }

    /// The collector answered a batch (root context).
    pub fn answered(&mut self, host: &dyn Host, token: u32) {
        let Some(n) = self.in_flight.remove(&token) else {
            return;
        };
        match host.call_status() {
            Some(s) if (200..300).contains(&s) => host.count(SENT, n as u64),
            status => {
                lost(host, n as u64);
                host.log(
                    Level::Warn,
                    &format!("scopegate: audit sink answered {status:?}; {n} records dropped"),
                );
            }
        }
    }
}
