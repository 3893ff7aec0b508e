//! A test-only proxy-wasm filter for `tests/e2e/test_faults.py`: like scopegate, it holds
//! a request with a body until the body has all arrived, then continues it; a request
//! carrying `x-faulty-trap: 1` makes its VM crash (a panic, which `panic = "abort"` turns
//! into a Wasm trap) in `on_http_request_headers`.
//! Envoy's `failure_policy` then decides what later requests get: `FAIL_CLOSED` (what
//! `envoy/scopegate.yaml.tmpl` ships) refuses them all, `FAIL_RELOAD` starts a new VM.
//! A plugin configuration containing `x-faulty-crash-on-configure` crashes the VM while
//! it starts instead. Never deploy it.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

#[allow(unsafe_code)] // `proxy_wasm::main!` exports the module's `_initialize`.
mod entry {
    proxy_wasm::main! {{
        // Also installs the panic hook that logs the panic at critical before the trap.
        proxy_wasm::set_log_level(super::LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn super::RootContext> {
            Box::new(super::Root)
        });
    }}
}

/// In the plugin configuration: crash in `on_configure`.
const CRASH_ON_CONFIGURE: &[u8] = b"x-faulty-crash-on-configure";

struct Root;

impl Context for Root {}

impl RootContext for Root {
    /// Accepts any plugin configuration (the tests hand it scopegate's bundle), unless
    /// it asks for a crash while the VM starts.
    fn on_configure(&mut self, _: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        if config
            .windows(CRASH_ON_CONFIGURE.len())
            .any(|w| w == CRASH_ON_CONFIGURE)
        {
            crash("x-faulty-crash-on-configure");
        }
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http;

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.get_http_request_header("x-faulty-trap").as_deref() == Some("1") {
            crash("x-faulty-trap: 1");
        }
        hold_until(end_of_stream)
    }

    fn on_http_request_body(&mut self, _: usize, end_of_stream: bool) -> Action {
        hold_until(end_of_stream)
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        Action::Continue
    }
}

/// Holds the request until its end, as scopegate does while it needs the body.
fn hold_until(end_of_stream: bool) -> Action {
    if end_of_stream {
        Action::Continue
    } else {
        Action::Pause
    }
}

/// The deliberate fault, the way a filter bug would surface: a panic, which aborts
/// (`panic = "abort"`), i.e. traps the VM mid-request.
#[allow(clippy::panic)] // deliberate: this crate exists to crash its VM on request.
fn crash(why: &str) -> ! {
    panic!("scopegate-test-faulty: {why} (deliberate VM crash)")
}
