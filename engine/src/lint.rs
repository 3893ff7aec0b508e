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
    }
    // Keys and identities: what each can do.
    let holders = b
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("keys[{i}]"), format!("key `{}`", k.id), &k.role))
        .chain(
            b.identities
                .iter()
                .flat_map(|x| x.entries.iter().enumerate())
                .map(|(i, e)| {
                    (
                        format!("identities.entries[{i}]"),
                        format!("identity `{}`", e.id),
                        &e.role,
                    )
                }),
        );
    for (at, who, role_name) in holders {
        let Some((ri, role)) = b
            .roles
            .iter()
            .enumerate()
            .find(|(_, r)| &r.name == role_name)
        else {
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
                    at.clone(),
                    format!(
                        "{who} is effectively root on service `{}`: roles[{ri}].allow[{j}] grants {} on every resource without friction",
                        g.service,
                        destructive.join(", ")
                    ),
                );
            }
        }
    }

    // Roles and their grants.
    for (i, r) in b.roles.iter().enumerate() {
        let by_identity = b
            .identities
            .iter()
            .flat_map(|i| &i.entries)
            .any(|e| e.role == r.name);
        if !b.keys.iter().any(|k| k.role == r.name) && !by_identity {
            warn(
                format!("roles[{i}]"),
                format!("role `{}` has no key and no identity", r.name),
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

/// Grant resources that can never match what the service's decoder produces: a SQL
/// table written unqualified (the decoder names tables as it binds them, `public.x`), a
/// name outside the service's known names — its GraphQL schema's root fields, or a list
/// given for it (`universe`: tables, MCP tools/prompts/resources) — and an MCP name one
/// or two letters away from a tool the bundle's `mcp.tools` lists. Resolved with
/// `explain`'s (the filter's) code, so lint and eval agree on names.
pub fn never_matching(
    b: &Bundle,
    policy: &crate::policy::Policy,
    universe: &crate::explain::Universe,
) -> Vec<Warning> {
    use crate::explain::resolve_table;
    use crate::policy::Decoder;
    let mut out = Vec::new();
    // A pattern's probe: one name it matches (wildcards as `x`).
    let probe = |r: &str| r.replace(['*', '?'], "x");
    for (i, role) in b.roles.iter().enumerate() {
        for (j, g) in role.allow.iter().enumerate() {
            let Some(svc) = policy.services.iter().find(|s| s.name == g.service) else {
                continue;
            };
            let at = format!("roles[{i}].allow[{j}]");
            let actions = ActionSet::from_words(&g.actions);
            let on_tables = actions
                .actions()
                .any(|a| !matches!(a, Action::Execute | Action::Admin));
            for r in &g.resources {
                let glob = Glob::new(r);
                if let (Decoder::Sql(_), true) = (&svc.decoder, on_tables) {
                    let named = resolve_table(svc, &probe(r));
                    if named != probe(r) && !glob.matches(&named) {
                        out.push(Warning {
                            path: at.clone(),
                            message: format!(
                                "resource `{r}` can never match on SQL service `{}`: its decoder names tables as it binds them (`{}` for `{}`); write `{}`",
                                svc.name,
                                named,
                                probe(r),
                                named.rsplit_once('.').map_or(named.clone(), |(schema, _)| format!("{schema}.{r}"))
                            ),
                        });
                        continue;
                    }
                }
                if let Some((label, pairs)) = universe.get(&svc.name) {
                    // GraphQL paths below the root and MCP URIs are not in the list.
                    let graphql_path =
                        matches!(svc.decoder, Decoder::Graphql(_)) && r.contains('.');
                    if !graphql_path && !pairs.iter().any(|(n, _)| glob.matches(n)) {
                        out.push(Warning {
                            path: at.clone(),
                            message: format!(
                                "resource `{r}` matches nothing service `{}` has ({label}): the grant gives nothing there{}",
                                svc.name,
                                nearest(r, pairs.iter().map(|(n, _)| n.as_str()))
                                    .map_or(String::new(), |n| format!(" — did you mean `{n}`?"))
                            ),
                        });
                        continue;
                    }
                }
                let tools = b
                    .services
                    .iter()
                    .find(|s| s.name == svc.name)
                    .and_then(|s| s.mcp.as_ref())
                    .and_then(|m| m.tools.as_ref());
                if let (Some(tools), false) = (tools, glob.is_wildcard()) {
                    if !tools.contains_key(r) {
                        if let Some(n) = nearest(r, tools.keys().map(String::as_str)) {
                            out.push(Warning {
                                path: at.clone(),
                                message: format!(
                                    "resource `{r}` is not a tool `mcp.tools` lists on service `{}` — did you mean `{n}`?",
                                    svc.name
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// The name within two edits of `r` (and not `r`), if one is.
fn nearest<'a>(r: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .filter(|n| *n != r)
        .map(|n| (edits(r, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance (bounded inputs: resource names).
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let (Some(&up), Some(&left)) = (row.get(j + 1), row.get(j)) else {
                continue;
            };
            let v = (up + 1).min(left + 1).min(prev + cost);
            prev = up;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = v;
            }
        }
    }
    row.last().copied().unwrap_or(0)
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
            "roles[2]: role `nobody` has no key and no identity",
            "approvals: approval tokens are HMACs with one key",
            "state: approvals with the local store",
            "services[1]: service `idle` is granted to no role",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g} / {w}");
        }
    }

    #[test]
    fn grants_that_can_never_match() {
        let b = parse(
            br#"{"bundle": "n", "version": 1, "environment": "production",
          "services": [
            {"name": "db", "protocol": "sql", "match": {"path_prefix": "/sql"},
             "sql": {"dialect": "postgres", "default_schema": "public", "statement": {"json_pointer": "/sql"}}},
            {"name": "tools", "protocol": "mcp", "match": {"path_prefix": "/mcp"},
             "mcp": {"tools": {"delete_reservation": "delete"}}}],
          "roles": [{"name": "r", "allow": [
            {"service": "db", "resources": ["reservations", "public.vehicles", "public.*", "pay*"], "actions": ["read"]},
            {"service": "db", "resources": ["refresh_stats"], "actions": ["execute"]},
            {"service": "tools", "resources": ["delete_resrvation", "list_*"], "actions": ["delete", "read"]}]}],
          "keys": [{"id": "k", "sha256": "0000000000000000000000000000000000000000000000000000000000000000", "role": "r", "expires": "2030-01-01T00:00:00Z"}]}"#,
        )
        .unwrap();
        let policy = crate::policy::compile(&b, &crate::policy::Secrets::Unchecked).unwrap();
        let none = crate::explain::Universe::new();
        let w: Vec<String> = never_matching(&b, &policy, &none)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(
            w[0].starts_with("roles[0].allow[0]: resource `reservations` can never match")
                && w[0].contains("write `public.reservations`"),
            "{}",
            w[0]
        );
        assert!(w[1].contains("resource `pay*` can never match"), "{}", w[1]);
        assert!(
            w[2].contains("`delete_resrvation` is not a tool")
                && w[2].contains("did you mean `delete_reservation`?"),
            "{}",
            w[2]
        );
        // With the names the services have: what matches none of them.
        let lists = [
            (
                "db".to_string(),
                vec!["vehicles".to_string(), "payments".to_string()],
            ),
            (
                "tools".to_string(),
                vec![
                    "delete_reservation".to_string(),
                    "list_vehicles".to_string(),
                ],
            ),
        ]
        .into_iter()
        .collect();
        let universe = crate::explain::universe(&policy, &lists);
        let w: Vec<String> = never_matching(&b, &policy, &universe)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            w.iter().any(|x| x.contains(
                "`delete_resrvation` matches nothing service `tools` has (2 names given)"
            ) && x.contains("did you mean `delete_reservation`?")),
            "{w:#?}"
        );
        assert!(
            !w.iter().any(|x| x.contains("`public.vehicles`")
                || x.contains("`list_*`")
                || x.contains("`public.*`")),
            "{w:#?}"
        );
    }
}
