//! Authentication: the scoped key a request carries, found by its SHA-256 and confirmed
//! in constant time; expiry and environment binding.

use super::*;

/// An authenticated caller.
pub(super) struct Caller<'p> {
    pub(super) key: &'p Key,
    pub(super) role_name: &'p str,
}

impl Engine {
    /// Finds the caller's key. Every presented credential header counts; two different
    /// credentials, or one header sent twice, are refused rather than picked from.
    pub(super) fn authenticate(
        &self,
        head: &RequestHead,
        now_ms: i64,
    ) -> Result<Caller<'_>, Refusal> {
        let mut presented: Option<&[u8]> = None;
        for name in &self.policy.credential_headers {
            let value = match head.header(name) {
                HeaderValue::Absent => continue,
                HeaderValue::Repeated => {
                    return Err(Refusal::AmbiguousCredential(format!(
                        "repeated {name} header"
                    )))
                }
                HeaderValue::One(v) => v,
            };
            let token = if name == "authorization" {
                match bearer_token(value) {
                    Some(t) => t,
                    None => continue, // another scheme: not a scopegate key (and stripped)
                }
            } else {
                trim(value)
            };
            if token.is_empty() {
                return Err(Refusal::AmbiguousCredential(format!("empty {name}")));
            }
            match presented {
                Some(p) if p != token => {
                    return Err(Refusal::AmbiguousCredential(
                        "two different credentials presented".into(),
                    ))
                }
                _ => presented = Some(token),
            }
        }
        let token = presented.ok_or(Refusal::NoCredential)?;
        let digest = sha256(token);
        let key = self
            .policy
            .key_by_digest(&digest)
            .ok_or_else(|| Refusal::UnknownKey {
                fingerprint: format!("sha256:{}", hex(digest.get(..4).unwrap_or_default())),
            })?;
        if key.expires.is_some_and(|e| now_ms >= e) {
            return Err(Refusal::ExpiredKey(key.id.clone()));
        }
        if let Some(envs) = &key.environments {
            if !envs.contains(&self.policy.environment) {
                return Err(Refusal::WrongEnvironment {
                    key: key.id.clone(),
                    environment: self.policy.environment.clone(),
                });
            }
        }
        let role = self
            .policy
            .role(key.role)
            .ok_or_else(|| Refusal::BrokenKey(key.id.clone()))?;
        Ok(Caller {
            key,
            role_name: &role.name,
        })
    }
}

pub(super) fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// `Bearer <token>` (scheme case-insensitive) → token.
pub(super) fn bearer_token(v: &[u8]) -> Option<&[u8]> {
    let v = trim(v);
    let scheme = v.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(trim(v.get(7..)?))
}
