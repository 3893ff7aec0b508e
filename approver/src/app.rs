//! The inbox's state and its agent API: `POST /v1/challenges` (the gateway's 428 answer,
//! idempotent per request digest) and `GET /v1/challenges/{digest}` (state and, once
//! approved, the tokens), both authenticated with the challenged agent's own scopegate
//! key: only that key posts its challenges and reads their tokens.

use crate::error::{ApiError, Error};
use crate::store::{self, Challenge};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use scopegate_engine::approval::{self, Approver, PrivateKey};
use scopegate_engine::bundle::Bundle;
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::policy::Policy;
use serde_json::{json, Value};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Sign-in through a trusted header set by an SSO proxy, accepted only from its addresses.
#[derive(Debug, Clone)]
pub struct Trusted {
    pub header: String,
    pub proxies: Vec<IpAddr>,
}

pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub struct App {
    pub bundle: Bundle,
    /// The compiled bundle (behind a lock: it memoises decodes in cells, which are not
    /// shared between threads).
    pub policy: std::sync::Mutex<Policy>,
    pub gateway: ed25519_dalek::VerifyingKey,
    pub approvers: Vec<Approver>,
    /// The private keys the inbox signs with, per approver (accounts it holds keys for).
    pub keys: HashMap<String, PrivateKey>,
    pub db: AnyPool,
    /// Where people reach the inbox (links in webhooks), no trailing `/`.
    pub public_url: String,
    pub webhook: Option<String>,
    pub http: reqwest::Client,
    pub trusted: Option<Trusted>,
    /// Binds the form tokens of proxy-authenticated people (random per run).
    pub csrf_secret: Vec<u8>,
    /// What `explain` resolves grants against (the blast radius on a challenge's page).
    pub universe: scopegate_engine::explain::Universe,
    pub session_ttl_secs: i64,
    /// Lifetime of a token the inbox signs (at most 24 h).
    pub token_ttl_secs: i64,
    /// Unix milliseconds.
    pub clock: Clock,
}

pub type Shared = Arc<App>;

/// Challenges one key may have waiting at once.
pub const MAX_OPEN_PER_KEY: i64 = 20;

impl App {
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
    /// Cookies are `Secure` when people reach the inbox over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
    /// `scheme://host[:port]` of the public URL: what a browser sends as `Origin`.
    pub fn origin(&self) -> &str {
        let after = self.public_url.find("://").map_or(0, |i| i + 3);
        match self.public_url.get(after..).and_then(|r| r.find('/')) {
            Some(i) => self.public_url.get(..after + i).unwrap_or(&self.public_url),
            None => &self.public_url,
        }
    }
    pub fn approval_url(&self, digest: &str) -> String {
        format!("{}/c/{digest}", self.public_url)
    }
    /// The role of a key id, as the bundle names it.
    pub fn role_of(&self, key_id: &str) -> Option<String> {
        self.with_policy(|p| {
            let key = p.key_by_id(key_id)?;
            p.role(key.role).map(|r| r.name.clone())
        })
    }
    pub fn with_policy<T>(&self, f: impl FnOnce(&Policy) -> T) -> T {
        let p = self.policy.lock().unwrap_or_else(|e| e.into_inner());
        f(&p)
    }

    /// The agent's key, as the gateway would read it from its credential headers: one
    /// credential, known, not expired.
    fn agent(&self, headers: &HeaderMap) -> Result<String, Error> {
        let names = self.with_policy(|p| p.credential_headers.clone());
        let mut presented: Option<&[u8]> = None;
        for name in &names {
            let mut values = headers.get_all(name.as_str()).iter();
            let Some(value) = values.next() else { continue };
            if values.next().is_some() {
                return Err(Error::Unauthenticated(format!("repeated {name} header")));
            }
            let v = value.as_bytes();
            let token = if name == "authorization" {
                match v.get(..7) {
                    Some(p) if p.eq_ignore_ascii_case(b"bearer ") => v.get(7..).unwrap_or(&[]),
                    _ => continue,
                }
            } else {
                v
            }
            .trim_ascii();
            match presented {
                Some(p) if p != token => {
                    return Err(Error::Unauthenticated(
                        "two different credentials presented".into(),
                    ))
                }
                _ => presented = Some(token),
            }
        }
        let secret = presented.ok_or_else(|| {
            Error::Unauthenticated(
                "present your scopegate key, as to the gateway (Authorization: Bearer …)".into(),
            )
        })?;
        let now = self.now_ms();
        self.with_policy(|p| p.key_by_secret(secret, now).map(|k| k.id.clone()))
            .map_err(|e| Error::Unauthenticated(e.into()))
    }
}

/// The agents' API and the people's pages on one listener.
pub fn router(app: Shared) -> Router {
    api_routes().merge(crate::web::routes()).with_state(app)
}

/// The agents' API and the people's pages apart (`serve --api-listen`): the pages can
/// then be reachable only through the SSO proxy, the API only from the agents' network.
pub fn split(app: Shared) -> (Router, Router) {
    (
        api_routes().with_state(app.clone()),
        crate::web::routes().with_state(app),
    )
}

fn api_routes() -> Router<Shared> {
    Router::new()
        .route("/v1/challenges", post(post_challenge))
        .route("/v1/challenges/{digest}", get(get_challenge))
}

/// `sha256:<hex>` or `<hex>` → `<hex>` (64 lowercase hex digits), else not found.
pub fn digest_param(d: &str) -> Result<String, Error> {
    let h = approval::digest_hex(d);
    if h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(h.to_string())
    } else {
        Err(Error::NotFound("no such challenge".into()))
    }
}

/// How far the approvals are: `{"needed", "given", "text": "1 of 2"}`.
pub fn progress(c: &Challenge, decisions: &[store::Decision]) -> Value {
    let given = decisions.iter().filter(|d| d.verdict == "approve").count();
    json!({"needed": c.needed, "given": given, "text": format!("{given} of {}", c.needed)})
}

async fn post_challenge(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<
    (
        axum::http::StatusCode,
        [(&'static str, &'static str); 1],
        Json<Value>,
    ),
    ApiError,
> {
    let key_id = app.agent(&headers)?;
    let answer: Value =
        serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("not JSON: {e}")))?;
    let p = approval::present(&app.gateway, &answer, app.now_ms()).map_err(Error::BadRequest)?;
    if p.claims.key != key_id {
        return Err(Error::Forbidden(format!(
            "this challenge was issued to key `{}`, not to the key presented",
            p.claims.key
        ))
        .into());
    }
    // What the inbox keeps and shows: the signed parts, plus the answer's unsigned
    // context (reason, rule), shown as such.
    // What the inbox keeps besides the signed challenge: the request as sent (its hash is
    // signed). Nothing else from the answer is shown: the rest is unsigned.
    let kept = json!({"request": p.request});
    let digest = approval::digest_hex(&p.claims.digest).to_string();
    let now = app.now();
    // A flood of distinct requests cannot bury other agents' challenges.
    if store::open_for_key(&app.db, &key_id, now).await? >= MAX_OPEN_PER_KEY
        && store::current(&app.db, &digest).await?.is_none()
    {
        return Err(Error::Busy(format!(
            "key `{key_id}` already has {MAX_OPEN_PER_KEY} challenges waiting for people: wait for them"
        ))
        .into());
    }
    let row = Challenge {
        id: hex(&sha256(p.signed.as_bytes())),
        digest: digest.clone(),
        key_id,
        environment: p.claims.environment.clone(),
        needed: i64::from(p.claims.approvals),
        expires_at: p.claims.exp,
        created_at: now,
        signed: p.signed.clone(),
        answer: kept.to_string(),
        state: "pending".into(),
        collected_at: None,
    };
    let (current, created) = store::post(&app.db, &row, now).await?;
    if created {
        crate::webhook::notify(&app, &p);
    }
    let decisions = store::decisions(&app.db, &current.id).await?;
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((
        status,
        [("cache-control", "no-store")],
        Json(answer_of(&app, &current, &decisions, now)),
    ))
}

/// What the agent reads about a challenge.
fn answer_of(app: &App, c: &Challenge, decisions: &[store::Decision], now: i64) -> Value {
    let mut state = c.state_at(now).to_string();
    let tokens: Vec<&str> = decisions
        .iter()
        .filter(|d| d.verdict == "approve")
        .filter_map(|d| d.token.as_deref())
        .collect();
    // Approved tokens expire too (the token lifetime): then the round is over.
    if state == "approved"
        && decisions
            .iter()
            .filter(|d| d.verdict == "approve")
            .any(|d| d.at.saturating_add(app.token_ttl_secs) <= now)
    {
        state = "expired".into();
    }
    let mut v = json!({
        "digest": format!("sha256:{}", c.digest),
        "state": state,
        "approvals": progress(c, decisions),
        "expires_at": c.expires_at,
        "approval_url": app.approval_url(&c.digest),
    });
    if let Some(o) = v.as_object_mut() {
        if state == "approved" {
            o.insert("tokens".into(), json!(tokens));
            o.insert(
                "retry".into(),
                json!({"header": "x-scopegate-approval", "value": tokens.join(",")}),
            );
        }
        if state == "denied" {
            let why: Vec<Value> = decisions
                .iter()
                .filter(|d| d.verdict == "deny")
                .map(|d| json!({"approver": d.approver, "comment": d.comment}))
                .collect();
            o.insert("denied_by".into(), json!(why));
        }
    }
    v
}

async fn get_challenge(
    State(app): State<Shared>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Result<([(&'static str, &'static str); 1], Json<Value>), ApiError> {
    let key_id = app.agent(&headers)?;
    let digest = digest_param(&digest)?;
    let c = store::current(&app.db, &digest)
        .await?
        .filter(|c| c.key_id == key_id)
        // Another key's challenge is not found, as if it did not exist.
        .ok_or_else(|| Error::NotFound("no such challenge for this key".into()))?;
    let decisions = store::decisions(&app.db, &c.id).await?;
    let now = app.now();
    let v = answer_of(&app, &c, &decisions, now);
    if v.get("state").and_then(Value::as_str) == Some("approved") {
        store::collected(&app.db, &c.id, now).await?;
    }
    Ok(([("cache-control", "no-store")], Json(v)))
}
