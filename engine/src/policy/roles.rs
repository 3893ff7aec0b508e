//! The `roles` section: each role's grants (service, resources, actions, records, friction).

use super::*;

pub(super) fn compile<'b>(
    b: &'b Bundle,
    services: &[Service],
    service_names: &HashMap<&str, usize>,
    errs: &mut Errs,
) -> (Vec<Role>, HashMap<&'b str, usize>) {
    let mut roles = Vec::new();
    let mut role_names: HashMap<&str, usize> = HashMap::new();
    for (i, r) in b.roles.iter().enumerate() {
        let at = format!("roles[{i}]");
        if !is_name(&r.name) {
            errs.push(
                format!("{at}.name"),
                "must be a non-empty name ([A-Za-z0-9._:-])",
            );
        }
        if role_names.insert(&r.name, i).is_some() {
            errs.push(
                format!("{at}.name"),
                format!("duplicate role name `{}`", r.name),
            );
        }
        let mut grants = Vec::new();
        for (j, g) in r.allow.iter().enumerate() {
            let here = format!("{at}.allow[{j}]");
            let service = match service_names.get(g.service.as_str()) {
                Some(idx) => *idx,
                None => {
                    errs.push(
                        format!("{here}.service"),
                        format!("unknown service `{}`", g.service),
                    );
                    usize::MAX
                }
            };
            let resources = errs.globs(&format!("{here}.resources"), &g.resources);
            let actions = errs.actions(&format!("{here}.actions"), &g.actions);
            let records = g.records.as_ref().map(|rec| {
                if rec.is_empty() {
                    errs.push(
                        format!("{here}.records"),
                        "must constrain at least one key (omit it otherwise)",
                    );
                }
                record_values(&format!("{here}.records"), rec, errs)
            });
            if g.unbounded == Some(true) && records.is_some() {
                errs.push(
                    format!("{here}.unbounded"),
                    "an unbounded grant cannot also constrain records",
                );
            }
            let friction = g.friction.unwrap_or(Friction::None);
            let approvals = approvals(&here, g.approvals, friction, errs);
            grants.push(Grant {
                service,
                resources,
                actions,
                friction,
                unbounded: g.unbounded.unwrap_or(false),
                records,
                environments: env_names(&format!("{here}.environments"), &g.environments, errs),
                approvals,
                rule: here,
            });
        }
        plumbing_grants(services, &mut grants);
        roles.push(Role {
            name: r.name.clone(),
            grants,
            shadow: r.mode == Some(bundle::Mode::Shadow),
        });
    }
    (roles, role_names)
}

fn record_values(
    at: &str,
    records: &std::collections::BTreeMap<String, Vec<Value>>,
    errs: &mut Errs,
) -> Records {
    let mut out = Records::new();
    for (col, values) in records {
        if col.is_empty() {
            errs.push(at, "empty record key name");
        }
        if values.is_empty() {
            errs.push(format!("{at}.{col}"), "must list at least one value");
        }
        let mut vs = Vec::new();
        for (i, v) in values.iter().enumerate() {
            match v {
                Value::String(s) => vs.push(s.clone()),
                Value::Number(n) => vs.push(n.to_string()),
                _ => errs.push(
                    format!("{at}.{col}[{i}]"),
                    "record values are strings or numbers",
                ),
            }
        }
        vs.sort();
        vs.dedup();
        out.insert(col.clone(), vs);
    }
    out
}

/// MCP protocol plumbing (`initialize`, `ping`, `*/list`, …) is read on `mcp:<method>`;
/// every role with a grant on an MCP service gets it there, after its own grants, unless
/// the service sets `"plumbing": false`. Guards still apply.
fn plumbing_grants(services: &[Service], grants: &mut Vec<Grant>) {
    let mut read = ActionSet::default();
    read.add_word("read");
    let mut extra = Vec::new();
    for g in grants.iter() {
        let Some(s) = services.get(g.service) else {
            continue;
        };
        let Decoder::Mcp(d) = &s.decoder else {
            continue;
        };
        if d.plumbing && !extra.iter().any(|e: &Grant| e.service == g.service) {
            extra.push(Grant {
                service: g.service,
                resources: PLUMBING.iter().map(|p| Glob::new(p)).collect(),
                actions: read,
                friction: Friction::None,
                unbounded: false,
                records: None,
                environments: None,
                approvals: 1,
                rule: format!("mcp plumbing of service `{}`", s.name),
            });
        }
    }
    grants.extend(extra);
}
