//! The `keys` section: key ids, their SHA-256, roles, environments, expiry and budgets.

use super::*;

pub(super) fn compile(
    b: &Bundle,
    role_names: &HashMap<&str, usize>,
    errs: &mut Errs,
) -> (Vec<Key>, HashMap<[u8; 32], usize>) {
    let mut keys = Vec::new();
    let mut key_index = HashMap::new();
    let mut key_ids = HashSet::new();
    for (i, k) in b.keys.iter().enumerate() {
        let at = format!("keys[{i}]");
        if !is_name(&k.id) {
            errs.push(
                format!("{at}.id"),
                "must be a non-empty name ([A-Za-z0-9._:-])",
            );
        }
        if !key_ids.insert(k.id.as_str()) {
            errs.push(format!("{at}.id"), format!("duplicate key id `{}`", k.id));
        }
        let sha = hex32(&k.sha256.to_ascii_lowercase());
        if sha.is_none() {
            errs.push(
                format!("{at}.sha256"),
                "must be 64 hex digits (sha256 of the key)",
            );
        }
        let role = match role_names.get(k.role.as_str()) {
            Some(r) => *r,
            None => {
                errs.push(format!("{at}.role"), format!("unknown role `{}`", k.role));
                usize::MAX
            }
        };
        if let Some(envs) = &k.environments {
            if envs.is_empty() {
                errs.push(
                    format!("{at}.environments"),
                    "must not be empty (omit it for every environment)",
                );
            }
            for (j, e) in envs.iter().enumerate() {
                if !is_name(e) {
                    errs.push(
                        format!("{at}.environments[{j}]"),
                        "must be a non-empty name",
                    );
                }
            }
        }
        let expires = match &k.expires {
            None => None,
            Some(s) => match parse_rfc3339(s) {
                Some(ms) => Some(ms),
                None => {
                    errs.push(
                        format!("{at}.expires"),
                        format!("`{s}` is not an RFC 3339 timestamp"),
                    );
                    None
                }
            },
        };
        if let Some(sha) = sha {
            if key_index.insert(sha, keys.len()).is_some() {
                errs.push(format!("{at}.sha256"), "another key has the same sha256");
            }
            let budget = match (&k.budget, b.roles.get(role).and_then(|r| r.budget.as_ref())) {
                (Some(own), _) => budget(&format!("{at}.budget"), own, errs),
                (None, Some(of_role)) => budget(&format!("roles[{role}].budget"), of_role, errs),
                (None, None) => None,
            };
            keys.push(Key {
                id: k.id.clone(),
                sha256: sha,
                role,
                environments: k.environments.clone(),
                expires,
                budget,
            });
        }
    }
    (keys, key_index)
}

pub(super) fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = s.get(i * 2..i * 2 + 2)?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A budget: `destructive` > 0 per a window of `<n>s|m|h|d` (at most 31 days).
pub(super) fn budget(at: &str, b: &bundle::Budget, errs: &mut Errs) -> Option<Budget> {
    let window_ms = crate::time::parse_span_secs(&b.per).map(|s| s.saturating_mul(1000));
    match window_ms {
        Some(w) if w > 0 && w <= 31 * 86_400_000 && b.destructive > 0 => Some(Budget {
            limit: b.destructive,
            window_ms: w,
        }),
        _ => {
            errs.push(
                at.to_string(),
                "`destructive` must be positive and `per` a window such as \"30m\", \"1h\" or \"1d\" (at most 31d)",
            );
            None
        }
    }
}
