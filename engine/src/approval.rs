//! Approval tokens: a human's out-of-band "yes" to one exact request.
//!
//! `v1.<payload>.<mac>`, both parts base64url without padding; the payload is the JSON
//! `{"v":1,"digest","key","exp","approver","nonce"}` and the MAC is HMAC-SHA256 over
//! `v1.<payload>` with the approval key, which only approvers and the filter's VM hold.
//! The filter checks the MAC (in constant time), that the digest is this request's, that
//! the key is the caller's, the expiry, and — in proxy-wasm shared data — that the nonce
//! was never used. No part of a token is secret; forging one needs the approval key.

use crate::digest::sha256;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The approval key must be at least this long (bytes).
pub const MIN_KEY_BYTES: usize = 32;
/// Longest lifetime a token may have.
pub const MAX_TTL_SECS: i64 = 24 * 3600;
/// The VM environment variable holding the approval key.
pub const APPROVAL_KEY_ENV: &str = "SCOPEGATE_APPROVAL_KEY";

/// The shared secret of approvers and the filter. Never printed.
#[derive(Clone)]
pub struct ApprovalKey(Vec<u8>);

impl fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApprovalKey(<redacted>)")
    }
}

impl ApprovalKey {
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the approval key must be at least {MIN_KEY_BYTES} bytes (it has {})",
                trimmed.len()
            ));
        }
        Ok(ApprovalKey(trimmed.to_vec()))
    }

    fn mac(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, message)
    }
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let hashed;
    let key = if key.len() > 64 {
        hashed = sha256(key);
        hashed.as_slice()
    } else {
        key
    };
    let mut block = [0u8; 64];
    for (b, k) in block.iter_mut().zip(key) {
        *b = *k;
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub v: u8,
    pub digest: String,
    pub key: String,
    /// Unix seconds.
    pub exp: i64,
    pub approver: String,
    pub nonce: String,
}

/// Signs a grant into a token.
pub fn issue(key: &ApprovalKey, grant: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(grant).unwrap_or_default());
    let signed = format!("v1.{payload}");
    let mac = URL_SAFE_NO_PAD.encode(key.mac(signed.as_bytes()));
    format!("{signed}.{mac}")
}

/// Checks a token for this request; the grant, or why it is refused. Single use is the
/// caller's to check (the nonce), since it needs state.
pub fn verify(
    key: &ApprovalKey,
    token: &str,
    digest: &str,
    key_id: &str,
    now_ms: i64,
) -> Result<Claims, String> {
    let mut parts = token.trim().split('.');
    let (Some("v1"), Some(payload), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a v1 approval token".into());
    };
    let mac = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| "malformed signature".to_string())?;
    let want = key.mac(format!("v1.{payload}").as_bytes());
    if !bool::from(want.as_slice().ct_eq(&mac)) {
        return Err("bad signature (not issued with this gateway's approval key)".into());
    }
    let grant: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or("malformed payload")?;
    if grant.v != 1 {
        return Err(format!("unknown token version {}", grant.v));
    }
    if grant.digest != digest {
        return Err(format!(
            "issued for another request ({}), not this one ({digest})",
            grant.digest
        ));
    }
    if grant.key != key_id {
        return Err(format!("issued for key `{}`, not `{key_id}`", grant.key));
    }
    if grant.exp.saturating_mul(1000) <= now_ms {
        return Err(format!("expired at {}", grant.exp));
    }
    if grant.exp.saturating_mul(1000) > now_ms.saturating_add(MAX_TTL_SECS * 1000) {
        return Err("expires too far in the future".into());
    }
    if !valid_label(&grant.approver) || !valid_label(&grant.nonce) {
        return Err("malformed approver or nonce".into());
    }
    Ok(grant)
}

/// An approver name or nonce: 1–64 printable ASCII characters, no separators.
pub fn valid_label(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'"' | b'\\'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hex;

    #[test]
    fn hmac_rfc4231() {
        // Test cases 1, 2 and 6 of RFC 4231.
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, msg, want) in cases {
            assert_eq!(hex(&hmac_sha256(key, msg)), want);
        }
    }

    fn grant(exp: i64) -> Claims {
        Claims {
            v: 1,
            digest: "sha256:aa".into(),
            key: "writer-1".into(),
            exp,
            approver: "alice".into(),
            nonce: "n-1".into(),
        }
    }

    #[test]
    fn tokens_bind_digest_key_expiry_and_the_approval_key() {
        let key = ApprovalKey::new(&[7u8; 32]).unwrap();
        let now = 1_000_000_000;
        let t = issue(&key, &grant(now / 1000 + 60));
        assert_eq!(
            verify(&key, &t, "sha256:aa", "writer-1", now)
                .unwrap()
                .approver,
            "alice"
        );
        let cases = [
            (
                verify(&key, &t, "sha256:bb", "writer-1", now),
                "another request",
            ),
            (
                verify(&key, &t, "sha256:aa", "reader-1", now),
                "issued for key",
            ),
            (
                verify(&key, &t, "sha256:aa", "writer-1", now + 61_000),
                "expired",
            ),
            (
                verify(
                    &ApprovalKey::new(&[8u8; 32]).unwrap(),
                    &t,
                    "sha256:aa",
                    "writer-1",
                    now,
                ),
                "bad signature",
            ),
            (
                verify(&key, &t.replace("v1.", "v2."), "sha256:aa", "writer-1", now),
                "not a v1",
            ),
            (
                verify(&key, &format!("{t}x"), "sha256:aa", "writer-1", now),
                "signature",
            ),
            (
                verify(
                    &key,
                    &issue(&key, &grant(now / 1000 + MAX_TTL_SECS + 10)),
                    "sha256:aa",
                    "writer-1",
                    now,
                ),
                "too far",
            ),
        ];
        for (got, why) in cases {
            assert!(
                got.as_ref().is_err_and(|e| e.contains(why)),
                "{why}: {got:?}"
            );
        }
        // A payload edited to another digest fails the signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                digest: "sha256:bb".into(),
                ..grant(now / 1000 + 60)
            })
            .unwrap(),
        );
        parts[1] = &other;
        assert!(verify(&key, &parts.join("."), "sha256:bb", "writer-1", now)
            .unwrap_err()
            .contains("bad signature"));
        assert!(ApprovalKey::new(b"short").is_err());
        assert_eq!(format!("{key:?}"), "ApprovalKey(<redacted>)");
    }
}
