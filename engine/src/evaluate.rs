//! Rule precedence, written once. Pure: no clock, no host.

use crate::bundle::Friction;
use crate::decode::actions::{holds, Holds};
use crate::operation::{Action, Field, Operation, Records, Scope};
use crate::policy::{Grant, Guard, Policy, Role};
use crate::verdict::GrantSet;

/// What one operation owes, and the bundle rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub friction: Friction,
    /// Approvers needed when `friction` is approval (1 or 2).
    pub approvals: u8,
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// Some operation is covered by no grant of the role (index, why).
    NotCovered { op: usize, reason: String },
    /// Every operation is covered; `owed[i]` is what operation `i` owes.
    /// The request owes the strictest of them. `grants`: the grants of the role that
    /// covered them (one per operation, the least-friction one), guards or not.
    Covered { owed: Vec<Owed>, grants: GrantSet },
}

impl Evaluation {
    /// The strictest friction owed and its operation index (first on ties).
    pub fn strictest(&self) -> Option<(usize, &Owed)> {
        match self {
            Evaluation::NotCovered { .. } => None,
            Evaluation::Covered { owed, .. } => owed.iter().enumerate().fold(
                None,
                |best: Option<(usize, &Owed)>, (i, o)| match best {
                    Some((_, b)) if (b.friction, b.approvals) >= (o.friction, o.approvals) => best,
                    _ => Some((i, o)),
                },
            ),
        }
    }
}

/// Precedence, in order:
///
/// 1. **Scope before friction.** An operation must be covered by a grant of the key's
///    role: same service, a resource pattern that matches, an action the grant names;
///    `scope: all` also needs `unbounded: true`; a grant's `records` constraint needs
///    the operation's *proven* record keys to be a subset of the allowed values
///    (unproven keys are not covered), and every value a write assigns to such a key
///    (its post-image, `Operation::sets`) to be allowed too. A read of no relation
///    (`SELECT 1`) is covered by any `read` grant of its service. Any uncovered
///    operation denies the whole request: friction never unlocks what no grant covers.
/// 2. **Least friction among grants.** When several grants cover an operation, the
///    one owing the least friction applies (none < confirm < approval < deny).
/// 3. **Guards only add.** Every guard matching the operation (services, resources,
///    actions — `destructive` also matches `scope: all`; `arguments`: each named
///    argument has a listed value or one the decoder cannot know) raises its friction
///    to the guard's effect if that is stricter. A guard also matches an operation when
///    it matches a GraphQL field selected below it (`Operation::fields`: its resource,
///    the action `read`, its arguments). Guards apply to every role and no grant lifts
///    them.
/// 4. **Strictest operation wins.** The request owes the strictest friction of its
///    operations (`Evaluation::strictest`); for approval, the most approvers any
///    operation needs (`"approvals": 2` on a grant or guard: two different people).
pub fn evaluate(policy: &Policy, role: &Role, ops: &[Operation]) -> Evaluation {
    let mut owed = Vec::with_capacity(ops.len());
    let mut grants = GrantSet::default();
    for (i, op) in ops.iter().enumerate() {
        let mut best: Option<(usize, &Grant)> = None;
        for (j, g) in role
            .grants
            .iter()
            .enumerate()
            .filter(|(_, g)| covers(policy, g, op))
        {
            if best.is_none_or(|(_, b)| g.friction < b.friction) {
                best = Some((j, g));
            }
        }
        let Some((j, grant)) = best else {
            return Evaluation::NotCovered {
                op: i,
                reason: not_covered_reason(policy, role, op),
            };
        };
        grants.insert(j);
        let verdict = match grant.friction {
            Friction::None => "allowed",
            Friction::Confirm => "confirmation required",
            Friction::Approval => "approval required",
            Friction::Deny => "denied",
        };
        let mut o = Owed {
            friction: grant.friction,
            approvals: grant.approvals,
            rule: grant.rule.clone(),
            reason: format!(
                "{verdict} by grant {} of role `{}` for {} on `{}`",
                grant.rule, role.name, op.action, op.resource
            ),
        };
        for (guard, hit) in policy
            .guards
            .iter()
            .filter_map(|g| guard_hit(g, op).map(|h| (g, h)))
        {
            // A stricter guard takes over; an approval guard asking for more approvers
            // than the grant raises the count.
            if guard.effect > o.friction
                || (guard.effect == Friction::Approval
                    && o.friction == Friction::Approval
                    && guard.approvals > o.approvals)
            {
                o = Owed {
                    friction: guard.effect,
                    approvals: guard.approvals,
                    rule: guard.rule.clone(),
                    reason: format!("guard {}: {}", guard.rule, describe_guard(guard, op, hit)),
                };
            }
        }
        owed.push(o);
    }
    Evaluation::Covered { owed, grants }
}

/// Whether the role could ever be allowed `op` — some grant names it (records, scope and
/// friction short of `deny` aside) and no guard denies it outright. What an MCP list
/// answer shows the role.
pub fn may_reach(policy: &Policy, role: &Role, op: &Operation) -> bool {
    role.grants
        .iter()
        .any(|g| g.friction != Friction::Deny && names(policy, g, op))
        && !policy
            .guards
            .iter()
            .any(|g| g.effect == Friction::Deny && guard_matches(g, op))
}

/// Whether the role has any grant on the service named.
pub fn has_grant_on(policy: &Policy, role: &Role, service: &str) -> bool {
    role.grants
        .iter()
        .any(|g| service_name(policy, g.service) == service)
}

fn service_name(policy: &Policy, idx: usize) -> &str {
    policy
        .service(idx)
        .map(|s| s.name.as_str())
        .unwrap_or_default()
}

/// Whether a grant names the operation: its service, its action, a resource pattern that
/// matches. A statement that reads no relation (`Operation::reads_nothing`) is named by
/// every grant of its service that names `read`.
fn names(policy: &Policy, g: &Grant, op: &Operation) -> bool {
    service_name(policy, g.service) == op.service
        && g.actions.contains(op.action)
        && (op.reads_nothing() || g.resources.iter().any(|r| r.matches(&op.resource)))
}

/// Whether one grant covers one operation (rule 1).
fn covers(policy: &Policy, g: &Grant, op: &Operation) -> bool {
    if !names(policy, g, op) {
        return false;
    }
    if op.scope == Scope::All && !g.unbounded {
        return false;
    }
    if let Some(envs) = &g.environments {
        if !op.environments.iter().all(|e| envs.contains(e)) {
            return false;
        }
    }
    match &g.records {
        None => true,
        // Reading nothing touches no record.
        Some(_) if op.reads_nothing() => true,
        Some(allowed) => allowed.iter().all(|(key, values)| {
            let within = |vs: &Vec<String>| !vs.is_empty() && vs.iter().all(|v| values.contains(v));
            // The rows touched: an empty proven set is no proof (`id=eq.c-1&id=eq.c-9`
            // intersects to nothing, and an upstream that takes the last value of a
            // repeated parameter acts on c-9).
            op.records.get(key).is_some_and(within)
                // The post-image: a write that assigns the column must assign values the
                // grant allows; a value the decoder could not read is no proof. Column
                // names compare case-insensitively here (DreamFactory and MySQL match
                // them so): another spelling of the column assigns it too.
                && op
                    .sets
                    .iter()
                    .filter(|(column, _)| column.eq_ignore_ascii_case(key))
                    .all(|(_, set)| set.as_ref().is_some_and(within))
        }),
    }
}

fn not_covered_reason(policy: &Policy, role: &Role, op: &Operation) -> String {
    let what = format!(
        "{} on `{}` (service {})",
        op.action, op.resource, op.service
    );
    let near: Vec<&Grant> = role
        .grants
        .iter()
        .filter(|g| names(policy, g, op))
        .collect();
    if near.is_empty() {
        return format!("not covered: role `{}` grants no {what}", role.name);
    }
    if op.scope == Scope::All && near.iter().all(|g| !g.unbounded) {
        return format!(
            "not covered: {what} touches every row (scope all) and no grant of role `{}` is unbounded",
            role.name
        );
    }
    let keys: Vec<String> = near
        .iter()
        .filter_map(|g| g.records.as_ref())
        .flat_map(|r| r.keys().cloned())
        .collect();
    if let Some(col) = keys
        .iter()
        .find(|k| op.sets.keys().any(|c| c.eq_ignore_ascii_case(k)))
    {
        return format!(
            "not covered: role `{}` allows {what} only for proven records ({}); the request assigns `{col}` a value the grant does not allow, or one that cannot be known before it runs",
            role.name,
            keys.join(", ")
        );
    }
    format!(
        "not covered: role `{}` allows {what} only for proven records ({}); the request does not prove them",
        role.name,
        keys.join(", ")
    )
}

/// What a guard matched: the operation itself, or a field selected below it.
#[derive(Debug, Clone, Copy)]
enum Hit<'a> {
    Operation,
    Field(&'a Field),
}

fn guard_matches(g: &Guard, op: &Operation) -> bool {
    guard_hit(g, op).is_some()
}

/// Whether a guard matches the operation, or else one of the fields selected below it
/// (read by selecting them).
fn guard_hit<'a>(g: &Guard, op: &'a Operation) -> Option<Hit<'a>> {
    if !g.services.iter().any(|s| s.matches(&op.service))
        || !g
            .environments
            .as_ref()
            .is_none_or(|envs| op.environments.iter().any(|e| envs.contains(e)))
    {
        return None;
    }
    let resource = |r: &str| {
        g.resources
            .as_ref()
            .is_none_or(|rs| rs.iter().any(|p| p.matches_folded(r)))
    };
    if resource(&op.resource)
        && g.actions.as_ref().is_none_or(|a| a.matches(op))
        && arguments_match(g, &op.records, &op.unknown)
    {
        return Some(Hit::Operation);
    }
    if !g.actions.as_ref().is_none_or(|a| a.contains(Action::Read)) {
        return None;
    }
    op.fields
        .iter()
        .find(|f| resource(&f.resource) && arguments_match(g, &f.records, &f.unknown))
        .map(Hit::Field)
}

/// A guard's `arguments`: each named argument holds one of the listed values, or a value
/// the decoder cannot know (the argument itself, or the input object holding it, or a
/// field of it) — fail closed.
fn arguments_match(g: &Guard, records: &Records, unknown: &[String]) -> bool {
    g.arguments
        .as_ref()
        .is_none_or(|args| holds(args, records, unknown) != Holds::No)
}

fn describe_guard(g: &Guard, op: &Operation, hit: Hit) -> String {
    let mut what = match hit {
        Hit::Field(f) => format!("{} on `{}`", Action::Read, f.resource),
        Hit::Operation if op.scope == Scope::All => {
            format!("{} of every row of `{}`", op.action, op.resource)
        }
        Hit::Operation => format!("{} on `{}`", op.action, op.resource),
    };
    if let Some(args) = &g.arguments {
        let names: Vec<&str> = args.keys().map(String::as_str).collect();
        what.push_str(&format!(" ({})", names.join(", ")));
    }

    format!(
        "{} for every key",
        match g.effect {
            Friction::Deny => format!("denies {what}"),
            Friction::Approval => format!("requires approval for {what}"),
            Friction::Confirm => format!("requires confirmation for {what}"),
            Friction::None => what,
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{Action, Records};
    use crate::policy::{compile_json, Secrets};

    const BUNDLE: &str = r#"{
      "bundle": "t", "version": 1, "environment": "production",
      "services": [
        {"name": "rentals", "protocol": "rest", "match": {"path_prefix": "/rest"}, "rest": {"style": "postgrest"}},
        {"name": "railway", "protocol": "rest", "match": {"path_prefix": "/gql"}, "rest": {"style": "postgrest"}}
      ],
      "roles": [
        {"name": "domains", "allow": [
          {"service": "railway", "resources": ["customDomain*", "domains"], "actions": ["read", "create", "update", "delete"]}]},
        {"name": "writer", "allow": [
          {"service": "rentals", "resources": ["reservations"], "actions": ["read", "create", "update"], "records": {"tenant_id": ["acme"]}},
          {"service": "rentals", "resources": ["reservations"], "actions": ["delete"], "friction": "approval"},
          {"service": "rentals", "resources": ["reservations"], "actions": ["delete"], "friction": "confirm"},
          {"service": "rentals", "resources": ["vehicles"], "actions": ["*"], "unbounded": true},
          {"service": "rentals", "resources": ["payments"], "actions": ["read"], "friction": "deny"}]}
      ],
      "guards": [
        {"services": ["*"], "resources": ["*backup*", "volume*"], "actions": ["destructive"], "effect": "deny"},
        {"services": ["*"], "actions": ["drop", "admin"], "effect": "approval"}
      ]
    }"#;

    fn op(service: &str, action: Action, resource: &str) -> Operation {
        Operation::new(service, action, resource)
    }
    fn sets(k: &str, v: Option<&[&str]>) -> crate::operation::Sets {
        let mut s = crate::operation::Sets::new();
        s.insert(
            k.into(),
            v.map(|v| v.iter().map(|s| s.to_string()).collect()),
        );
        s
    }
    fn recs(k: &str, v: &[&str]) -> Records {
        let mut r = Records::new();
        r.insert(k.into(), v.iter().map(|s| s.to_string()).collect());
        r
    }

    /// Expected outcome: `Ok((friction, rule))` when covered, `Err(reason fragment)` when not.
    type Want = Result<(Friction, &'static str), &'static str>;

    #[test]
    fn precedence_table() {
        let p = compile_json(BUNDLE.as_bytes(), &Secrets::Unchecked).unwrap();
        let domains = &p.roles[0];
        let writer = &p.roles[1];
        // (role, operations, expected: Err(reason fragment) | Ok((friction, rule)))
        let cases: Vec<(&Role, Vec<Operation>, Want)> = vec![
            (
                domains,
                vec![op("railway", Action::Create, "customDomainCreate")],
                Ok((Friction::None, "roles[0].allow[0]")),
            ),
            // The incident: not on the menu, so not covered (scope before friction).
            (
                domains,
                vec![op("railway", Action::Delete, "volumeDelete")],
                Err("grants no delete on `volumeDelete`"),
            ),
            (
                domains,
                vec![
                    op("railway", Action::Read, "customDomains"),
                    op("railway", Action::Delete, "volumeDelete"),
                ],
                Err("volumeDelete"),
            ),
            (
                domains,
                vec![op("rentals", Action::Read, "customDomainCreate")],
                Err("grants no read"),
            ),
            // Least friction among covering grants.
            (
                writer,
                vec![op("rentals", Action::Delete, "reservations")],
                Ok((Friction::Confirm, "roles[1].allow[2]")),
            ),
            // Records: proven subset covers; unproven or outside does not.
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")
                    .with_records(recs("tenant_id", &["acme"]))],
                Ok((Friction::None, "roles[1].allow[0]")),
            ),
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")
                    .with_records(recs("tenant_id", &["acme", "globex"]))],
                Err("only for proven records (tenant_id)"),
            ),
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")],
                Err("only for proven records"),
            ),
            // The post-image: what a write assigns to a record column must be allowed too.
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")
                    .with_records(recs("tenant_id", &["acme"]))
                    .with_sets(sets("tenant_id", Some(&["acme"])))],
                Ok((Friction::None, "roles[1].allow[0]")),
            ),
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")
                    .with_records(recs("tenant_id", &["acme"]))
                    .with_sets(sets("tenant_id", Some(&["globex"])))],
                Err("assigns `tenant_id` a value the grant does not allow"),
            ),
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")
                    .with_records(recs("tenant_id", &["acme"]))
                    .with_sets(sets("tenant_id", None))],
                Err("cannot be known before it runs"),
            ),
            // Another spelling of the column assigns it too (DreamFactory, MySQL).
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")
                    .with_records(recs("tenant_id", &["acme"]))
                    .with_sets(sets("TENANT_ID", Some(&["globex"])))],
                Err("assigns `tenant_id` a value the grant does not allow"),
            ),
            (
                writer,
                vec![op("rentals", Action::Update, "reservations")
                    .with_records(recs("tenant_id", &["acme"]))
                    .with_sets(sets("customer", None))],
                Ok((Friction::None, "roles[1].allow[0]")),
            ),
            // A read of no relation: any read grant of the service, records or not.
            (
                writer,
                vec![op("rentals", Action::Read, crate::operation::NO_RELATION)],
                Ok((Friction::None, "roles[1].allow[0]")),
            ),
            (
                domains,
                vec![op("rentals", Action::Read, crate::operation::NO_RELATION)],
                Err("grants no read"),
            ),
            (
                writer,
                vec![op("rentals", Action::Delete, crate::operation::NO_RELATION)],
                Err("grants no delete"),
            ),
            // Scope all needs unbounded.
            (
                writer,
                vec![op("rentals", Action::Delete, "reservations").with_scope(Scope::All)],
                Err("scope all"),
            ),
            (
                writer,
                vec![op("rentals", Action::Update, "vehicles").with_scope(Scope::All)],
                Ok((Friction::None, "roles[1].allow[3]")),
            ),
            // Guards add friction and cannot be lifted.
            (
                writer,
                vec![op("rentals", Action::Drop, "vehicles")],
                Ok((Friction::Approval, "guards[1]")),
            ),
            (
                writer,
                vec![op("rentals", Action::Delete, "vehicles_backup")],
                Err("grants no delete"),
            ),
            (
                writer,
                vec![op("rentals", Action::Read, "payments")],
                Ok((Friction::Deny, "roles[1].allow[4]")),
            ),
            // Strictest operation wins.
            (
                writer,
                vec![
                    op("rentals", Action::Read, "vehicles"),
                    op("rentals", Action::Drop, "vehicles"),
                    op("rentals", Action::Read, "payments"),
                ],
                Ok((Friction::Deny, "roles[1].allow[4]")),
            ),
        ];
        for (role, ops, want) in cases {
            let e = evaluate(&p, role, &ops);
            match (want, &e) {
                (Ok((friction, rule)), Evaluation::Covered { .. }) => {
                    let (_, owed) = e.strictest().unwrap();
                    assert_eq!(
                        (owed.friction, owed.rule.as_str()),
                        (friction, rule),
                        "{ops:?}"
                    );
                }
                (Err(fragment), Evaluation::NotCovered { reason, .. }) => {
                    assert!(reason.contains(fragment), "{ops:?}: {reason}");
                }
                (want, got) => panic!("{ops:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn reports_the_grants_that_covered() {
        let p = compile_json(BUNDLE.as_bytes(), &Secrets::Unchecked).unwrap();
        let writer = &p.roles[1];
        let grants = |ops: &[Operation]| match evaluate(&p, writer, ops) {
            Evaluation::Covered { grants, .. } => (0..writer.grants.len())
                .filter(|&i| grants.contains(i))
                .collect(),
            Evaluation::NotCovered { .. } => Vec::new(),
        };
        // The least-friction grant only (allow[2], not allow[1]).
        assert_eq!(
            grants(&[op("rentals", Action::Delete, "reservations")]),
            [2]
        );
        // A guard took over (`guards[1]` decides), the grant still covered the operation.
        assert_eq!(grants(&[op("rentals", Action::Drop, "vehicles")]), [3]);
        // One per operation; the strictest decides, the others are reported too.
        assert_eq!(
            grants(&[
                op("rentals", Action::Read, "vehicles"),
                op("rentals", Action::Read, "payments"),
            ]),
            [3, 4]
        );
        // Not covered: none.
        let none: Vec<usize> = Vec::new();
        assert_eq!(
            grants(&[
                op("rentals", Action::Read, "vehicles"),
                op("rentals", Action::Delete, "vehicles_backup"),
            ]),
            none
        );
    }

    #[test]
    fn guards_match_whatever_the_case() {
        let p = compile_json(BUNDLE.as_bytes(), &Secrets::Unchecked).unwrap();
        let domains = &p.roles[0];
        let bundle = BUNDLE.replace(
            r#""customDomain*", "domains""#,
            r#""customDomain*", "volumeInstanceBackupDelete""#,
        );
        let p2 = compile_json(bundle.as_bytes(), &Secrets::Unchecked).unwrap();
        // The guard `*backup*` (lower case) denies `volumeInstanceBackupDelete`.
        let e = evaluate(
            &p2,
            &p2.roles[0],
            &[op("railway", Action::Delete, "volumeInstanceBackupDelete")],
        );
        assert_eq!(e.strictest().map(|(_, o)| o.friction), Some(Friction::Deny));
        // Grants stay exact: `customDomain*` does not grant `CUSTOMDOMAINCREATE`.
        let e = evaluate(
            &p,
            domains,
            &[op("railway", Action::Create, "CUSTOMDOMAINCREATE")],
        );
        assert!(matches!(e, Evaluation::NotCovered { .. }));
    }

    #[test]
    fn guard_matches_scope_all_as_destructive() {
        let p = compile_json(BUNDLE.as_bytes(), &Secrets::Unchecked).unwrap();
        let writer = &p.roles[1];
        let e = evaluate(
            &p,
            writer,
            &[op("rentals", Action::Update, "volume_sizes").with_scope(Scope::All)],
        );
        assert!(matches!(e, Evaluation::NotCovered { .. }));
        let bundle = BUNDLE.replace(
            r#""resources": ["vehicles"]"#,
            r#""resources": ["vehicles", "volume_sizes"]"#,
        );
        let p = compile_json(bundle.as_bytes(), &Secrets::Unchecked).unwrap();
        let e = evaluate(
            &p,
            &p.roles[1],
            &[op("rentals", Action::Update, "volume_sizes").with_scope(Scope::All)],
        );
        let (_, owed) = e.strictest().unwrap();
        assert_eq!(
            (owed.friction, owed.rule.as_str()),
            (Friction::Deny, "guards[0]")
        );
        assert!(
            owed.reason
                .contains("denies update of every row of `volume_sizes` for every key"),
            "{}",
            owed.reason
        );
    }

    #[test]
    fn guards_match_nested_fields_and_arguments() {
        use crate::operation::Field;
        let bundle = r#"{
          "bundle": "t", "version": 1, "environment": "production",
          "services": [{"name": "railway", "protocol": "graphql", "match": {"path_prefix": "/gql"}}],
          "roles": [{"name": "reader", "allow": [
            {"service": "railway", "resources": ["project", "variableUpsert", "Environment.config"], "actions": ["read", "update"]}]}],
          "guards": [
            {"services": ["railway"], "resources": ["*.variables"], "actions": ["read"], "effect": "deny"},
            {"services": ["railway"], "resources": ["Environment.config", "*.environments.*config"],
             "actions": ["read"], "arguments": {"decryptVariables": [true]}, "effect": "deny"},
            {"services": ["railway"], "resources": ["*.name"], "actions": ["update"], "effect": "deny"}
          ]
        }"#;
        let p = compile_json(bundle.as_bytes(), &Secrets::Unchecked).unwrap();
        let reader = &p.roles[0];
        let field = |resource: &str, records: Records, unknown: &[&str]| Field {
            resource: resource.into(),
            records,
            unknown: unknown.iter().map(|s| s.to_string()).collect(),
        };
        let project =
            |fields: Vec<Field>| vec![op("railway", Action::Read, "project").with_fields(fields)];
        let verdict = |ops: Vec<Operation>| {
            let e = evaluate(&p, reader, &ops);
            let (_, o) = e.strictest().unwrap();
            (o.friction, o.rule.clone(), o.reason.clone())
        };
        // Nothing secret below the root: allowed.
        let (f, _, _) = verdict(project(vec![
            field("Project.name", Records::new(), &[]),
            field(
                "Environment.config",
                recs("decryptVariables", &["false"]),
                &[],
            ),
        ]));
        assert_eq!(f, Friction::None);
        // A nested field a guard names, by type or by path, whatever the case.
        for resource in [
            "Environment.variables",
            "project.environments.edges.node.VARIABLES",
        ] {
            let (f, rule, reason) = verdict(project(vec![field(resource, Records::new(), &[])]));
            assert_eq!(
                (f, rule.as_str()),
                (Friction::Deny, "guards[0]"),
                "{resource}"
            );
            assert!(
                reason.contains(&format!("denies read on `{resource}`")),
                "{reason}"
            );
        }
        // The argument condition: the flag set, or unknown, matches; absent or false not.
        let cases: [(Records, &[&str], Friction); 5] = [
            (recs("decryptVariables", &["true"]), &[], Friction::Deny),
            (
                recs("decryptVariables", &["false", "true"]),
                &[],
                Friction::Deny,
            ),
            (Records::new(), &["decryptVariables"], Friction::Deny),
            (recs("decryptVariables", &["false"]), &[], Friction::None),
            (Records::new(), &[], Friction::None),
        ];
        for (records, unknown, want) in cases {
            for resource in ["Environment.config", "project.environments.config"] {
                let (f, _, reason) =
                    verdict(project(vec![field(resource, records.clone(), unknown)]));
                assert_eq!(f, want, "{resource} {records:?} {unknown:?}: {reason}");
                if want == Friction::Deny {
                    assert_eq!(
                        reason,
                        format!("guard guards[1]: denies read on `{resource}` (decryptVariables) for every key")
                    );
                }
            }
        }
        // On the root operation too.
        let (f, _, _) = verdict(vec![op("railway", Action::Read, "Environment.config")
            .with_unknown(vec!["decryptVariables".into()])]);
        assert_eq!(f, Friction::Deny);
        let (f, _, _) = verdict(vec![op("railway", Action::Read, "Environment.config")
            .with_records(recs("decryptVariables", &["false"]))]);
        assert_eq!(f, Friction::None);
        // Nested fields are reads: a guard on another action does not see them, and a
        // mutation's selection is read too.
        let (f, _, _) = verdict(vec![op("railway", Action::Update, "variableUpsert")
            .with_fields(vec![field("Variable.name", Records::new(), &[])])]);
        assert_eq!(f, Friction::None);
        let (f, rule, _) = verdict(vec![op("railway", Action::Update, "variableUpsert")
            .with_fields(vec![field("Project.variables", Records::new(), &[])])]);
        assert_eq!((f, rule.as_str()), (Friction::Deny, "guards[0]"));
    }

    #[test]
    fn guard_arguments_are_validated() {
        let bundle = BUNDLE.replace(
            r#""actions": ["drop", "admin"], "effect": "approval""#,
            r#""actions": ["drop", "admin"], "arguments": {"a": [], "b": [{"x": 1}], "c": [true, 1, "s"]}, "effect": "approval""#,
        );
        let e = compile_json(bundle.as_bytes(), &Secrets::Unchecked).unwrap_err();
        let text = format!("{e:?}");
        assert!(text.contains("guards[1].arguments.a"), "{text}");
        assert!(text.contains("guards[1].arguments.b[0]"), "{text}");
        assert!(!text.contains("arguments.c"), "{text}");
        let bundle = BUNDLE.replace(
            r#""actions": ["drop", "admin"], "effect": "approval""#,
            r#""actions": ["drop", "admin"], "arguments": {}, "effect": "approval""#,
        );
        let e = compile_json(bundle.as_bytes(), &Secrets::Unchecked).unwrap_err();
        assert!(format!("{e:?}").contains("guards[1].arguments"), "{e:?}");
    }
}
