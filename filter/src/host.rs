//! Every host call the filter makes, behind one trait. `ProxyWasmHost` is the only
//! code that touches proxy-wasm's hostcalls; tests use a fake.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType};
use scopegate_engine::HeaderList;
use std::time::UNIX_EPOCH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Final response status of the stream, if there was one.
    fn response_status(&self) -> Option<u16>;
    fn now_ms(&self) -> i64;
    fn log(&self, level: Level, message: &str);
    /// The plugin `configuration` (the bundle).
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
    /// A variable of the VM's environment (`vm_config.environment_variables`).
    fn env_var(&self, name: &str) -> Option<String>;
}

/// The real host.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyWasmHost;

impl Host for ProxyWasmHost {
    fn request_headers(&self) -> HeaderList {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default()
    }

    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(Some(b)) => Some(b),
            Ok(None) if size == 0 => Some(Vec::new()),
            _ => None,
        }
    }

    fn remove_request_header(&self, name: &str) {
        if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
            self.log(
                Level::Error,
                &format!("cannot remove request header {name}"),
            );
        }
    }

    fn set_request_header(&self, name: &str, value: &str) {
        if hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).is_err() {
            self.log(Level::Error, &format!("cannot set request header {name}"));
        }
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
        if hostcalls::remove_map_value(MapType::HttpResponseHeaders, name).is_err() {
            self.log(
                Level::Error,
                &format!("cannot remove response header {name}"),
            );
        }
    }

    fn set_response_header(&self, name: &str, value: &str) {
        if hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value)).is_err() {
            self.log(Level::Error, &format!("cannot set response header {name}"));
        }
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size) {
            Ok(Some(b)) => Some(b),
            Ok(None) if size == 0 => Some(Vec::new()),
            _ => None,
        }
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
}
