//! What a reviewer needs to see in a bundle that compiles: authority broader than it
//! looks. Warnings, not errors — `scopegate lint --deny-warnings` makes them fail CI.

use crate::bundle::{Bundle, Friction};
use crate::glob::Glob;
use crate::operation::{Action, ActionSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Keys that expired before `now_ms`: they admit nothing any more (remove them).
pub fn expired(b: &Bundle, now_ms: i64) -> Vec<Warning> {
    b.keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            let e = k.expires.as_deref()?;
            let at = crate::time::parse_rfc3339(e)?;
            (at <= now_ms).then(|| Warning {
                path: format!("keys[{i}].expires"),
                message: format!(
                    "key `{}` expired at {e}: it admits nothing; remove it",
                    k.id
                ),
            })
        })
        .collect()
}

/// Warnings for a bundle (one that compiles: run `policy::compile` first).
pub fn warnings(b: &Bundle) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |path: String, message: String| out.push(Warning { path, message });

    // Keys.
    for (i, k) in b.keys.iter().enumerate() {
        if k.expires.is_none() {
            warn(
                format!("keys[{i}]"),
                format!("key `{}` never expires (set `expires`)", k.id),
            );
        }
        let Some((ri, role)) = b.roles.iter().enumerate().find(|(_, r)| r.name == k.role) else {
            continue;
        };
        for (j, g) in role.allow.iter().enumerate() {
            let all = g.resources.iter().any(|r| r == "*");
            let destructive: Vec<&str> = ActionSet::from_words(&g.actions)
                .actions()
                .filter(|a| a.is_destructive())
                .map(Action::as_str)
                .collect();
            if all
                && !destructive.is_empty()
                && g.friction.unwrap_or(Friction::None) == Friction::None
                && g.records.is_none()
            {
                warn(
                    format!("keys[{i}]"),
                    format!(
                        "key `{}` is effectively root on service `{}`: roles[{ri}].allow[{j}] grants {} on every resource without friction",
                        k.id,
                        g.service,
                        destructive.join(", ")
                    ),
                );
            }
        }
    }

    // Roles and their grants.
    for (i, r) in b.roles.iter().enumerate() {
        if !b.keys.iter().any(|k| k.role == r.name) {
            warn(
                format!("roles[{i}]"),
                format!("role `{}` has no key", r.name),
            );
        }
        for (j, g) in r.allow.iter().enumerate() {
            let at = format!("roles[{i}].allow[{j}]");
            let actions = ActionSet::from_words(&g.actions);
            let friction = g.friction.unwrap_or(Friction::None);
            let wild: Vec<&String> = g
                .resources
                .iter()
                .filter(|r| Glob::new(r).is_wildcard())
                .collect();
            let destructive: Vec<&str> = actions
                .actions()
                .filter(|a| a.is_destructive())
                .map(Action::as_str)
                .collect();
            if !wild.is_empty()
                && !destructive.is_empty()
                && friction == Friction::None
                && g.records.is_none()
            {
                warn(
                    at.clone(),
                    format!(
                        "wildcard resources ({}) on destructive actions ({}) without friction",
                        wild.iter()
                            .map(|w| format!("`{w}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        destructive.join(", ")
                    ),
                );
            }
            if let Some(k) = shadowing_guard(b, &g.service, &g.resources, &actions) {
                warn(
                    at,
                    format!("every resource and action of this grant is denied by guards[{k}]: it grants nothing"),
                );
            }
        }
    }

    // Single use and budgets in one Envoy's memory, by default: an explicit
    // `"store": "local"` says the bundle runs in exactly one Envoy.
    let approvals = b
        .roles
        .iter()
        .flat_map(|r| &r.allow)
        .any(|g| g.friction == Some(Friction::Approval))
        || b.guards.iter().any(|g| g.effect == Friction::Approval);
    let budgets =
        b.roles.iter().any(|r| r.budget.is_some()) || b.keys.iter().any(|k| k.budget.is_some());
    if approvals && b.approvals.is_none() {
        warn(
            "approvals".into(),
            "approval tokens are HMACs with one key (`SCOPEGATE_APPROVAL_KEY`) shared by every approver and every gateway: whoever can read a gateway's environment can approve anything, and one person can sign as any name; list approvers with their own keys (`\"approvals\"`, `scopegate approver new`)".into(),
        );
    }
    if b.state.is_none() && (approvals || budgets) {
        let what = match (approvals, budgets) {
            (true, true) => "approvals and budgets",
            (true, false) => "approvals",
            _ => "budgets",
        };
        warn(
            "state".into(),
            format!("{what} with the local store: each Envoy (each replica, each restart) keeps its own record, so an approval token can be used once per replica and a budget of N allows N per replica; behind more than one Envoy use `\"state\": {{\"store\": \"etcd\", …}}`; for exactly one Envoy, say so with `\"state\": {{\"store\": \"local\"}}`"),
        );
    }

    // Services nothing reaches.
    for (i, s) in b.services.iter().enumerate() {
        let granted = b
            .roles
            .iter()
            .flat_map(|r| &r.allow)
            .any(|g| g.service == s.name);
        let public = b.public.iter().any(|p| p.service == s.name);
        let via_tool = b.services.iter().any(|m| {
            m.mcp
                .as_ref()
                .and_then(|c| c.tools.as_ref())
                .is_some_and(|t| {
                    t.values()
                        .any(|v| v.get("sql_service").and_then(|x| x.as_str()) == Some(&s.name))
                })
        });
        if !granted && !public && !via_tool {
            warn(
                format!("services[{i}]"),
                format!(
                    "service `{}` is granted to no role (every request to it is denied)",
                    s.name
                ),
            );
        }
    }
    out
}

/// A deny guard that takes every (resource, action) of a grant away.
fn shadowing_guard(
    b: &Bundle,
    service: &str,
    resources: &[String],
    actions: &ActionSet,
) -> Option<usize> {
    b.guards.iter().enumerate().find_map(|(k, g)| {
        let deny = g.effect == Friction::Deny;
        let service_ok = g.services.iter().any(|s| Glob::new(s).matches(service));
        let resources_ok = g.resources.as_ref().is_none_or(|rs| {
            resources.iter().all(|r| {
                rs.iter().any(|gr| {
                    gr == "*"
                        || gr == r
                        || (!Glob::new(r).is_wildcard() && Glob::new(gr).matches(r))
                })
            })
        });
        let actions_ok = g.actions.as_ref().is_none_or(|ga| {
            actions
                .actions()
                .all(|a| ActionSet::from_words(ga).contains(a))
        });
        (deny && service_ok && resources_ok && actions_ok).then_some(k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::parse;

    const BASE: &str = r#"{"bundle": "l", "version": 1, "environment": "production",
      "services": [{"name": "s", "protocol": "rest", "match": {"path_prefix": "/s"}, "rest": {"style": "postgrest"}},
                   {"name": "idle", "protocol": "rest", "match": {"path_prefix": "/idle"}, "rest": {"style": "postgrest"}}],
      "roles": [{"name": "admin", "allow": [{"service": "s", "resources": ["*"], "actions": ["read", "delete"]}]},
                {"name": "ops", "allow": [{"service": "s", "resources": ["user*"], "actions": ["drop"]},
                                          {"service": "s", "resources": ["payments"], "actions": ["delete"], "friction": "approval"}]},
                {"name": "nobody", "allow": [{"service": "s", "resources": ["x"], "actions": ["read"]}]}],
      "keys": [{"id": "k1", "sha256": "00", "role": "admin"},
               {"id": "k2", "sha256": "00", "role": "ops", "expires": "2030-01-01T00:00:00Z"}],
      "guards": [{"services": ["*"], "resources": ["payments"], "actions": ["destructive"], "effect": "deny"}]}"#;

    #[test]
    fn approvals_without_a_state_store_said() {
        for (state, warned) in [
            ("", true),
            (r#", "state": {"store": "local"}"#, false),
            (r#", "state": {"store": "etcd", "cluster": "etcd"}"#, false),
        ] {
            let json = format!("{}{state}}}", BASE.trim_end().trim_end_matches('}'));
            let b = parse(json.as_bytes()).unwrap();
            let got = warnings(&b).iter().any(|w| w.path == "state");
            assert_eq!(got, warned, "{state}");
        }
    }

    #[test]
    fn reviewer_warnings() {
        let b = parse(BASE.as_bytes()).unwrap();
        let got: Vec<String> = warnings(&b).iter().map(ToString::to_string).collect();
        let want = [
            "keys[0]: key `k1` never expires",
            "keys[0]: key `k1` is effectively root on service `s`: roles[0].allow[0] grants delete",
            "roles[0].allow[0]: wildcard resources (`*`) on destructive actions (delete)",
            "roles[1].allow[0]: wildcard resources (`user*`) on destructive actions (drop)",
            "roles[1].allow[1]: every resource and action of this grant is denied by guards[0]",
            "roles[2]: role `nobody` has no key",
            "approvals: approval tokens are HMACs with one key",
            "state: approvals with the local store",
            "services[1]: service `idle` is granted to no role",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g} / {w}");
        }
    }
}
