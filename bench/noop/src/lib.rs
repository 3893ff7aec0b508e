//! The Wasm floors `make bench` compares scopegate with. The plugin configuration picks
//! the mode: `noop` continues every callback (the ABI cost of a Rust proxy-wasm filter);
//! `buffer` holds a request with a body until it has all arrived, then continues (the
//! cost of body buffering, which every body-inspecting filter pays).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

#[allow(unsafe_code)] // `proxy_wasm::main!` exports the module's `_initialize`.
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(super::LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn super::RootContext> {
            Box::new(super::Root { buffer: false })
        });
    }}
}

struct Root {
    buffer: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        self.buffer = self
            .get_plugin_configuration()
            .is_some_and(|c| c.as_slice() == b"buffer");
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            buffer: self.buffer,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    buffer: bool,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.buffer && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.buffer && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
