//! What the bundle reads from the Wasm VM's environment: the approval key (when a rule
//! asks for approval) and the instance's environment name.

use super::*;

pub(super) fn compile(
    b: &Bundle,
    roles: &[Role],
    guards: &[Guard],
    secrets: &Secrets,
    errs: &mut Errs,
) -> (Option<ApprovalKey>, String) {
    // environment and refuses to start without a good one.
    let uses_approval = roles
        .iter()
        .flat_map(|r: &Role| &r.grants)
        .any(|g| g.friction == Friction::Approval)
        || guards.iter().any(|g| g.effect == Friction::Approval);
    // With signed approvals (`approvals`) the shared key is neither needed nor read.
    let uses_approval = uses_approval && b.approvals.is_none();
    let approval_key = match secrets {
        Secrets::Env(env) if uses_approval => match env(APPROVAL_KEY_ENV) {
            None => {
                errs.push("approval", format!("a rule requires approval but `{APPROVAL_KEY_ENV}` is not set in the Wasm VM (vm_config.environment_variables)"));
                None
            }
            Some(v) => match ApprovalKey::new(v.as_bytes()) {
                Ok(k) => Some(k),
                Err(e) => {
                    errs.push("approval", format!("`{APPROVAL_KEY_ENV}`: {e}"));
                    None
                }
            },
        },
        _ => None,
    };
    // The instance's environment: the bundle's, unless the VM says otherwise.
    let mut environment = b.environment.clone();
    if let Secrets::Env(env) = secrets {
        if let Some(e) = env(ENVIRONMENT_ENV) {
            if is_name(&e) {
                environment = e;
            } else {
                errs.push(
                    "environment",
                    format!("`{ENVIRONMENT_ENV}` must be a name ([A-Za-z0-9._:-])"),
                );
            }
        }
    }
    (approval_key, environment)
}
