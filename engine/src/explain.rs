//! `scopegate explain`: what authority each key really carries — not what it was created
//! for. Built from the bundle and the compiled policy; where the concrete names a service
//! has are known (a GraphQL schema, a table list), every (name, action) is run through the
//! filter's own `evaluate`, so guards and friction are applied exactly as in Envoy.

use crate::bundle::{Bundle, Friction, Service as ServiceConfig};
use crate::decode::actions::parse_rule;
use crate::decode::graphql::GraphqlDecoder;
use crate::evaluate::{evaluate, Evaluation};
use crate::operation::{Action, ActionSet, Operation};
use crate::policy::{Decoder, Policy, Role};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

#[derive(Debug, Serialize)]
pub struct KeyReport {
    pub key: String,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub environments: Vec<String>,
    pub expires: Option<String>,
    pub services: Vec<ServiceReport>,
    pub blast_radius: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub service: String,
    pub protocol: String,
    pub grants: Vec<GrantReport>,
    /// Guards that apply on this service: what they take away or gate.
    pub guards: Vec<String>,
    /// Mutations and tools whose action hinges on their arguments
    /// (`variableCollectionUpsert: update (delete when input.replace = true)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argument_actions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<Reach>,
}

#[derive(Debug, Serialize)]
pub struct GrantReport {
    pub rule: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<BTreeMap<String, Vec<Value>>>,
    pub friction: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<String>>,
}

/// Concrete names a service has, run through `evaluate`.
#[derive(Debug, Serialize)]
pub struct Reach {
    /// What the names are (`GraphQL schema: 120 queries, 230 mutations`).
    pub universe: String,
    /// (action, friction) → names the role reaches that way.
    pub reached: Vec<ReachLine>,
    /// Names a grant covers but a guard (or a deny grant) takes away.
    pub denied: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ReachLine {
    pub action: String,
    pub friction: String,
    pub names: Vec<String>,
}

/// Names to expand patterns into, per service: (name, actions to try).
pub type Universe = HashMap<String, (String, Vec<(String, Action)>)>;

/// Candidate (name, action) pairs a service offers: its GraphQL schema's root fields, or
/// the tables given for it.
pub fn universe(policy: &Policy, tables: &HashMap<String, Vec<String>>) -> Universe {
    let mut out = Universe::new();
    for s in &policy.services {
        if let Decoder::Graphql(d) = &s.decoder {
            if let Some(u) = graphql_universe(d) {
                out.insert(s.name.clone(), u);
            }
        }
        if let Some(names) = tables.get(&s.name) {
            // Named as the service's decoder names them: a SQL table as the decoder binds
            // it (`reservations` → `public.reservations`), so grants match the names eval
            // sees.
            let mut renamed = Vec::new();
            let names: Vec<String> = names
                .iter()
                .map(|n| {
                    let r = resolve_table(s, n);
                    if r != *n {
                        renamed.push(format!("{n} → {r}"));
                    }
                    r
                })
                .collect();
            let pairs = names
                .iter()
                .flat_map(|n| {
                    // What can be done to a table (admin and execute are not per table).
                    Action::ALL
                        .into_iter()
                        .filter(|a| !matches!(a, Action::Admin | Action::Execute))
                        .map(|a| (n.clone(), a))
                })
                .collect();
            let what = match s.decoder {
                Decoder::Sql(_) | Decoder::Rest(_) => "tables",
                _ => "names",
            };
            let label = if renamed.is_empty() {
                format!("{} {what} given", names.len())
            } else {
                format!(
                    "{} {what} given, named as the SQL decoder binds them: {}",
                    names.len(),
                    abbreviate(&renamed)
                )
            };
            out.insert(s.name.clone(), (label, pairs));
        }
    }
    out
}

/// A table name as the service's decoder names it in operations: for SQL, what
/// `SELECT * FROM <name>` reads (the decoder's own name binding: default schema, quoting,
/// case folding); other decoders use the name as given.
pub fn resolve_table(s: &crate::policy::Service, name: &str) -> String {
    match &s.decoder {
        Decoder::Sql(d) => d
            .classify(&s.name, &format!("SELECT * FROM {name}"), &[])
            .ok()
            .and_then(|ops| {
                ops.into_iter()
                    .find(|o| o.action == Action::Read)
                    .map(|o| o.resource)
            })
            .unwrap_or_else(|| name.to_string()),
        _ => name.to_string(),
    }
}

fn graphql_universe(d: &GraphqlDecoder) -> Option<(String, Vec<(String, Action)>)> {
    let [queries, mutations, subscriptions] = d.root_fields()?.names();
    let label = format!(
        "GraphQL schema: {} queries, {} mutations, {} subscriptions",
        queries.len(),
        mutations.len(),
        subscriptions.len()
    );
    // A subscription is its own resource (`subscription/<field>`), as the decoder makes it.
    let mut pairs: Vec<(String, Action)> = queries
        .into_iter()
        .map(|q| (q, Action::Read))
        .chain(
            subscriptions
                .into_iter()
                .map(|s| (format!("subscription/{s}"), Action::Read)),
        )
        .collect();
    // Every action a mutation can have: its own and, when its arguments decide, each case's.
    for m in mutations {
        let rule = d.mutation_rule(&m);
        let mut actions: Vec<Action> = rule.possible().collect();
        actions.sort();
        actions.dedup();
        pairs.extend(actions.into_iter().map(|a| (m.clone(), a)));
    }
    Some((label, pairs))
}

fn actions_words(words: &[String]) -> Vec<String> {
    ActionSet::from_words(words)
        .actions()
        .map(|a| a.as_str().to_string())
        .collect()
}

fn friction_word(f: Friction) -> &'static str {
    match f {
        Friction::None => "no friction",
        Friction::Confirm => "with confirmation",
        Friction::Approval => "with approval",
        Friction::Deny => "denied",
    }
}

/// (key id, role, description, environments, expiry) of a key to report.
type Subject<'a> = (String, &'a str, Option<String>, Vec<String>, Option<String>);

/// Reports for the bundle's keys (optionally one key, or the keys of one role; a role
/// without keys is reported as `(role)`).
pub fn explain(
    b: &Bundle,
    policy: &Policy,
    universe: &Universe,
    key: Option<&str>,
    role: Option<&str>,
) -> Result<Vec<KeyReport>, String> {
    let mut subjects: Vec<Subject> = b
        .keys
        .iter()
        .filter(|k| key.is_none_or(|id| k.id == id) && role.is_none_or(|r| k.role == r))
        .map(|k| {
            (
                k.id.clone(),
                k.role.as_str(),
                k.description.clone(),
                k.environments.clone().unwrap_or_else(|| vec!["any".into()]),
                k.expires.clone(),
            )
        })
        .collect();
    // Identities (verified tokens) carry a role like keys do: `<entry>/*` stands for
    // every holder the entry admits.
    for e in b.identities.iter().flat_map(|i| &i.entries) {
        let id = format!("{}/*", e.id);
        if key.is_none_or(|k| k == id || k == e.id) && role.is_none_or(|r| e.role == r) {
            subjects.push((
                id,
                e.role.as_str(),
                Some(format!(
                    "tokens from {} for {} (id claim `{}`)",
                    e.issuer,
                    e.audiences.join(", "),
                    e.id_claim.as_deref().unwrap_or("sub")
                )),
                e.environments.clone().unwrap_or_else(|| vec!["any".into()]),
                None,
            ));
        }
    }
    if subjects.is_empty() {
        match (key, role) {
            (Some(k), _) => return Err(format!("no key `{k}` in the bundle")),
            (None, Some(r)) if b.roles.iter().any(|x| x.name == r) => {
                subjects.push((format!("({r})"), r, None, vec!["any".into()], None));
            }
            (None, Some(r)) => return Err(format!("no role `{r}` in the bundle")),
            (None, None) => {}
        }
    }
    let mut out = Vec::new();
    for (id, role_name, description, environments, expires) in subjects {
        let (Some((ri, bundle_role)), Some(role)) = (
            b.roles
                .iter()
                .enumerate()
                .find(|(_, r)| r.name == role_name),
            policy.roles.iter().find(|r| r.name == role_name),
        ) else {
            continue;
        };
        let mut services = Vec::new();
        for s in &b.services {
            let grants: Vec<GrantReport> = bundle_role
                .allow
                .iter()
                .enumerate()
                .filter(|(_, g)| g.service == s.name)
                .map(|(j, g)| GrantReport {
                    rule: format!("roles[{ri}].allow[{j}]"),
                    actions: actions_words(&g.actions),
                    resources: g.resources.clone(),
                    scope: if g.unbounded == Some(true) {
                        "every row (unbounded)".into()
                    } else {
                        "some rows".into()
                    },
                    records: g.records.clone(),
                    friction: friction_word(g.friction.unwrap_or(Friction::None)).into(),
                    environments: g.environments.clone(),
                })
                .collect();
            if grants.is_empty() {
                continue;
            }
            let guards = b
                .guards
                .iter()
                .enumerate()
                .filter(|(_, g)| {
                    g.services
                        .iter()
                        .any(|p| crate::glob::Glob::new(p).matches(&s.name))
                })
                .map(|(k, g)| {
                    // Argument conditions (GraphQL), e.g. `decryptVariables` true.
                    let when = g.arguments.as_ref().map_or(String::new(), |a| {
                        format!(
                            " when arguments {}",
                            serde_json::to_string(a).unwrap_or_default()
                        )
                    });
                    format!(
                        "guards[{k}] {} {} on {}{when}",
                        match g.effect {
                            Friction::Deny => "denies",
                            Friction::Approval => "requires approval for",
                            Friction::Confirm => "requires confirmation for",
                            Friction::None => "notes",
                        },
                        g.actions
                            .as_ref()
                            .map_or("every action".to_string(), |a| a.join(", ")),
                        g.resources
                            .as_ref()
                            .map_or("every resource".to_string(), |r| r.join(", "))
                    )
                })
                .collect();
            let reach = universe
                .get(&s.name)
                .map(|(label, pairs)| reach(policy, role, &s.name, label, pairs));
            services.push(ServiceReport {
                service: s.name.clone(),
                protocol: s.protocol.as_str().to_string(),
                grants,
                guards,
                argument_actions: argument_actions(s),
                reach,
            });
        }
        let blast_radius = blast_radius(&services);
        out.push(KeyReport {
            key: id,
            role: role_name.to_string(),
            description,
            environments,
            expires,
            services,
            blast_radius,
        });
    }
    Ok(out)
}

/// The service's names whose action hinges on arguments, described.
fn argument_actions(s: &ServiceConfig) -> Vec<String> {
    let rules = s
        .graphql
        .as_ref()
        .and_then(|g| g.mutations.as_ref())
        .or(s.mcp.as_ref().and_then(|m| m.tools.as_ref()));
    rules
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.get("when").is_some())
        .filter_map(|(name, v)| {
            parse_rule(v, name, &mut Default::default())
                .map(|r| format!("{name}: {}", r.describe()))
        })
        .collect()
}

fn reach(
    policy: &Policy,
    role: &Role,
    service: &str,
    label: &str,
    pairs: &[(String, Action)],
) -> Reach {
    // Ordered by action (declaration order), then friction.
    let mut reached: BTreeMap<(Action, Friction), Vec<String>> = BTreeMap::new();
    let mut denied = Vec::new();
    // Records a grant of the role on this service is limited to: an operation on one of
    // them is what such a grant covers (one witness per grant).
    let witnesses: Vec<&crate::operation::Records> = role
        .grants
        .iter()
        .filter(|g| {
            policy
                .services
                .get(g.service)
                .is_some_and(|s| s.name == service)
        })
        .filter_map(|g| g.records.as_ref())
        .collect();
    for (name, action) in pairs {
        let mut op = Operation::new(service, *action, name.clone());
        op.environments = vec![policy.environment.clone()];
        // The cheapest way through: without records, or on a grant's listed records
        // (a records-limited grant may ask less friction than a broader one).
        let mut found = friction_of(policy, role, &op).map(|f| (f, false));
        for w in &witnesses {
            op.records = w
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().take(1).cloned().collect()))
                .collect();
            if let Some(f) = friction_of(policy, role, &op) {
                if found.is_none_or(|(g, _)| friction_rank(f) < friction_rank(g)) {
                    found = Some((f, true));
                }
            }
        }
        match found {
            Some((Friction::Deny, _)) => denied.push(format!("{} {name}", action.as_str())),
            Some((f, listed)) => reached.entry((*action, f)).or_default().push(if listed {
                format!("{name} (listed records)")
            } else {
                name.clone()
            }),
            None => {}
        }
    }
    Reach {
        universe: label.to_string(),
        reached: reached
            .into_iter()
            .map(|((a, f), names)| ReachLine {
                action: a.as_str().to_string(),
                friction: friction_word(f).to_string(),
                names,
            })
            .collect(),
        denied,
    }
}

/// The friction an operation costs the role, as the filter evaluates it; `None` when
/// no grant covers it.
fn friction_of(policy: &Policy, role: &Role, op: &Operation) -> Option<Friction> {
    match evaluate(policy, role, std::slice::from_ref(op)) {
        Evaluation::Covered { owed, .. } => Some(
            owed.iter()
                .map(|o| o.friction)
                .max_by_key(|f| friction_rank(*f))
                .unwrap_or(Friction::None),
        ),
        Evaluation::NotCovered { .. } => None,
    }
}

fn friction_rank(f: Friction) -> u8 {
    match f {
        Friction::None => 0,
        Friction::Confirm => 1,
        Friction::Approval => 2,
        Friction::Deny => 3,
    }
}

/// One line per destructive action: what the key can do with it, and how.
fn blast_radius(services: &[ServiceReport]) -> Vec<String> {
    let mut lines = Vec::new();
    for action in [
        Action::Delete,
        Action::Drop,
        Action::Alter,
        Action::Admin,
        Action::Execute,
    ] {
        let a = action.as_str();
        let mut parts = Vec::new();
        for s in services {
            match &s.reach {
                Some(r) => {
                    for line in r.reached.iter().filter(|l| l.action == a) {
                        parts.push(format!(
                            "{} on {} ({}: {})",
                            line.names.len(),
                            s.service,
                            line.friction,
                            abbreviate(&line.names)
                        ));
                    }
                }
                None => {
                    for g in s
                        .grants
                        .iter()
                        .filter(|g| g.actions.iter().any(|x| x == a) && g.friction != "denied")
                    {
                        let rows = if g.records.is_some() {
                            " (listed records only)"
                        } else if g.scope.starts_with("every") {
                            " (every row)"
                        } else {
                            ""
                        };
                        parts.push(format!(
                            "{} on {}{rows} ({})",
                            g.resources.join(", "),
                            s.service,
                            g.friction
                        ));
                    }
                }
            }
        }
        lines.push(if parts.is_empty() {
            format!("can {a} nothing")
        } else {
            format!("can {a}: {}", parts.join("; "))
        });
    }
    lines
}

fn abbreviate(names: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        let _ = write!(s, ", … (+{})", names.len() - SHOWN);
    }
    s
}

/// Plain-text rendering (`--format table`).
pub fn render_table(reports: &[KeyReport]) -> String {
    let mut o = String::new();
    for r in reports {
        let _ = writeln!(
            o,
            "key {}  role {}  environments {}  expires {}",
            r.key,
            r.role,
            r.environments.join(", "),
            r.expires.as_deref().unwrap_or("never")
        );
        if let Some(d) = &r.description {
            let _ = writeln!(o, "  {d}");
        }
        for s in &r.services {
            let _ = writeln!(o, "  service {} ({})", s.service, s.protocol);
            for g in &s.grants {
                let mut extra = Vec::new();
                if let Some(rec) = &g.records {
                    extra.push(format!(
                        "records {}",
                        serde_json::to_string(rec).unwrap_or_default()
                    ));
                }
                if let Some(e) = &g.environments {
                    extra.push(format!("environments {}", e.join(", ")));
                }
                let _ = writeln!(
                    o,
                    "    {:<20} {:<28} {:<40} {}, {}{}",
                    g.rule,
                    g.actions.join(", "),
                    g.resources.join(", "),
                    g.scope,
                    g.friction,
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", extra.join("; "))
                    }
                );
            }
            for gd in &s.guards {
                let _ = writeln!(o, "    {gd}");
            }
            for a in &s.argument_actions {
                let _ = writeln!(o, "    action by arguments: {a}");
            }
            if let Some(reach) = &s.reach {
                let _ = writeln!(o, "    reaches ({}):", reach.universe);
                for l in &reach.reached {
                    let _ = writeln!(
                        o,
                        "      {} {}: {} — {}",
                        l.action,
                        l.friction,
                        l.names.len(),
                        abbreviate(&l.names)
                    );
                }
                if !reach.denied.is_empty() {
                    let _ = writeln!(
                        o,
                        "      granted but denied (guards): {} — {}",
                        reach.denied.len(),
                        abbreviate(&reach.denied)
                    );
                }
            }
        }
        let _ = writeln!(o, "  blast radius:");
        for l in &r.blast_radius {
            let _ = writeln!(o, "    {l}");
        }
        let _ = writeln!(o);
    }
    o
}

/// Markdown rendering (`--format markdown`), for reviews and wikis.
pub fn render_markdown(reports: &[KeyReport]) -> String {
    let mut o = String::new();
    for r in reports {
        let _ = writeln!(o, "### Key `{}` (role `{}`)\n", r.key, r.role);
        if let Some(d) = &r.description {
            let _ = writeln!(o, "{d}\n");
        }
        let _ = writeln!(
            o,
            "Environments: {}. Expires: {}.\n",
            r.environments.join(", "),
            r.expires.as_deref().unwrap_or("never")
        );
        for s in &r.services {
            let _ = writeln!(o, "**{}** ({})\n", s.service, s.protocol);
            let _ = writeln!(o, "| rule | actions | resources | scope | friction |\n| --- | --- | --- | --- | --- |");
            for g in &s.grants {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {}{} | {} |",
                    g.rule,
                    g.actions.join(", "),
                    g.resources
                        .iter()
                        .map(|x| format!("`{x}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    g.scope,
                    g.records.as_ref().map_or(String::new(), |rec| format!(
                        ", records {}",
                        serde_json::to_string(rec).unwrap_or_default()
                    )),
                    g.friction
                );
            }
            let _ = writeln!(o);
            for gd in &s.guards {
                let _ = writeln!(o, "- {gd}");
            }
            for a in &s.argument_actions {
                let _ = writeln!(o, "- action by arguments: {a}");
            }
            if let Some(reach) = &s.reach {
                let _ = writeln!(o, "- reaches ({}):", reach.universe);
                for l in &reach.reached {
                    let _ = writeln!(
                        o,
                        "  - {} {}: {} — {}",
                        l.action,
                        l.friction,
                        l.names.len(),
                        abbreviate(&l.names)
                    );
                }
            }
            let _ = writeln!(o);
        }
        let _ = writeln!(o, "Blast radius:\n");
        for l in &r.blast_radius {
            let _ = writeln!(o, "- {l}");
        }
        let _ = writeln!(o);
    }
    o
}
