//! Forwarding: what an allowed request carries upstream (the credential and any
//! `x-scopegate-*` it sent removed, identity headers set, upstream credentials injected),
//! and shadow mode (decided and recorded, forwarded whatever the decision).

use super::*;

/// Headers scopegate owns on the upstream side; whatever an agent sends is dropped.
pub(super) const SCOPEGATE_HEADERS: [&str; 5] = [
    "x-scopegate-key",
    "x-scopegate-role",
    "x-scopegate-approval",
    "x-scopegate-confirm",
    SERVICE_HEADER,
];

/// The service a forwarded request was decided for: Envoy routes on it (`scopegate
/// envoy`), so the upstream a request reaches is the one its decision was made for.
pub const SERVICE_HEADER: &str = "x-scopegate-service";

impl Engine {
    /// Shadow mode (the bundle's `"mode": "shadow"`, or the caller's role's): a refusal
    /// is recorded as decided, with `enforced: false`, and the request goes on — with
    /// the usual header changes when a key was recognised, untouched otherwise.
    pub(super) fn shadowed(&self, v: Verdict) -> Verdict {
        if v.allowed().is_some() {
            return v;
        }
        // The caller's role, by index: the caller below needs both.
        let role = v
            .subject
            .role
            .as_deref()
            .and_then(|r| self.policy.roles.iter().position(|x| x.name == r))
            .and_then(|idx| Some((idx, self.policy.roles.get(idx)?)));
        if !(self.policy.shadow || role.is_some_and(|(_, r)| r.shadow)) {
            return v;
        }
        let service = v
            .subject
            .service
            .as_deref()
            .and_then(|s| self.policy.service_named(s));
        let caller = match (&v.subject.key, role) {
            (Some(id), Some((idx, role))) => Some(Caller {
                id: id.clone(),
                role: idx,
                role_name: &role.name,
                budget: None,
            }),
            _ => None,
        };
        let forward = match (service, caller) {
            (Some(service), Some(caller)) => self.forward(
                service,
                Some(&caller),
                // The head is gone: every removal (one of an absent header is a no-op).
                |_| true,
                &v.subject.prefixed_headers,
                &v.subject.alias_headers,
            ),
            // Nothing recognised: still, no header of scopegate's goes on as the agent
            // wrote it (routes read `x-scopegate-service`), nor any credential an
            // upstream accepts (no service's `keep_headers` applies).
            _ => {
                let mut remove: Vec<String> = SCOPEGATE_HEADERS
                    .iter()
                    .chain(crate::policy::UPSTREAM_CREDENTIAL_HEADERS.iter())
                    .map(|h| h.to_string())
                    .chain(self.policy.credential_headers.iter().cloned())
                    .chain(v.subject.prefixed_headers.iter().cloned())
                    .chain(v.subject.alias_headers.iter().cloned())
                    .collect();
                remove.sort();
                remove.dedup();
                Forward {
                    remove,
                    ..Forward::default()
                }
            }
        };
        Verdict {
            shadow: Some(forward),
            ..v
        }
    }
    /// Header changes on the way to the upstream: the agent's credential, any credential
    /// header an upstream style accepts (the service's `strip_headers`, and the request's
    /// `prefixed` ones) and any `x-scopegate-*` it sent are removed (those `present` says
    /// the request has); identity and upstream auth are set.
    pub(super) fn forward(
        &self,
        service: &Service,
        caller: Option<&Caller>,
        present: impl Fn(&str) -> bool,
        prefixed: &[String],
        aliases: &[String],
    ) -> Forward {
        let mut f = Forward::default();
        let credentials = self.policy.credential_headers.iter().map(String::as_str);
        for h in credentials
            .chain(SCOPEGATE_HEADERS)
            .chain(service.strip_headers.iter().copied())
        {
            if present(h) && !f.remove.iter().any(|r| r == h) {
                f.remove.push(h.to_string());
            }
        }
        let family = prefixed.iter().filter(|_| service.strip_prefixed);
        for h in family.chain(aliases) {
            if !f.remove.contains(h) {
                f.remove.push(h.clone());
            }
        }
        f.set.push((SERVICE_HEADER.into(), service.name.clone()));
        if let Some(c) = caller {
            f.set.push(("x-scopegate-key".into(), c.id.clone()));
            f.set
                .push(("x-scopegate-role".into(), c.role_name.to_string()));
        }
        if let Some(ua) = &service.upstream_auth {
            f.set.push((ua.header.clone(), ua.value.clone()));
        }
        if matches!(service.decoder, Decoder::Mcp(_)) {
            // MCP answers may be filtered on the way back: ask for them uncompressed.
            f.remove.push("accept-encoding".into());
        }
        f
    }
}
