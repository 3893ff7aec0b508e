//! Requests held for their body, watched: Envoy (>= 1.35) hands a filter the body of a
//! request it paused in the request-headers callback only with
//! `allow_on_headers_stop_iteration: true`. Without it Envoy keeps buffering the body and
//! never calls the filter again: the request hangs until the client gives up, and Envoy's
//! log blames the client. So each request paused for its body is noted with the bytes
//! Envoy had received then; the root context's tick looks again, and a request whose body
//! bytes arrived while no body callback came is proof the setting is missing: the log
//! says so at error level (once per VM), and the request is answered 500 instead of
//! hanging. A slow client (no new bytes) is left alone. So is everything once one body
//! was delivered after a pause in this VM (the setting is there: a request whose body is
//! late is then held by a filter before scopegate, a WAF say, not by Envoy), and a request
//! is answered only when two looks in a row saw it undelivered.

use crate::host::{Host, Level};
use hashbrown::HashMap;
use std::cell::{Cell, RefCell};

/// How long a held request may go without a body callback before it is looked at.
pub const LOOK_AFTER_MS: i64 = 500;

struct Held {
    since_ms: i64,
    bytes: u64,
    /// A look already saw its body bytes arrive undelivered.
    suspect: bool,
}

thread_local! {
    static HELD: RefCell<HashMap<u32, Held>> = RefCell::new(HashMap::new());
    static SAID: Cell<bool> = const { Cell::new(false) };
    /// A body was delivered after a pause in this VM: the setting is there.
    static WORKS: Cell<bool> = const { Cell::new(false) };
}

pub const MISSING: &str = "Envoy does not hand scopegate the body of the requests it holds: set `allow_on_headers_stop_iteration: true` in the Wasm filter's config (envoy.extensions.filters.http.wasm.v3.Wasm `config`; an Istio WasmPlugin cannot set it: `scopegate istio` gives the EnvoyFilter that does). Without it every request with a body hangs; scopegate answers them 500";

const REPLY: &str = r#"{"decision":"unavailable","reason":"the gateway is misconfigured: it did not hand scopegate this request's body (allow_on_headers_stop_iteration is not set); nothing was forwarded"}"#;

/// A request paused in its headers callback to read its body.
pub fn paused(context: u32, host: &impl Host) {
    if WORKS.with(Cell::get) {
        return;
    }
    let bytes = host.received_bytes().unwrap_or(0);
    let since_ms = host.now_ms();
    HELD.with(|h| {
        h.borrow_mut().insert(
            context,
            Held {
                since_ms,
                bytes,
                suspect: false,
            },
        )
    });
}

/// A body or trailers callback came for a held request: the setting is there.
pub fn delivered(context: u32) {
    if WORKS.with(Cell::get) {
        return;
    }
    if HELD.with(|h| h.borrow_mut().remove(&context).is_some()) {
        WORKS.with(|w| w.set(true));
        HELD.with(|h| h.borrow_mut().clear());
    }
}

/// The stream ended.
pub fn ended(context: u32) {
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
    let due: Vec<(u32, u64, bool)> = HELD.with(|h| {
        h.borrow()
            .iter()
            .filter(|(_, x)| now - x.since_ms >= LOOK_AFTER_MS)
            .map(|(c, x)| (*c, x.bytes, x.suspect))
            .collect()
    });
    if due.is_empty() {
        return;
    }
    for (context, bytes, suspect) in due {
        if !host.switch_to(context) {
            // The stream is gone.
            ended(context);
            continue;
        }
        let grew = host.received_bytes().is_some_and(|now| now > bytes);
        if grew && !suspect {
            HELD.with(|h| {
                if let Some(x) = h.borrow_mut().get_mut(&context) {
                    x.suspect = true;
                }
            });
        } else if grew {
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
            ended(context);
        }
    }
    host.switch_to(root);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryHost;

    fn reset() {
        HELD.with(|h| h.borrow_mut().clear());
        WORKS.with(|w| w.set(false));
        SAID.with(|w| w.set(false));
    }

    fn at(ms: i64, received: u64) -> MemoryHost {
        let h = MemoryHost {
            now_ms: ms,
            ..MemoryHost::default()
        };
        h.received.set(received);
        h
    }

    #[test]
    fn a_body_that_arrives_undelivered_is_answered_and_named() {
        reset();
        paused(7, &&at(1_000, 300));
        paused(9, &&at(1_000, 300));
        // 9's client is slow (no new bytes): left alone.
        let slow = at(1_000 + LOOK_AFTER_MS, 300);
        look(&&slow, 1);
        assert!(slow.sent.borrow().is_none());
        // Bytes arrived, no callback: one look makes it a suspect, the next answers.
        let first = at(2_000, 1_300);
        look(&&first, 1);
        assert!(first.sent.borrow().is_none(), "one look is not enough");
        let second = at(3_000, 1_300);
        look(&&second, 1);
        let sent = second.sent.borrow().clone().unwrap();
        assert_eq!(sent.0, 500);
        assert!(sent.1.contains("allow_on_headers_stop_iteration"));
        assert_eq!(second.effective.get(), 1, "back on the root context");
        let errors: Vec<_> = second
            .logs
            .borrow()
            .iter()
            .filter(|(l, m)| *l == Level::Error && m.contains("allow_on_headers_stop_iteration"))
            .cloned()
            .collect();
        assert_eq!(errors.len(), 1, "said once per VM");
        assert_eq!(
            second.metrics.borrow().get("scopegate_body_not_delivered"),
            Some(&2)
        );
        HELD.with(|h| assert!(h.borrow().is_empty()));
    }

    #[test]
    fn once_a_body_was_delivered_nothing_is_answered() {
        reset();
        paused(1, &&at(1_000, 100));
        delivered(1);
        // Later a request's body is late (a filter before scopegate holds it): not ours.
        paused(2, &&at(5_000, 100));
        for t in [6_000, 7_000, 8_000] {
            let h = at(t, 900);
            look(&&h, 1);
            assert!(h.sent.borrow().is_none());
        }
        // A stream that ends is forgotten.
        reset();
        paused(3, &&at(1_000, 100));
        ended(3);
        HELD.with(|h| assert!(h.borrow().is_empty()));
        assert!(!WORKS.with(Cell::get), "an ended stream proves nothing");
    }
}
