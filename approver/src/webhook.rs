//! A webhook per new challenge: Slack-compatible JSON (`{"text": …}`, which Slack,
//! Mattermost, Rocket.Chat and Teams' Slack-style connectors accept), with a link to the
//! challenge's page. Sent in the background: a webhook that fails is logged, and the
//! challenge still waits in the inbox.

use crate::app::App;
use scopegate_engine::approval::{self, Presented};
use serde_json::{json, Value};

/// Text from the request, safe inside Slack's markup: `&`, `<`, `>` escaped (so operation
/// names cannot forge links or mentions), control characters shown escaped.
fn slack_text(s: &str) -> String {
    approval::printable(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The webhook's JSON for a new challenge.
pub fn message(app: &App, p: &Presented) -> Value {
    let ops: Vec<String> = p
        .claims
        .operations
        .iter()
        .map(|op| {
            let s = |k: &str| op.get(k).and_then(Value::as_str).unwrap_or_default();
            slack_text(&format!(
                "{} {} {}",
                s("action"),
                s("service"),
                s("resource")
            ))
        })
        .collect();
    let url = app.approval_url(approval::digest_hex(&p.claims.digest));
    let text = format!(
        "scopegate: key `{}` ({}) asks for approval ({} needed): {} — <{}|review and decide>",
        slack_text(&p.claims.key),
        slack_text(&p.claims.environment),
        p.claims.approvals,
        ops.join("; "),
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
