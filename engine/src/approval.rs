//! Approval tokens: a human's out-of-band "yes" to one exact request.
//!
//! **Signed approvals** (a bundle with `approvals.approvers`): every approver has an
//! Ed25519 key pair; the bundle lists the public keys, the approver keeps the private one.
//! The gateway signs each challenge it issues (`c1.<payload>.<sig>`, with the key in
//! `SCOPEGATE_CHALLENGE_KEY`, whose public half the bundle lists as
//! `approvals.challenge_key`): what it decoded — the digest, the key, the environment,
//! the approvals needed — and until when it may be approved. A token
//! (`v2.<payload>.<sig>`) is one approver's signature over that signed challenge, the
//! approval time, the token's expiry and a nonce. The filter holds no key that can mint
//! an approval; one person cannot sign as two; a challenge cannot be altered on its way to
//! a human, nor approved after it expired.
//!
//! **Shared-key tokens** (legacy, lint-warned: a bundle without `approvals`):
//! `v1.<payload>.<mac>`, both parts base64url without padding; the payload is the JSON
//! `{"v":1,"digest","key","exp","approver","nonce"}` and the MAC is HMAC-SHA256 over
//! `v1.<payload>` with the approval key, which only approvers and the filter's VM hold.
//! The filter checks the MAC (in constant time), that the digest is this request's, that
//! the key is the caller's, the expiry, and — in proxy-wasm shared data — that the nonce
//! was never used. No part of a token is secret; forging one needs the approval key.

use crate::digest::sha256;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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

/// The VM environment variable holding the gateway's challenge-signing key (the base64
/// of a 32-byte Ed25519 seed).
pub const CHALLENGE_KEY_ENV: &str = "SCOPEGATE_CHALLENGE_KEY";
/// How far an approval's time may be ahead of the gateway's clock.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// An Ed25519 public key from its base64 (32 bytes).
pub fn public_key(b64: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    let bytes: [u8; 32] = STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("not the base64 of a 32-byte Ed25519 public key")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".into())
}

/// A private Ed25519 key (an approver's, or the gateway's challenge key). Never printed.
#[derive(Clone)]
pub struct PrivateKey(ed25519_dalek::SigningKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    /// From the base64 of a 32-byte seed (surrounding whitespace ignored).
    pub fn from_base64(b64: &str) -> Result<Self, String> {
        let seed: [u8; 32] = STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("not the base64 of a 32-byte Ed25519 seed")?;
        Ok(Self::from_seed(seed))
    }
    pub fn from_seed(seed: [u8; 32]) -> Self {
        PrivateKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }
    /// The seed as base64 (what a key file holds).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }
    pub fn public(&self) -> ed25519_dalek::VerifyingKey {
        self.0.verifying_key()
    }
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.public().to_bytes())
    }
    /// `<prefix>.<payload>.<signature>` over `<prefix>.<payload>`.
    fn seal(&self, prefix: &str, payload: &impl Serialize) -> String {
        use ed25519_dalek::Signer;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap_or_default());
        let signed = format!("{prefix}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(self.0.sign(signed.as_bytes()).to_bytes());
        format!("{signed}.{sig}")
    }
}

/// Opens `<prefix>.<payload>.<signature>` signed by `key`: the payload's JSON.
fn unseal<T: serde::de::DeserializeOwned>(
    prefix: &str,
    sealed: &str,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<T, String> {
    let (payload, sig) = open_parts(prefix, sealed)?;
    let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|_| "malformed signature")?;
    key.verify_strict(format!("{prefix}.{payload}").as_bytes(), &sig)
        .map_err(|_| "bad signature".to_string())?;
    URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or_else(|| "malformed payload".to_string())
}

/// The payload (still encoded) and the signature bytes of `<prefix>.<payload>.<sig>`.
fn open_parts<'a>(prefix: &str, sealed: &'a str) -> Result<(&'a str, Vec<u8>), String> {
    let mut parts = sealed.trim().split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(payload), Some(sig), None) if p == prefix => Ok((
            payload,
            URL_SAFE_NO_PAD
                .decode(sig)
                .map_err(|_| "malformed signature".to_string())?,
        )),
        _ => Err(format!("not a `{prefix}` value")),
    }
}

/// What a challenge says: signed by the gateway that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeClaims {
    pub v: u8,
    pub digest: String,
    pub key: String,
    pub environment: String,
    /// Approvers needed (1 or 2).
    pub approvals: u8,
    /// Unix seconds: nothing approves the challenge after this.
    pub exp: i64,
    /// What the request does, as the approver is shown it (the digest binds them).
    pub operations: Vec<serde_json::Value>,
    /// `sha256:<hex>` of the request as sent (the challenge's `request`: method, target,
    /// body), so what an approver is shown cannot be altered either.
    pub shown: String,
    /// The grant or guard that asks for the approval (`roles[1].allow[2]`) and why, as the
    /// gateway decided: an approver reads them signed, not as the agent relayed them.
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub reason: String,
}

/// The request as the approver is shown it: method, target and body as sent (the body as
/// text, cut at `SHOWN_BODY_BYTES` with the cut said), and the hash a signed challenge
/// binds it with.
pub fn shown_request(method: &str, target: &str, body: &[u8]) -> (serde_json::Value, String) {
    let cut = body.len() > SHOWN_BODY_BYTES;
    let text = String::from_utf8_lossy(body.get(..SHOWN_BODY_BYTES).unwrap_or(body)).into_owned();
    let mut v = serde_json::json!({"method": method, "target": target, "body": text});
    if cut {
        if let Some(o) = v.as_object_mut() {
            o.insert("body_bytes".into(), serde_json::json!(body.len()));
        }
    }
    let hash = shown_hash(&v);
    (v, hash)
}

/// The hash of a shown request (canonical JSON).
pub fn shown_hash(shown: &serde_json::Value) -> String {
    format!(
        "sha256:{}",
        crate::digest::hex(&sha256(crate::canonical::json(shown).as_bytes()))
    )
}

/// How much of a body a challenge shows (the digest binds all of it).
pub const SHOWN_BODY_BYTES: usize = 16 * 1024;

pub fn sign_challenge(key: &PrivateKey, c: &ChallengeClaims) -> String {
    key.seal("c1", c)
}

/// The claims of a challenge this gateway (its public key) signed.
pub fn open_challenge(
    gateway: &ed25519_dalek::VerifyingKey,
    signed: &str,
) -> Result<ChallengeClaims, String> {
    let c: ChallengeClaims =
        unseal("c1", signed, gateway).map_err(|e| format!("challenge: {e}"))?;
    if c.v != 1 {
        return Err(format!("challenge: unknown version {}", c.v));
    }
    Ok(c)
}

/// The hex part of a request digest (`sha256:<hex>` → `<hex>`): how an inbox names it.
pub fn digest_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// A challenge as a human is shown it, checked: the gateway signed it, it has not
/// expired, and the request shown with it is the one the gateway signed. What
/// `scopegate approve` and the approval inbox both show and sign.
#[derive(Debug, Clone)]
pub struct Presented {
    /// The signed challenge (`c1.…`), what approvers sign.
    pub signed: String,
    pub claims: ChallengeClaims,
    /// The request as sent (`method`, `target`, `body`, and `body_bytes` when cut).
    pub request: serde_json::Value,
}

/// The decision in a gateway's answer: a 428 body, or an MCP JSON-RPC error (or a batch
/// of them) carrying it in `error.data`. A batch must carry one challenge.
pub fn challenge_in(answer: &serde_json::Value) -> Result<&serde_json::Value, String> {
    fn data(v: &serde_json::Value) -> &serde_json::Value {
        v.pointer("/error/data").unwrap_or(v)
    }
    let serde_json::Value::Array(items) = answer else {
        return Ok(data(answer));
    };
    let mut found: Option<&serde_json::Value> = None;
    for v in items.iter().map(data) {
        if v.get("decision").and_then(|d| d.as_str()) != Some("challenge") {
            continue;
        }
        match found {
            Some(f) if f.get("signed") != v.get("signed") => {
                return Err("a batch carrying more than one challenge".into())
            }
            _ => found = Some(v),
        }
    }
    found.ok_or_else(|| "no challenge in this batch".into())
}

/// Checks a challenge (the 428 body or a JSON-RPC error carrying it) against the
/// gateway's public key at `now_ms`.
pub fn present(
    gateway: &ed25519_dalek::VerifyingKey,
    answer: &serde_json::Value,
    now_ms: i64,
) -> Result<Presented, String> {
    let body = challenge_in(answer)?;
    let signed = body
        .get("signed")
        .and_then(|s| s.as_str())
        .ok_or("not a signed challenge (no `signed`): the bundle has no `approvals` section")?;
    let claims = open_challenge(gateway, signed)
        .map_err(|e| format!("{e}: not issued by a gateway of this bundle, or altered"))?;
    if claims.exp < now_ms.div_euclid(1000) {
        return Err(format!(
            "this challenge expired at {}: the agent must send the request again",
            crate::time::format_rfc3339_millis(claims.exp.saturating_mul(1000))
        ));
    }
    let request = body
        .get("request")
        .ok_or("the challenge does not show the request")?;
    if shown_hash(request) != claims.shown {
        return Err(
            "the request shown with the challenge was altered (it is not what the gateway signed)"
                .into(),
        );
    }
    Ok(Presented {
        signed: signed.trim().to_string(),
        claims,
        request: request.clone(),
    })
}

/// Text from the request (the agent's), safe to show on a terminal or a page: control characters
/// (escape sequences, carriage returns), C1 controls and bidirectional overrides are shown
/// escaped, so the request cannot redraw or reorder what the approver reads.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What a signed approval says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub v: u8,
    /// The signed challenge approved (`c1.…`), as the gateway issued it.
    pub challenge: String,
    pub approver: String,
    /// Unix seconds: when the approver signed, and until when the token may be used.
    pub iat: i64,
    pub exp: i64,
    pub nonce: String,
}

pub fn sign_approval(key: &PrivateKey, a: &Approval) -> String {
    key.seal("v2", a)
}

/// An approver the bundle lists.
#[derive(Debug, Clone)]
pub struct Approver {
    pub name: String,
    pub key: ed25519_dalek::VerifyingKey,
}

/// Checks a signed approval for this request: signed by the approver it names (one the
/// bundle lists), over a challenge this gateway signed for this digest, key and
/// environment, given before the challenge expired, not expired itself. Single use is
/// the caller's (the nonce).
pub fn verify_signed(
    approvers: &[Approver],
    gateway: &ed25519_dalek::VerifyingKey,
    token: &str,
    digest: &str,
    key_id: &str,
    environment: &str,
    now_ms: i64,
) -> Result<Claims, String> {
    if token.trim().starts_with("v1.") {
        return Err("a shared-key token: this gateway accepts only approvals signed by the approvers its bundle lists".into());
    }
    let (payload, _) = open_parts("v2", token)?;
    // Who it claims to be, then whether they signed it.
    let named: Approval = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or("malformed payload")?;
    let Some(approver) = approvers.iter().find(|a| a.name == named.approver) else {
        return Err(format!(
            "`{}` is not an approver of this bundle",
            named.approver
        ));
    };
    let a: Approval = unseal("v2", token, &approver.key)
        .map_err(|e| format!("{e} (not signed by `{}`'s key)", approver.name))?;
    if a.v != 2 {
        return Err(format!("unknown token version {}", a.v));
    }
    let c = open_challenge(gateway, &a.challenge)?;
    if c.digest != digest {
        return Err(format!(
            "issued for another request ({}), not this one ({digest})",
            c.digest
        ));
    }
    if c.key != key_id {
        return Err(format!("issued for key `{}`, not `{key_id}`", c.key));
    }
    if c.environment != environment {
        return Err(format!(
            "issued in environment `{}`, not `{environment}`",
            c.environment
        ));
    }
    if a.iat > c.exp {
        return Err(format!(
            "approved at {} after the challenge expired at {}",
            a.iat, c.exp
        ));
    }
    let now = now_ms.div_euclid(1000);
    if a.iat > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err("approved in the future".into());
    }
    if a.exp <= now {
        return Err(format!("expired at {}", a.exp));
    }
    if a.exp > a.iat.saturating_add(MAX_TTL_SECS) {
        return Err("valid for more than 24 h".into());
    }
    if !valid_label(&a.nonce) {
        return Err("malformed nonce".into());
    }
    Ok(Claims {
        v: 2,
        digest: c.digest,
        key: c.key,
        exp: a.exp,
        approver: a.approver,
        nonce: a.nonce,
    })
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

    #[test]
    fn signed_approvals_bind_challenge_approver_and_time() {
        let gateway = PrivateKey::from_seed([1; 32]);
        let (alice, bob) = (
            PrivateKey::from_seed([2; 32]),
            PrivateKey::from_seed([3; 32]),
        );
        let approvers = vec![
            Approver {
                name: "alice".into(),
                key: alice.public(),
            },
            Approver {
                name: "bob".into(),
                key: bob.public(),
            },
        ];
        let now = 1_800_000_000;
        let challenge = ChallengeClaims {
            v: 1,
            digest: "sha256:aa".into(),
            key: "writer-1".into(),
            environment: "production".into(),
            approvals: 1,
            exp: now + 300,
            operations: vec![],
            shown: "sha256:00".into(),
            rule: "roles[0].allow[0]".into(),
            reason: "approval required".into(),
        };
        let signed = sign_challenge(&gateway, &challenge);
        let approval = |by: &PrivateKey, name: &str, challenge: &str, iat: i64| {
            sign_approval(
                by,
                &Approval {
                    v: 2,
                    challenge: challenge.into(),
                    approver: name.into(),
                    iat,
                    exp: iat + 600,
                    nonce: "n-1".into(),
                },
            )
        };
        let check = |t: &str, now: i64| {
            verify_signed(
                &approvers,
                &gateway.public(),
                t,
                "sha256:aa",
                "writer-1",
                "production",
                now * 1000,
            )
        };
        let good = approval(&alice, "alice", &signed, now);
        assert_eq!(check(&good, now + 10).unwrap().approver, "alice");
        // Alice cannot sign as Bob.
        assert!(check(&approval(&alice, "bob", &signed, now), now)
            .unwrap_err()
            .contains("not signed by `bob`"));
        assert!(check(&approval(&alice, "carol", &signed, now), now)
            .unwrap_err()
            .contains("not an approver"));
        // After the challenge expired nothing approves it; a token expires.
        assert!(
            check(&approval(&alice, "alice", &signed, now + 301), now + 302)
                .unwrap_err()
                .contains("after the challenge expired")
        );
        assert!(check(&good, now + 601).unwrap_err().contains("expired"));
        // A challenge altered on its way (a later expiry, another digest) or not this gateway's.
        let forged = sign_challenge(
            &PrivateKey::from_seed([9; 32]),
            &ChallengeClaims {
                exp: now + 9999,
                ..challenge.clone()
            },
        );
        assert!(check(&approval(&alice, "alice", &forged, now), now)
            .unwrap_err()
            .contains("challenge: bad signature"));
        let other = sign_challenge(
            &gateway,
            &ChallengeClaims {
                digest: "sha256:bb".into(),
                ..challenge.clone()
            },
        );
        assert!(check(&approval(&alice, "alice", &other, now), now)
            .unwrap_err()
            .contains("another request"));
        let (payload, _) = open_parts("c1", &signed).unwrap();
        let tampered = format!("c1.{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
        assert!(check(&approval(&alice, "alice", &tampered, now), now).is_err());
        // A shared-key token is not accepted where approvers are listed.
        assert!(check("v1.e30.AAAA", now)
            .unwrap_err()
            .contains("shared-key"));
        // Key round trip.
        assert_eq!(
            PrivateKey::from_base64(&alice.to_base64())
                .unwrap()
                .public(),
            alice.public()
        );
        assert_eq!(public_key(&alice.public_base64()).unwrap(), alice.public());
    }
}
