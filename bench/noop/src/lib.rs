//! The Wasm floors `make bench` compares scopegate with. The plugin configuration picks
//! the mode: `noop` continues every callback (the ABI cost of a Rust proxy-wasm filter);
//! `buffer` holds a request with a body until it has all arrived, then continues (the
//! cost of body buffering, which every body-inspecting filter pays); `calls` buffers too
//! and makes the host calls scopegate makes for an allowed request, deciding nothing (the
//! cost of those calls: read the headers, the clock and any body, strip the credential,
//! set the two identity headers and one filter-state property, then read the response
//! status and write one log line of an audit record's size in `on_log`).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};

#[allow(unsafe_code)] // `proxy_wasm::main!` exports the module's `_initialize`.
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn super::RootContext> {
            Box::new(super::Root { mode: super::Mode::Noop })
        });
    }}
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Noop,
    Buffer,
    Calls,
}

struct Root {
    mode: Mode,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        self.mode = match self.get_plugin_configuration().as_deref() {
            Some(b"buffer") => Mode::Buffer,
            Some(b"calls") => Mode::Calls,
            _ => Mode::Noop,
        };
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { mode: self.mode }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    mode: Mode,
}

impl Context for Http {}

/// A filter-state value and a log line of the size scopegate writes (the audit record).
const STATE: &str = r#"{"ts":"2026-12-05T06:42:35.832Z","bundle":"bench","environment":"production","request_id":"4f1c2a9e-5d3b-4e8f-9a61-2b7c0d9e1f35","key":"bench","role":"agent","service":"rest","method":"GET","path":"/rest/reservations","query":"tenant_id=eq.acme","client":null,"user_agent":"wrk","operations":[{"service":"rest","action":"read","resource":"reservations","scope":"some"}],"decision":"allow","reason":"roles[0].allow[0] covers every operation","rule":"roles[0].allow[0]","digest":null,"approval":null,"status":null,"enforced":true}"#;

/// The header changes and the filter-state property of an allowed request.
fn forward() {
    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "authorization");
    let _ = hostcalls::set_map_value(
        MapType::HttpRequestHeaders,
        "x-scopegate-service",
        Some("rest"),
    );
    let _ = hostcalls::set_map_value(
        MapType::HttpRequestHeaders,
        "x-scopegate-key",
        Some("bench"),
    );
    let _ = hostcalls::set_map_value(
        MapType::HttpRequestHeaders,
        "x-scopegate-role",
        Some("agent"),
    );
    let _ = hostcalls::set_property(vec!["scopegate"], Some(STATE.as_bytes()));
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Calls {
            let headers = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
            let _ = std::hint::black_box((headers, hostcalls::get_current_time()));
            if end_of_stream {
                forward();
            } else {
                // scopegate notes what Envoy had received when it holds a request for
                // its body (the watch for a missing pause flag).
                let _ =
                    std::hint::black_box(hostcalls::get_property(vec!["request", "total_size"]));
            }
        }
        if self.mode != Mode::Noop && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Noop {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        if self.mode == Mode::Calls {
            let body =
                hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, size);
            let _ = std::hint::black_box(body);
            forward();
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if self.mode == Mode::Calls {
            let status = hostcalls::get_property(vec!["response", "code"]);
            // The record names the client (`source.address`).
            let client = hostcalls::get_property(vec!["source", "address"]);
            let line = format!(
                "{STATE}{:?}{:?}",
                status.ok().flatten().map(|s| s.len()),
                client.ok().flatten().map(|s| s.len())
            );
            let _ = hostcalls::log(LogLevel::Info, &line);
        }
    }
}
