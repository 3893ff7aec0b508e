//! The `guards` section: rules for every role that only add friction.

use super::*;

pub(super) fn compile(
    b: &Bundle,
    service_names: &HashMap<&str, usize>,
    errs: &mut Errs,
) -> Vec<Guard> {
    let mut guards = Vec::new();
    for (i, g) in b.guards.iter().enumerate() {
        let at = format!("guards[{i}]");
        let services_globs = errs.globs(&format!("{at}.services"), &g.services);
        for (j, (name, glob)) in g.services.iter().zip(&services_globs).enumerate() {
            if !glob.is_wildcard() && !service_names.contains_key(name.as_str()) {
                errs.push(
                    format!("{at}.services[{j}]"),
                    format!("unknown service `{name}`"),
                );
            }
        }
        // Deny-side names match whatever the case: a guard on `*backup*` catches
        // `volumeInstanceBackupDelete` (grants stay exact).
        let resources = g.resources.as_ref().map(|r| {
            errs.globs(&format!("{at}.resources"), r);
            r.iter().map(|p| Glob::folded(p)).collect()
        });
        let actions = g
            .actions
            .as_ref()
            .map(|a| errs.actions(&format!("{at}.actions"), a));
        if g.effect == Friction::None {
            errs.push(
                format!("{at}.effect"),
                "a guard's effect is confirm, approval or deny",
            );
        }
        let approvals = approvals(&at, g.approvals, g.effect, errs);
        let arguments = g
            .arguments
            .as_ref()
            .map(|args| argument_values(&format!("{at}.arguments"), args, errs));
        guards.push(Guard {
            services: services_globs,
            resources,
            actions,
            effect: g.effect,
            environments: env_names(&format!("{at}.environments"), &g.environments, errs),
            approvals,
            arguments,
            rule: at,
        });
    }
    guards
}
