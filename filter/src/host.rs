//! Every host call the filter makes, behind one trait. `ProxyWasmHost` is the only
//! code that touches proxy-wasm's hostcalls; the tests and `bench/vm` use
//! [`memory::MemoryHost`].

pub mod memory;

use hashbrown::HashMap;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use scopegate_engine::HeaderList;
use std::cell::RefCell;
use std::time::Duration;
use std::time::UNIX_EPOCH;

/// Log levels, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
    Critical,
}

pub trait Host {
    /// The request's full header list, pseudo-headers and repeats included.
    fn request_headers(&self) -> HeaderList;
    /// The buffered request body (`None` if the host cannot give it).
    fn request_body(&self, size: usize) -> Option<Vec<u8>>;
    fn remove_request_header(&self, name: &str);
    fn set_request_header(&self, name: &str, value: &str);
    /// A local reply; the stream must then be paused.
    fn send_response(&self, status: u16, headers: &[(&str, &str)], body: &[u8]);
    /// A response header (first value), while response headers are available.
    fn response_header(&self, name: &str) -> Option<String>;
    fn remove_response_header(&self, name: &str);
    fn set_response_header(&self, name: &str, value: &str);
    /// The response body buffered so far (the current chunk when streaming).
    fn response_body(&self, size: usize) -> Option<Vec<u8>>;
    /// Replaces the `size` bytes returned by `response_body(size)`.
    fn set_response_body(&self, size: usize, data: &[u8]) -> bool;
    /// A value of the VM's shared data (shared by all workers) and its CAS token.
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Sets shared data if `cas` still matches; false on a CAS mismatch or error.
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
    /// A filter-state property for Envoy's access log (`%FILTER_STATE(wasm.NAME:PLAIN)%`).
    fn set_property(&self, name: &str, value: &str);
    /// Adds to a counter metric (defined on first use). The proxy-wasm host adds it to
    /// Envoy's counter at the root context's next tick (within [`COUNTS_EVERY_MS`]).
    fn count(&self, metric: &str, n: u64);
    /// POSTs to an Envoy cluster; the answer arrives at the calling context. `None` if
    /// the host refused the call.
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32>;
    /// `:status` of the answer to a dispatched call (in its callback).
    fn call_status(&self) -> Option<u16>;
    /// The body of the answer to a dispatched call, `size` bytes (in its callback).
    fn call_body(&self, size: usize) -> Option<Vec<u8>>;
    /// Continues a request paused in a callback.
    fn resume_request(&self);
    /// Sets the root context's tick period (a short one asks for a flush soon).
    fn tick_every(&self, ms: u64);
    /// Final response status of the stream, if there was one.
    fn response_status(&self) -> Option<u16>;
    fn now_ms(&self) -> i64;
    fn log(&self, level: Level, message: &str);
    /// The plugin `configuration` (the bundle).
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
    /// A variable of the VM's environment (`vm_config.environment_variables`).
    fn env_var(&self, name: &str) -> Option<String>;
    /// Bytes Envoy has received of the current stream so far (`request.total_size`).
    fn received_bytes(&self) -> Option<u64>;
    /// Makes `context` the one later calls act on (from the root context's tick).
    fn switch_to(&self, context: u32) -> bool;
    /// The least severe level Envoy's log shows for Wasm (`Info` also for `debug` and
    /// `trace`); `None` if the host does not say.
    fn log_level(&self) -> Option<Level>;
    /// The downstream peer's address (`source.address`), as the host gives it.
    fn client_address(&self) -> Option<String>;
    /// 8 random bytes as hex (the audit chain's stream id); `None` without randomness.
    fn random_id(&self) -> Option<String>;
    /// The stream's dynamic metadata, the serialised `envoy.config.core.v3.Metadata`
    /// (where Envoy's `jwt_authn` leaves verified payloads).
    fn dynamic_metadata(&self) -> Option<Vec<u8>>;
}

/// Longest a count waits in the VM before it reaches Envoy's counter. Counting in the VM
/// and adding on the root's tick saves three host calls per request (≈ 1 µs each).
pub const COUNTS_EVERY_MS: u64 = 1000;

thread_local! {
    /// Counters by name: the metric id (defined on first flush) and what is not yet added.
    static COUNTS: RefCell<HashMap<String, (Option<u32>, u64)>> = RefCell::new(HashMap::new());
}

/// Counts in the VM, for the next [`flush_counts`].
pub fn tally(metric: &str, n: u64) {
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        match c.get_mut(metric) {
            Some((_, pending)) => *pending = pending.saturating_add(n),
            None => {
                c.insert(metric.to_string(), (None, n));
            }
        }
    });
}

/// Adds the VM's pending counts to Envoy's counters (root context, on tick).
pub fn flush_counts() {
    COUNTS.with(|c| {
        for (metric, (id, n)) in c.borrow_mut().iter_mut().filter(|(_, (_, n))| *n > 0) {
            if id.is_none() {
                *id = hostcalls::define_metric(MetricType::Counter, metric).ok();
            }
            if let Some(id) = id {
                let by = i64::try_from(*n).unwrap_or(i64::MAX);
                if hostcalls::increment_metric(*id, by).is_ok() {
                    *n = 0;
                }
            }
        }
    });
}

/// The real host.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyWasmHost;

impl ProxyWasmHost {
    fn remove_header(&self, map: MapType, side: &str, name: &str) {
        if hostcalls::remove_map_value(map, name).is_err() {
            self.log(Level::Error, &format!("cannot remove {side} header {name}"));
        }
    }

    fn set_header(&self, map: MapType, side: &str, name: &str, value: &str) {
        if hostcalls::set_map_value(map, name, Some(value)).is_err() {
            self.log(Level::Error, &format!("cannot set {side} header {name}"));
        }
    }
}

/// The first `size` bytes of a body buffer (`None` if the host cannot give them).
fn body(buffer: BufferType, size: usize) -> Option<Vec<u8>> {
    match hostcalls::get_buffer(buffer, 0, size) {
        Ok(Some(b)) => Some(b),
        Ok(None) if size == 0 => Some(Vec::new()),
        _ => None,
    }
}

impl Host for ProxyWasmHost {
    fn request_headers(&self) -> HeaderList {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        body(BufferType::HttpRequestBody, size)
    }

    fn remove_request_header(&self, name: &str) {
        self.remove_header(MapType::HttpRequestHeaders, "request", name);
    }

    fn set_request_header(&self, name: &str, value: &str) {
        self.set_header(MapType::HttpRequestHeaders, "request", name, value);
    }

    fn send_response(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        let headers: Vec<(&str, &str)> = headers.to_vec();
        if hostcalls::send_http_response(u32::from(status), headers, Some(body)).is_err() {
            self.log(Level::Critical, "cannot send local reply");
        }
    }

    fn response_header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
    }

    fn remove_response_header(&self, name: &str) {
        self.remove_header(MapType::HttpResponseHeaders, "response", name);
    }

    fn set_response_header(&self, name: &str, value: &str) {
        self.set_header(MapType::HttpResponseHeaders, "response", name, value);
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        body(BufferType::HttpResponseBody, size)
    }

    fn set_response_body(&self, size: usize, data: &[u8]) -> bool {
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, data).is_ok()
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }

    fn set_property(&self, name: &str, value: &str) {
        // Not every host keeps filter state; the audit record has the same facts.
        let _ = hostcalls::set_property(vec![name], Some(value.as_bytes()));
    }

    fn count(&self, metric: &str, n: u64) {
        tally(metric, n);
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32> {
        hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            Some(body),
            Vec::new(),
            Duration::from_millis(timeout_ms),
        )
        .ok()
    }

    fn call_status(&self) -> Option<u16> {
        hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok())
    }

    fn call_body(&self, size: usize) -> Option<Vec<u8>> {
        body(BufferType::HttpCallResponseBody, size)
    }

    fn resume_request(&self) {
        if hostcalls::resume_http_request().is_err() {
            self.log(Level::Error, "scopegate: cannot resume a held request");
        }
    }

    fn tick_every(&self, ms: u64) {
        let _ = hostcalls::set_tick_period(Duration::from_millis(ms));
    }

    fn received_bytes(&self) -> Option<u64> {
        let bytes = hostcalls::get_property(vec!["request", "total_size"]).ok()??;
        let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        u64::try_from(i64::from_le_bytes(raw)).ok()
    }

    fn switch_to(&self, context: u32) -> bool {
        hostcalls::set_effective_context(context).is_ok()
    }

    fn response_status(&self) -> Option<u16> {
        let bytes = hostcalls::get_property(vec!["response", "code"]).ok()??;
        let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        u16::try_from(i64::from_le_bytes(raw))
            .ok()
            .filter(|s| *s > 0)
    }

    fn now_ms(&self) -> i64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0)
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
            Level::Critical => LogLevel::Critical,
        };
        // Nothing else can be done when the host refuses a log line.
        let _ = hostcalls::log(level, message);
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
    }

    fn env_var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn log_level(&self) -> Option<Level> {
        Some(match hostcalls::get_log_level().ok()? {
            LogLevel::Trace | LogLevel::Debug | LogLevel::Info => Level::Info,
            LogLevel::Warn => Level::Warn,
            LogLevel::Error => Level::Error,
            LogLevel::Critical => Level::Critical,
        })
    }

    fn client_address(&self) -> Option<String> {
        let bytes = hostcalls::get_property(vec!["source", "address"]).ok()??;
        String::from_utf8(bytes).ok()
    }

    fn dynamic_metadata(&self) -> Option<Vec<u8>> {
        hostcalls::get_property(vec!["metadata"]).ok()?
    }

    fn random_id(&self) -> Option<String> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).ok()?;
        Some(scopegate_engine::digest::hex(&b))
    }
}
