//! scopegate's proxy-wasm glue: a root context that compiles the bundle once, and an
//! HTTP context per request that hands every callback to [`stream::Stream`].
//! All host calls go through [`host::Host`].

pub mod held;
pub mod host;
pub mod recorder;
pub mod sink;
pub mod stream;

use host::Host;
use host::ProxyWasmHost;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use recorder::Recorder;
use scopegate_engine::Engine;
use std::cell::RefCell;
use std::rc::Rc;
use stream::{Flow, Stream};

#[allow(unsafe_code)] // `proxy_wasm::main!` exports the module's `_initialize`.
mod entry {
    proxy_wasm::main! {{
        // Also installs a panic hook that logs at critical before the VM traps.
        proxy_wasm::set_log_level(super::LogLevel::Info);
        proxy_wasm::set_root_context(|context_id| -> Box<dyn super::RootContext> {
            Box::new(super::Root {
                context_id,
                ..super::Root::default()
            })
        });
    }}
}

#[derive(Default)]
struct Root {
    context_id: u32,
    engine: Option<Rc<Engine>>,
    recorder: Option<Rc<RefCell<Recorder>>>,
}

impl Context for Root {
    /// The collector answered a batch of audit records.
    fn on_http_call_response(&mut self, token_id: u32, _: usize, _: usize, _: usize) {
        if let Some(r) = &self.recorder {
            if let Some(sink) = r.borrow_mut().sink.as_mut() {
                sink.answered(&ProxyWasmHost, token_id);
            }
        }
    }
}

impl RootContext for Root {
    /// Compiles the bundle; `false` makes Envoy reject the plugin configuration.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match stream::configure(&ProxyWasmHost) {
            Some(engine) => {
                let mut recorder = Recorder::new(Some(engine.policy()), &ProxyWasmHost);
                recorder.check_level(&ProxyWasmHost);
                // The tick sends the counters (and the sink's records).
                let period = recorder
                    .sink
                    .as_ref()
                    .map_or(host::COUNTS_EVERY_MS, |s| s.period());
                ProxyWasmHost.tick_every(period);
                self.recorder = Some(Rc::new(RefCell::new(recorder)));
                self.engine = Some(Rc::new(engine));
                true
            }
            None => false,
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let stream = match &self.recorder {
            Some(r) => Stream::shared(self.engine.clone(), ProxyWasmHost, r.clone()),
            None => Stream::new(self.engine.clone(), ProxyWasmHost),
        };
        Some(Box::new(Http(stream, context_id)))
    }

    /// Adds the counts to Envoy's counters; sends the queued audit records when due.
    fn on_tick(&mut self) {
        host::flush_counts();
        if let Some(r) = &self.recorder {
            let mut r = r.borrow_mut();
            r.check_level(&ProxyWasmHost);
            if let Some(sink) = r.sink.as_mut() {
                sink.tick(&ProxyWasmHost);
            }
        }
        // Last: it may act on held streams' contexts (and comes back to this one).
        held::look(&ProxyWasmHost, self.context_id);
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http(Stream<ProxyWasmHost>, u32);

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Context for Http {
    /// The state store answered, or the collector took this request's record.
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        self.0.on_call_answer(token_id, body_size);
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let flow = self.0.on_request_headers(end_of_stream);
        if self.0.buffering() {
            held::paused(self.1, &ProxyWasmHost);
        }
        action(flow)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        held::delivered(self.1);
        action(self.0.on_request_body(body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        held::delivered(self.1);
        action(self.0.on_request_trailers())
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_body(body_size, end_of_stream))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.0.on_response_trailers())
    }

    fn on_log(&mut self) {
        held::ended(self.1);
        self.0.on_log();
    }
}
