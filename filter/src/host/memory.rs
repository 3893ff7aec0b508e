//! An in-memory [`Host`]: the filter's stream run without a proxy — natively by the
//! filter's tests, inside a bare Wasm VM by `bench/vm` — keeping what the stream did for
//! inspection and counting each host call by its proxy-wasm ABI name.

use super::{Host, Level};
use scopegate_engine::ledger::{Ledger, MemoryLedger};
use scopegate_engine::HeaderList;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

#[derive(Default)]
pub struct MemoryHost {
    /// The plugin configuration (the bundle).
    pub config: String,
    /// The VM's environment variables.
    pub env: HashMap<String, String>,
    pub now_ms: i64,
    /// The request's headers, as the stream leaves them.
    pub headers: RefCell<HeaderList>,
    pub body: Vec<u8>,
    /// The local reply sent, if any: status and body.
    pub sent: RefCell<Option<(u16, String)>>,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub resp_headers: RefCell<Vec<(String, String)>>,
    pub resp_body: RefCell<Vec<u8>>,
    /// The VM's shared data.
    pub shared: MemoryLedger,
    pub props: RefCell<HashMap<String, String>>,
    pub metrics: RefCell<HashMap<String, u64>>,
    /// Calls dispatched to clusters: (cluster, body).
    pub dispatched: RefCell<Vec<(String, String)>>,
    /// The status the next dispatched call's answer carries.
    pub call_status: Cell<Option<u16>>,
    /// The body it carries.
    pub call_body: RefCell<Vec<u8>>,
    /// The host refuses every dispatch.
    pub refuse_calls: bool,
    pub resumed: Cell<bool>,
    /// Host calls by ABI name, while `counting` is on.
    pub host_calls: RefCell<BTreeMap<&'static str, u64>>,
    pub counting: Cell<bool>,
    /// Keep nothing the stream writes out (replies, logs, properties): a benchmark's
    /// host, whose work per call stays what a proxy's copy would be.
    pub discard: bool,
    /// Bytes the host has received of the stream (`request.total_size`).
    pub received: Cell<u64>,
    /// The context later calls act on (`switch_to`).
    pub effective: Cell<u32>,
    /// Envoy's log level for Wasm (`None`: Info).
    pub level: Cell<Option<Level>>,
    /// The downstream peer (`source.address`).
    pub client: Option<String>,
    /// The stream's dynamic metadata (serialised `Metadata`).
    pub metadata: Option<Vec<u8>>,
}

impl MemoryHost {
    fn call(&self, name: &'static str) {
        if self.counting.get() {
            *self.host_calls.borrow_mut().entry(name).or_default() += 1;
        }
    }

    /// A request header's value (the first), as the upstream would receive it.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

impl Host for &MemoryHost {
    fn request_headers(&self) -> HeaderList {
        self.call("get_map_bytes");
        self.headers.borrow().clone()
    }
    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        self.call("get_buffer");
        self.body.get(..size).map(<[u8]>::to_vec)
    }
    fn remove_request_header(&self, name: &str) {
        self.call("remove_map_value");
        self.headers.borrow_mut().retain(|(n, _)| n != name);
    }
    fn set_request_header(&self, name: &str, value: &str) {
        self.call("set_map_value");
        let mut h = self.headers.borrow_mut();
        h.retain(|(n, _)| n != name);
        h.push((name.to_string(), value.as_bytes().to_vec()));
    }
    fn send_response(&self, status: u16, headers: &[(&str, &str)], body: &[u8]) {
        self.call("send_http_response");
        if self.discard {
            black_box((status, headers, body));
            return;
        }
        *self.sent.borrow_mut() = Some((status, String::from_utf8_lossy(body).into_owned()));
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.call("get_map_value");
        let h = self.resp_headers.borrow();
        h.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
    fn remove_response_header(&self, name: &str) {
        self.call("remove_map_value");
        self.resp_headers.borrow_mut().retain(|(n, _)| n != name);
    }
    fn set_response_header(&self, name: &str, value: &str) {
        self.call("set_map_value");
        let mut h = self.resp_headers.borrow_mut();
        h.retain(|(n, _)| n != name);
        h.push((name.to_string(), value.to_string()));
    }
    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        self.call("get_buffer");
        let b = self.resp_body.borrow();
        Some(b.get(..size.min(b.len()))?.to_vec())
    }
    fn set_response_body(&self, size: usize, data: &[u8]) -> bool {
        self.call("set_buffer");
        let mut b = self.resp_body.borrow_mut();
        let at = size.min(b.len());
        let keep = b.split_off(at);
        *b = [data, &keep].concat();
        true
    }
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.call("get_shared_data");
        self.shared.get(key)
    }
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.call("set_shared_data");
        self.shared.set(key, value, cas)
    }
    fn set_property(&self, name: &str, value: &str) {
        self.call("set_property");
        if self.discard {
            black_box((name, value));
            return;
        }
        self.props
            .borrow_mut()
            .insert(name.to_string(), value.to_string());
    }
    fn count(&self, metric: &str, n: u64) {
        // Not a host call: the proxy-wasm host also counts in the VM and adds on its tick.
        let mut metrics = self.metrics.borrow_mut();
        match metrics.get_mut(metric) {
            Some(v) => *v += n,
            None => {
                metrics.insert(metric.to_string(), n);
            }
        }
    }
    fn dispatch(&self, cluster: &str, _: &[(&str, &str)], body: &[u8], _: u64) -> Option<u32> {
        self.call("dispatch_http_call");
        if self.refuse_calls {
            return None;
        }
        let mut c = self.dispatched.borrow_mut();
        c.push((
            cluster.to_string(),
            String::from_utf8_lossy(body).into_owned(),
        ));
        u32::try_from(c.len()).ok()
    }
    fn call_status(&self) -> Option<u16> {
        self.call("get_map_value");
        self.call_status.get()
    }
    fn call_body(&self, size: usize) -> Option<Vec<u8>> {
        self.call("get_buffer");
        let b = self.call_body.borrow();
        Some(b.get(..size.min(b.len()))?.to_vec())
    }
    fn resume_request(&self) {
        self.call("resume_http_request");
        self.resumed.set(true);
    }
    fn tick_every(&self, _: u64) {
        self.call("set_tick_period_milliseconds");
    }
    fn response_status(&self) -> Option<u16> {
        self.call("get_property");
        self.sent.borrow().as_ref().map(|s| s.0).or(Some(200))
    }
    fn now_ms(&self) -> i64 {
        self.call("get_current_time");
        self.now_ms
    }
    fn log(&self, level: Level, message: &str) {
        self.call("log");
        if self.discard {
            black_box(message);
            return;
        }
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        self.call("get_buffer");
        Some(self.config.as_bytes().to_vec())
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn received_bytes(&self) -> Option<u64> {
        self.call("get_property");
        Some(self.received.get())
    }

    fn log_level(&self) -> Option<Level> {
        self.call("get_log_level");
        Some(self.level.get().unwrap_or(Level::Info))
    }

    fn client_address(&self) -> Option<String> {
        self.call("get_property");
        self.client.clone()
    }

    fn random_id(&self) -> Option<String> {
        Some("00000000000000aa".into())
    }

    fn dynamic_metadata(&self) -> Option<Vec<u8>> {
        self.call("get_property");
        self.metadata.clone()
    }

    fn switch_to(&self, context: u32) -> bool {
        self.call("set_effective_context");
        self.effective.set(context);
        true
    }
}
