//! Authentication: the scoped key a request carries, found by its SHA-256 and confirmed
//! in constant time; expiry and environment binding.

use super::*;

/// An authenticated caller: a scoped key, or a verified token's holder.
pub(super) struct Caller<'p> {
    /// The key's id, or the identity's (`<entry>/<holder>`).
    pub(super) id: String,
    pub(super) role: usize,
    pub(super) role_name: &'p str,
    /// The key's destructive budget (its own or its role's).
    pub(super) budget: Option<crate::policy::Budget>,
}

/// A verified token's payload (`jwt_authn`'s, from dynamic metadata), as the filter read
/// it; tools that decide without Envoy pass `None`.
pub type Verified = serde_json::Map<String, serde_json::Value>;

/// A bearer value shaped like a JWT (three base64url segments): with `identities` in the
/// bundle it is a token for `jwt_authn`, never a scopegate key.
fn jwt_shaped(t: &[u8]) -> bool {
    let parts: Vec<&[u8]> = t.split(|b| *b == b'.').collect();
    parts.len() == 3
        && parts.iter().take(2).all(|p| {
            !p.is_empty()
                && p.iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        })
}

impl Engine {
    /// Finds the caller: a scoped key (every presented credential header counts; two
    /// different credentials, or one header sent twice, are refused rather than picked
    /// from), or — with `identities` — the holder of the token `jwt_authn` verified.
    pub(super) fn authenticate(
        &self,
        head: &RequestHead,
        now_ms: i64,
        verified: Option<&Verified>,
    ) -> Result<Caller<'_>, Refusal> {
        let identities = self.policy.identities.as_ref();
        let mut presented: Option<&[u8]> = None;
        let mut token = false;
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
            let t = if name == "authorization" {
                match bearer_token(value) {
                    Some(t) => t,
                    None => continue, // another scheme: not a scopegate key (and stripped)
                }
            } else {
                trim(value)
            };
            if t.is_empty() {
                return Err(Refusal::AmbiguousCredential(format!("empty {name}")));
            }
            if identities.is_some() && name == "authorization" && jwt_shaped(t) {
                token = true;
                continue;
            }
            match presented {
                Some(p) if p != t => {
                    return Err(Refusal::AmbiguousCredential(
                        "two different credentials presented".into(),
                    ))
                }
                _ => presented = Some(t),
            }
        }
        if let (Some(ids), Some(claims)) = (identities, verified) {
            if presented.is_some() {
                return Err(Refusal::AmbiguousCredential(
                    "both a scopegate key and a verified token presented".into(),
                ));
            }
            return self.identify(ids, claims, now_ms);
        }
        if token {
            // A token jwt_authn did not verify (or no jwt_authn in front): nothing it
            // says is read.
            return Err(Refusal::UnverifiedToken);
        }
        let t = presented.ok_or(Refusal::NoCredential)?;
        let digest = sha256(t);
        let key = self
            .policy
            .key_by_digest(&digest)
            .ok_or_else(|| Refusal::UnknownKey {
                fingerprint: match &self.policy.audit.fingerprint_key {
                    Some(k) => format!("hmac:{}", hex(k.mac(t).get(..4).unwrap_or_default())),
                    None => format!("sha256:{}", hex(digest.get(..4).unwrap_or_default())),
                },
            })?;
        if key.expires.is_some_and(|e| now_ms >= e) {
            return Err(Refusal::ExpiredKey(key.id.clone()));
        }
        self.in_environment(&key.id, key.environments.as_deref())?;
        let role = self
            .policy
            .role(key.role)
            .ok_or_else(|| Refusal::BrokenKey(key.id.clone()))?;
        Ok(Caller {
            id: key.id.clone(),
            role: key.role,
            role_name: &role.name,
            budget: key.budget,
        })
    }

    fn identify(
        &self,
        ids: &crate::policy::Identities,
        claims: &Verified,
        now_ms: i64,
    ) -> Result<Caller<'_>, Refusal> {
        let holder = ids.find(claims, now_ms).map_err(Refusal::UnknownIdentity)?;
        self.in_environment(&holder.id, holder.entry.environments.as_deref())?;
        let role = self
            .policy
            .role(holder.entry.role)
            .ok_or_else(|| Refusal::BrokenKey(holder.id.clone()))?;
        Ok(Caller {
            role: holder.entry.role,
            role_name: &role.name,
            budget: holder.entry.budget,
            id: holder.id,
        })
    }

    fn in_environment(&self, id: &str, envs: Option<&[String]>) -> Result<(), Refusal> {
        match envs {
            Some(envs) if !envs.contains(&self.policy.environment) => {
                Err(Refusal::WrongEnvironment {
                    key: id.to_string(),
                    environment: self.policy.environment.clone(),
                })
            }
            _ => Ok(()),
        }
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
