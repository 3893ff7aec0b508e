//! Requests held for their body, watched: Envoy (>= 1.35) hands a filter the body of a
//! request it paused in the request-headers callback only with
//! `allow_on_headers_stop_iteration: true`. Without it Envoy keeps buffering the body and
//! never calls the filter again: the request hangs until the client gives up, and Envoy's
//! log blames the client. So each request paused for its body is noted with the bytes
//! Envoy had received then; the root context's tick looks again, and a request whose body
//! bytes arrived while no body callback came is proof the setting is missing: the log
//! says so at error level (once per VM), and the request is answered 500 instead of
//! hanging. A slow client (no new bytes) is left alone.

use crate::host::{Host, Level};
use hashbrown::HashMap;
use std::cell::{Cell, RefCell};

/// How long a held request may go without a body callback before it is looked at.
pub const LOOK_AFTER_MS: i64 = 500;

struct Held {
    since_ms: i64,
    bytes: u64,
}

thread_local! {
    static HELD: RefCell<HashMap<u32, Held>> = RefCell::new(HashMap::new());
    static SAID: Cell<bool> = const { Cell::new(false) };
}

pub const MISSING: &str = "Envoy does not hand scopegate the body of the requests it holds: set `allow_on_headers_stop_iteration: true` in the Wasm filter's config (envoy.extensions.filters.http.wasm.v3.Wasm `config`; an Istio WasmPlugin cannot set it: `scopegate istio` gives the EnvoyFilter that does). Without it every request with a body hangs; scopegate answers them 500";

const REPLY: &str = r#"{"decision":"unavailable","reason":"the gateway is misconfigured: it did not hand scopegate this request's body (allow_on_headers_stop_iteration is not set); nothing was forwarded"}"#;

/// A request paused in its headers callback to read its body.
pub fn paused(context: u32, host: &impl Host) {
    let bytes = host.received_bytes().unwrap_or(0);
    let since_ms = host.now_ms();
    HELD.with(|h| h.borrow_mut().insert(context, Held { since_ms, bytes }));
}

/// A body or trailers callback came (or the stream ended): the setting is there.
pub fn delivered(context: u32) {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if !h.is_empty() {
            h.remove(&context);
        }
    });
}

/// From the root context's tick: held requests whose body bytes arrived undelivered are
/// answered, and the missing setting named. Ends back on `root`.
pub fn look(host: &impl Host, root: u32) {
    let now = host.now_ms();
    let due: Vec<(u32, u64)> = HELD.with(|h| {
        h.borrow()
            .iter()
            .filter(|(_, x)| now - x.since_ms >= LOOK_AFTER_MS)
            .map(|(c, x)| (*c, x.bytes))
            .collect()
    });
    if due.is_empty() {
        return;
    }
    for (context, bytes) in due {
        if !host.switch_to(context) {
            // The stream is gone.
            delivered(context);
            continue;
        }
        let grew = host.received_bytes().is_some_and(|now| now > bytes);
        if grew {
            if !SAID.with(|s| s.replace(true)) {
                host.log(Level::Error, &format!("scopegate: {MISSING}"));
            }
            host.count("scopegate_body_not_delivered", 1);
            host.send_response(
                500,
                &[
                    ("content-type", "application/json"),
                    ("cache-control", "no-store"),
                ],
                REPLY.as_bytes(),
            );
            delivered(context);
        }
    }
    host.switch_to(root);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryHost;

    #[test]
    fn a_body_that_arrives_undelivered_is_answered_and_named() {
        let host = MemoryHost {
            now_ms: 1_000,
            ..MemoryHost::default()
        };
        host.received.set(300);
        paused(7, &&host);
        paused(8, &&host);
        paused(9, &&host);
        // 8 got its body callback; 9's client is slow (no new bytes).
        delivered(8);
        let later = MemoryHost {
            now_ms: 1_000 + LOOK_AFTER_MS,
            ..MemoryHost::default()
        };
        later.received.set(300);
        look(&&later, 1);
        assert!(later.sent.borrow().is_none(), "a slow client is left alone");
        // 7's (and 9's) body bytes arrived, no callback: the setting is missing.
        later.received.set(1_300);
        look(&&later, 1);
        let sent = later.sent.borrow().clone().unwrap();
        assert_eq!(sent.0, 500);
        assert!(sent.1.contains("allow_on_headers_stop_iteration"));
        assert_eq!(later.effective.get(), 1, "back on the root context");
        let errors: Vec<_> = later
            .logs
            .borrow()
            .iter()
            .filter(|(l, m)| *l == Level::Error && m.contains("allow_on_headers_stop_iteration"))
            .cloned()
            .collect();
        assert_eq!(errors.len(), 1, "said once per VM");
        assert_eq!(
            later.metrics.borrow().get("scopegate_body_not_delivered"),
            Some(&2)
        );
        HELD.with(|h| assert!(h.borrow().is_empty()));
    }
}
