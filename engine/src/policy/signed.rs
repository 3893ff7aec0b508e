//! The `approvals` section: approvers with their own keys, challenges the gateway signs.

use super::*;
use crate::approval::{self, Approver, PrivateKey, CHALLENGE_KEY_ENV};

/// Signed approvals, compiled.
#[derive(Debug, Clone)]
pub struct SignedApprovals {
    pub approvers: Vec<Approver>,
    /// The public key challenges are checked with.
    pub gateway: ed25519_dalek::VerifyingKey,
    /// The key challenges are signed with (the filter's, from its VM environment); `None`
    /// in tools that never forward (lint, explain, eval): their challenges are unsigned.
    pub signer: Option<PrivateKey>,
    /// How long a challenge can be approved.
    pub challenge_ttl_secs: i64,
    /// The approval inbox's base URL (no trailing `/`).
    pub inbox_url: Option<String>,
}

pub(super) fn compile(
    a: &bundle::ApprovalsConfig,
    secrets: &Secrets,
    errs: &mut Errs,
) -> Option<SignedApprovals> {
    let mut approvers: Vec<Approver> = Vec::new();
    if a.approvers.is_empty() {
        errs.push("approvals.approvers", "list at least one approver");
    }
    for (i, ap) in a.approvers.iter().enumerate() {
        let at = format!("approvals.approvers[{i}]");
        if !approval::valid_label(&ap.name) {
            errs.push(
                format!("{at}.name"),
                "1-64 printable characters, no comma or quote",
            );
        } else if approvers.iter().any(|x| x.name == ap.name) {
            errs.push(
                format!("{at}.name"),
                format!("approver `{}` is listed twice", ap.name),
            );
        }
        match approval::public_key(&ap.ed25519) {
            Ok(key) if approvers.iter().any(|x| x.key == key) => errs.push(
                format!("{at}.ed25519"),
                "the same key as another approver: one person would count as two",
            ),
            Ok(key) => approvers.push(Approver {
                name: ap.name.clone(),
                key,
            }),
            Err(e) => errs.push(format!("{at}.ed25519"), e),
        }
    }
    let gateway = match approval::public_key(&a.challenge_key) {
        Ok(k) => Some(k),
        Err(e) => {
            errs.push("approvals.challenge_key", e);
            None
        }
    };
    let ttl = a.challenge_ttl.as_deref().unwrap_or("5m");
    let challenge_ttl_secs = match crate::time::parse_span_secs(ttl) {
        Some(s) if (30..=approval::MAX_TTL_SECS).contains(&s) => s,
        _ => {
            errs.push(
                "approvals.challenge_ttl",
                "a span such as \"5m\" or \"1h\", from 30s to 24h",
            );
            300
        }
    };
    let signer = match secrets {
        Secrets::Env(env) => match env(CHALLENGE_KEY_ENV).map(|v| PrivateKey::from_base64(&v)) {
            None => {
                errs.push("approvals", format!("`{CHALLENGE_KEY_ENV}` is not set in the Wasm VM (vm_config.environment_variables): the gateway signs its challenges with it"));
                None
            }
            Some(Err(e)) => {
                errs.push("approvals", format!("`{CHALLENGE_KEY_ENV}`: {e}"));
                None
            }
            Some(Ok(k)) if Some(k.public()) != gateway => {
                errs.push(
                    "approvals.challenge_key",
                    format!("is not the public half of `{CHALLENGE_KEY_ENV}`"),
                );
                None
            }
            Some(Ok(k)) => Some(k),
        },
        Secrets::Unchecked => None,
    };
    let inbox_url = a.inbox_url.as_deref().and_then(|url| match inbox_url(url) {
        Ok(u) => Some(u),
        Err(e) => {
            errs.push("approvals.inbox_url", e);
            None
        }
    });
    Some(SignedApprovals {
        approvers,
        gateway: gateway?,
        signer,
        challenge_ttl_secs,
        inbox_url,
    })
}

/// An inbox base URL: `http(s)://host[:port][/path]`, printable ASCII without quotes,
/// query or fragment; the trailing `/` dropped.
fn inbox_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("an http:// or https:// URL")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || url.len() > 512
        || !url.bytes().all(|b| {
            b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'<' | b'>' | b'?' | b'#' | b'\'')
        })
    {
        return Err("an http:// or https:// URL with a host, no query, fragment or quotes".into());
    }
    Ok(url.trim_end_matches('/').to_string())
}
