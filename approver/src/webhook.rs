//! A webhook per new challenge: Slack-compatible JSON (`{"text": …}`, which Slack,
//! Mattermost, Rocket.Chat and Teams' Slack-style connectors accept), with a link to the
//! challenge's page. Sent in the background: a webhook that fails is logged, and the
//! challenge still waits in the inbox.

use crate::app::App;
use scopegate_engine::approval::{self, Presented};
use serde_json::{json, Value};

/// Text safe inside chat markup: `&`, `<`, `>` escaped, control characters shown escaped.
/// Only the bundle's own names go through it (key ids, environments, services, actions).
fn slack_text(s: &str) -> String {
    approval::printable(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The webhook's JSON for a new challenge. It names the key, environment, actions and
/// services — the bundle's names — and how many operations, never what the agent wrote
/// (resources, records, statements): chat services render Markdown, links and mentions,
/// so agent text could phish the approvers. The details are on the page it links.
pub fn message(app: &App, p: &Presented) -> Value {
    let mut what: Vec<String> = Vec::new();
    for op in &p.claims.operations {
        let s = |k: &str| op.get(k).and_then(Value::as_str).unwrap_or_default();
        let bundle_named = app.with_policy(|policy| policy.service_named(s("service")).is_some());
        let action = s("action");
        let known_action = action.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if bundle_named && known_action && !action.is_empty() {
            let line = format!("{action} on {}", s("service"));
            if !what.contains(&line) {
                what.push(line);
            }
        }
    }
    let url = app.approval_url(approval::digest_hex(&p.claims.digest));
    let text = format!(
        "scopegate: key `{}` ({}) asks for approval ({} needed): {} ({} operation{}) — <{}|review and decide>",
        slack_text(&p.claims.key),
        slack_text(&p.claims.environment),
        p.claims.approvals,
        slack_text(&what.join(", ")),
        p.claims.operations.len(),
        if p.claims.operations.len() == 1 { "" } else { "s" },
        url
    );
    json!({"text": text, "approval_url": url, "digest": p.claims.digest, "key": p.claims.key})
}

/// Posts the message in the background (5 s timeout).
pub fn notify(app: &App, p: &Presented) {
    let Some(hook) = app.webhook.clone() else {
        return;
    };
    let body = message(app, p);
    let http = app.http.clone();
    tokio::spawn(async move {
        let sent = http
            .post(&hook)
            .timeout(std::time::Duration::from_secs(5))
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => eprintln!("scopegate-approver: webhook answered {}", r.status()),
            Err(e) => eprintln!("scopegate-approver: webhook: {}", e.without_url()),
        }
    });
}
