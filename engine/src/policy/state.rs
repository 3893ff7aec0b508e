//! The `state` section: where approvals and budgets are settled.

use super::Errs;
use crate::bundle::{StateConfig, StateStoreName};
use crate::fleet::EtcdStore;

/// The etcd store, or `None` for the local one (or a section with problems, reported).
pub(super) fn compile(s: &StateConfig, errs: &mut Errs) -> Option<EtcdStore> {
    match s.store {
        StateStoreName::Local => {
            for (field, set) in [
                ("cluster", s.cluster.is_some()),
                ("authority", s.authority.is_some()),
                ("prefix", s.prefix.is_some()),
                ("timeout_ms", s.timeout_ms.is_some()),
            ] {
                if set {
                    errs.push(format!("state.{field}"), "only for `\"store\": \"etcd\"`");
                }
            }
            None
        }
        StateStoreName::Etcd => {
            let cluster = s.cluster.clone().unwrap_or_default();
            if !usable("cluster", &cluster, errs) {
                return None;
            }
            let authority = s.authority.clone().unwrap_or_else(|| cluster.clone());
            let prefix = s.prefix.clone().unwrap_or_else(|| "scopegate/".to_string());
            let timeout_ms = s.timeout_ms.unwrap_or(1000);
            if !(10..=10_000).contains(&timeout_ms) {
                errs.push("state.timeout_ms", "must be between 10 and 10000");
            }
            let ok = usable("authority", &authority, errs) & usable("prefix", &prefix, errs);
            (ok && (10..=10_000).contains(&timeout_ms)).then_some(EtcdStore {
                cluster,
                authority,
                prefix,
                timeout_ms,
            })
        }
    }
}

/// A non-empty value of at most 128 visible ASCII characters (no spaces).
fn usable(field: &str, v: &str, errs: &mut Errs) -> bool {
    let ok = !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        errs.push(
            format!("state.{field}"),
            "must be 1 to 128 visible ASCII characters (required for etcd)",
        );
    }
    ok
}
