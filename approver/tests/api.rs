//! The inbox's API and pages, in process (SQLite in a temporary file): a real gateway
//! engine issues the challenges and checks the tokens the inbox signs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use scopegate_approver::app::{router, Shared, Trusted};
use scopegate_engine::approval::PrivateKey;
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::{Decision, Engine, Secrets, Verdict};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tower::ServiceExt;

const T0: i64 = 1_795_000_000_000;
const INBOX: &str = "https://approvals.test";

struct World {
    engine: Engine,
    app: Shared,
    clock: Arc<AtomicI64>,
    _dir: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).unwrap();
            let p = std::env::temp_dir()
                .join(format!("scopegate-approver-test-{}", u64::from_le_bytes(b)));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn bundle(gateway: &PrivateKey, alice: &PrivateKey, bob: &PrivateKey) -> String {
    format!(
        r#"{{"bundle": "inbox", "version": 1, "environment": "production", "state": {{"store": "local"}},
      "approvals": {{"challenge_key": "{}", "challenge_ttl": "5m", "inbox_url": "{INBOX}/",
                     "approvers": [{{"name": "alice", "ed25519": "{}"}}, {{"name": "bob", "ed25519": "{}"}}, {{"name": "carol", "ed25519": "{}"}}]}},
      "services": [{{"name": "rentals", "protocol": "rest", "match": {{"path_prefix": "/rest"}}, "rest": {{"style": "postgrest"}}}}],
      "roles": [{{"name": "writer", "allow": [
          {{"service": "rentals", "resources": ["reservations"], "actions": ["read", "delete"], "friction": "approval"}},
          {{"service": "rentals", "resources": ["payments"], "actions": ["delete"], "friction": "approval", "approvals": 2}}]}}],
      "keys": [{{"id": "writer-1", "sha256": "{}", "role": "writer"}},
               {{"id": "writer-2", "sha256": "{}", "role": "writer"}}]}}"#,
        gateway.public_base64(),
        alice.public_base64(),
        bob.public_base64(),
        PrivateKey::from_seed([9; 32]).public_base64(),
        hex(&sha256(b"writer-key")),
        hex(&sha256(b"writer2-key")),
    )
}

async fn world() -> World {
    let gateway = PrivateKey::from_seed([1; 32]);
    let alice = PrivateKey::from_seed([2; 32]);
    let bob = PrivateKey::from_seed([3; 32]);
    let json = bundle(&gateway, &alice, &bob);
    let seed = gateway.to_base64();
    let env = move |n: &str| (n == "SCOPEGATE_CHALLENGE_KEY").then(|| seed.clone());
    let engine = Engine::from_json(json.as_bytes(), &Secrets::Env(&env)).unwrap();
    let dir = tempdir::Dir::new();
    let mut key_files = Vec::new();
    for (name, key) in [("alice", &alice), ("bob", &bob)] {
        let f = dir.0.join(format!("{name}.key"));
        std::fs::write(&f, key.to_base64()).unwrap();
        key_files.push((name.to_string(), f));
    }
    let clock = Arc::new(AtomicI64::new(T0));
    let c = clock.clone();
    let db = std::env::var("SCOPEGATE_APPROVER_TEST_DB")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.0.join("inbox.db").display()));
    let app = scopegate_approver::build(scopegate_approver::Config {
        bundle: json.into_bytes(),
        db,
        public_url: INBOX.into(),
        key_files,
        webhook: None,
        trusted: Some(Trusted {
            header: "x-forwarded-user".into(),
            proxies: vec!["10.0.0.7".parse().unwrap()],
        }),
        session_ttl_secs: 3600,
        token_ttl_secs: 600,
        clock: Arc::new(move || c.load(Ordering::SeqCst)),
    })
    .await
    .unwrap();
    for name in ["alice", "bob", "carol"] {
        let hash = scopegate_approver::password::hash(&format!("{name}-password-long")).unwrap();
        scopegate_approver::store::add_account(&app.db, name, &hash, 0)
            .await
            .unwrap();
    }
    World {
        engine,
        app: Arc::new(app),
        clock,
        _dir: dir,
    }
}

impl World {
    fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }
    fn gateway(&self, path: &str, key: &str, token: Option<&str>) -> Verdict {
        let mut h = vec![
            (":method".to_string(), b"DELETE".to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
            (":authority".to_string(), b"gw.test".to_vec()),
            (
                "authorization".to_string(),
                format!("Bearer {key}").into_bytes(),
            ),
        ];
        if let Some(t) = token {
            h.push(("x-scopegate-approval".to_string(), t.as_bytes().to_vec()));
        }
        self.engine.decide(h, b"", self.now())
    }
    fn challenge(&self, path: &str) -> Value {
        let v = self.gateway(path, "writer-key", None);
        assert_eq!(v.decision(), Decision::Challenge, "{}", v.response_body());
        serde_json::from_str(&v.response_body()).unwrap()
    }
    async fn call(&self, req: Request<Body>) -> (StatusCode, Vec<(String, String)>, String) {
        let r = router(self.app.clone()).oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
    async fn api(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let (status, _, text) = self
            .call(b.body(Body::from(body.to_string())).unwrap())
            .await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn post(&self, challenge: &Value) -> (StatusCode, Value) {
        self.api(
            "POST",
            "/v1/challenges",
            Some("writer-key"),
            &challenge.to_string(),
        )
        .await
    }
    async fn poll(&self, digest: &str) -> Value {
        let (s, v) = self
            .api(
                "GET",
                &format!("/v1/challenges/{digest}"),
                Some("writer-key"),
                "",
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
    /// Signs in with a password: the session cookie.
    async fn sign_in(&self, name: &str, password: &str) -> Result<String, StatusCode> {
        let (_, h, page) = self
            .call(Request::get("/login").body(Body::empty()).unwrap())
            .await;
        let login = cookie_of(&h, "__Host-sg_login");
        let csrf = field(&page, "csrf");
        let (status, h, _) = self
            .call(
                Request::post("/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", format!("__Host-sg_login={login}"))
                    .body(Body::from(format!(
                        "name={name}&password={password}&csrf={csrf}"
                    )))
                    .unwrap(),
            )
            .await;
        if status != StatusCode::SEE_OTHER {
            return Err(status);
        }
        Ok(cookie_of(&h, "__Host-sg_session"))
    }
    async fn page(&self, session: &str, uri: &str) -> (StatusCode, String) {
        let (s, _, body) = self
            .call(
                Request::get(uri)
                    .header("cookie", format!("__Host-sg_session={session}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        (s, body)
    }
    /// Approves or denies on the challenge's page as the signed-in person.
    async fn decide(&self, session: &str, digest: &str, verdict: &str) -> StatusCode {
        let (_, page) = self.page(session, &format!("/c/{digest}")).await;
        let (csrf, round) = (field(&page, "csrf"), field(&page, "round"));
        let (s, _, _) = self
            .call(
                Request::post(format!("/c/{digest}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", format!("__Host-sg_session={session}"))
                    .header("origin", INBOX)
                    .body(Body::from(format!(
                        "csrf={csrf}&round={round}&verdict={verdict}&comment=ok+by+me"
                    )))
                    .unwrap(),
            )
            .await;
        s
    }
}

fn cookie_of(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_string())
        .unwrap_or_default()
}

/// The value of a hidden form field on a page.
fn field(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn digest_of(challenge: &Value) -> String {
    challenge["challenge"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

#[tokio::test]
async fn an_approval_in_the_inbox_lets_the_request_through_once() {
    let w = world().await;
    let c = w.challenge("/rest/reservations?id=eq.7");
    let digest = digest_of(&c);
    // The gateway's 428 says where to go.
    assert_eq!(c["approval_url"], format!("{INBOX}/c/{digest}"));
    assert_eq!(c["inbox"], format!("{INBOX}/v1/challenges"));

    // Only the challenged key posts and reads it.
    let (s, _) = w.api("POST", "/v1/challenges", None, &c.to_string()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = w
        .api("POST", "/v1/challenges", Some("not-a-key"), &c.to_string())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = w
        .api(
            "POST",
            "/v1/challenges",
            Some("writer2-key"),
            &c.to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = w.post(&c).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], "pending");
    assert_eq!(v["approvals"]["text"], "0 of 1");
    assert!(v.get("tokens").is_none());
    // Idempotent: the same challenge, and a fresh challenge for the same request.
    let (s, again) = w.post(&c).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["digest"], v["digest"]);
    w.clock.fetch_add(2_000, Ordering::SeqCst);
    let fresh = w.challenge("/rest/reservations?id=eq.7");
    assert_ne!(fresh["signed"], c["signed"]);
    let (s, _) = w.post(&fresh).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a fresh challenge for a live round joins it"
    );
    let (s, v) = w
        .api(
            "GET",
            &format!("/v1/challenges/{digest}"),
            Some("writer2-key"),
            "",
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // A person approves on the page.
    let alice = w.sign_in("alice", "alice-password-long").await.unwrap();
    let (s, list) = w.page(&alice, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(list.contains(&format!("/c/{digest}")), "{list}");
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    for shown in [
        "writer-1",
        "writer",
        "production",
        "reservations",
        "DELETE /rest/reservations?id=eq.7",
        "Blast radius",
    ] {
        assert!(page.contains(shown), "{shown} not on the page");
    }
    assert_eq!(
        w.decide(&alice, &digest, "approve").await,
        StatusCode::SEE_OTHER
    );
    // Deciding twice is refused.
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    assert!(!page.contains("name=\"round\""), "no form after deciding");

    let v = w.poll(&digest).await;
    assert_eq!(v["state"], "approved", "{v}");
    let token = v["retry"]["value"].as_str().unwrap().to_string();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 1);
    let ok = w.gateway("/rest/reservations?id=eq.7", "writer-key", Some(&token));
    assert_eq!(ok.decision(), Decision::Allow, "{}", ok.response_body());
    assert_eq!(ok.approval().unwrap().approvers, vec!["alice".to_string()]);
    // Another request or key with it: refused by the gateway.
    let other = w.gateway("/rest/reservations?id=eq.8", "writer-key", Some(&token));
    assert_ne!(other.decision(), Decision::Allow);
    let other = w.gateway("/rest/reservations?id=eq.7", "writer2-key", Some(&token));
    assert_ne!(other.decision(), Decision::Allow);

    // Collected: the next challenge for the same request starts a new round.
    w.clock.fetch_add(1_000, Ordering::SeqCst);
    let next = w.challenge("/rest/reservations?id=eq.7");
    let (s, v) = w.post(&next).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], "pending");
    let (_, history) = w.page(&alice, "/history").await;
    assert!(history.contains("alice approve"), "{history}");
}

#[tokio::test]
async fn two_approvals_need_two_people_and_a_denial_ends_it() {
    let w = world().await;
    let c = w.challenge("/rest/payments?id=eq.1");
    let digest = digest_of(&c);
    assert_eq!(w.post(&c).await.0, StatusCode::CREATED);
    let alice = w.sign_in("alice", "alice-password-long").await.unwrap();
    assert_eq!(
        w.decide(&alice, &digest, "approve").await,
        StatusCode::SEE_OTHER
    );
    let v = w.poll(&digest).await;
    assert_eq!(v["state"], "pending");
    assert_eq!(v["approvals"]["text"], "1 of 2");
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    assert!(page.contains("1 of 2 approvals"));
    let bob = w.sign_in("bob", "bob-password-long").await.unwrap();
    assert_eq!(
        w.decide(&bob, &digest, "approve").await,
        StatusCode::SEE_OTHER
    );
    let v = w.poll(&digest).await;
    assert_eq!(v["state"], "approved");
    let both = v["retry"]["value"].as_str().unwrap();
    let ok = w.gateway("/rest/payments?id=eq.1", "writer-key", Some(both));
    assert_eq!(ok.decision(), Decision::Allow, "{}", ok.response_body());
    // One token alone is not enough.
    let one = v["tokens"][0].as_str().unwrap();
    w.clock.fetch_add(1_000, Ordering::SeqCst);
    let single = w.gateway("/rest/payments?id=eq.1", "writer-key", Some(one));
    assert_ne!(single.decision(), Decision::Allow);

    // Carol is an approver without a key in the inbox: she can deny, not approve.
    let d = w.challenge("/rest/reservations?id=eq.3");
    let dd = digest_of(&d);
    assert_eq!(w.post(&d).await.0, StatusCode::CREATED);
    let carol = w.sign_in("carol", "carol-password-long").await.unwrap();
    let (_, page) = w.page(&carol, &format!("/c/{dd}")).await;
    assert!(page.contains("holds no signing key"), "{page}");
    // Bob denies: the round is over, and approving afterwards is refused.
    assert_eq!(w.decide(&bob, &dd, "deny").await, StatusCode::SEE_OTHER);
    let v = w.poll(&dd).await;
    assert_eq!(v["state"], "denied");
    assert_eq!(v["denied_by"][0]["approver"], "bob");
    assert!(v.get("tokens").is_none());
    let (_, page) = w.page(&alice, &format!("/c/{dd}")).await;
    assert!(!page.contains("name=\"round\""));
}

#[tokio::test]
async fn expired_altered_and_foreign_challenges_are_refused() {
    let w = world().await;
    let c = w.challenge("/rest/reservations?id=eq.9");
    let digest = digest_of(&c);
    // Altered on the way: the request shown, or the signed challenge.
    let mut shown = c.clone();
    shown["request"]["target"] = "/rest/reservations?id=eq.10".into();
    let (s, v) = w.post(&shown).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("altered"), "{v}");
    let mut signed = c.clone();
    let text = signed["signed"].as_str().unwrap().to_string();
    signed["signed"] = format!("{}x", &text[..text.len() - 1]).into();
    assert_eq!(w.post(&signed).await.0, StatusCode::BAD_REQUEST);
    // A challenge from another gateway key.
    let other = PrivateKey::from_seed([7; 32]);
    let forged = scopegate_engine::approval::sign_challenge(
        &other,
        &scopegate_engine::approval::open_challenge(
            &PrivateKey::from_seed([1; 32]).public(),
            c["signed"].as_str().unwrap(),
        )
        .unwrap(),
    );
    let mut f = c.clone();
    f["signed"] = forged.into();
    assert_eq!(w.post(&f).await.0, StatusCode::BAD_REQUEST);

    // Posted, then it expires before anyone decides.
    assert_eq!(w.post(&c).await.0, StatusCode::CREATED);
    let alice = w.sign_in("alice", "alice-password-long").await.unwrap();
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    let (csrf, round) = (field(&page, "csrf"), field(&page, "round"));
    w.clock.fetch_add(301_000, Ordering::SeqCst);
    assert_eq!(w.poll(&digest).await["state"], "expired");
    // The page shown before expiry, submitted after it.
    let (s, _, _) = w
        .call(
            Request::post(format!("/c/{digest}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", format!("__Host-sg_session={alice}"))
                .body(Body::from(format!(
                    "csrf={csrf}&round={round}&verdict=approve"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // An expired challenge is not accepted at all.
    let (s, v) = w.post(&c).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    let (_, list) = w.page(&alice, "/").await;
    assert!(list.contains("Nothing is waiting"), "{list}");
}

#[tokio::test]
async fn forms_need_the_session_token_and_this_origin() {
    let w = world().await;
    let c = w.challenge("/rest/reservations?id=eq.4");
    let digest = digest_of(&c);
    assert_eq!(w.post(&c).await.0, StatusCode::CREATED);
    let alice = w.sign_in("alice", "alice-password-long").await.unwrap();
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    let round = field(&page, "round");
    let csrf = field(&page, "csrf");
    for (token, origin) in [
        ("wrong", INBOX),
        ("", INBOX),
        (csrf.as_str(), "https://evil.test"),
    ] {
        let (s, _, _) = w
            .call(
                Request::post(format!("/c/{digest}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", format!("__Host-sg_session={alice}"))
                    .header("origin", origin)
                    .body(Body::from(format!(
                        "csrf={token}&round={round}&verdict=approve"
                    )))
                    .unwrap(),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "token {token:?} origin {origin}");
    }
    // No session: to the sign-in page; a forged session id: the same.
    let (s, h, _) = w
        .call(
            Request::get(format!("/c/{digest}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h.iter().any(|(k, v)| k == "location" && v == "/login"));
    assert_eq!(w.page("forged", "/").await.0, StatusCode::SEE_OTHER);
    assert_eq!(w.poll(&digest).await["state"], "pending");
}

#[tokio::test]
async fn sign_in_is_rate_limited_and_cookies_are_strict() {
    let w = world().await;
    // The sign-in form's own CSRF (double submit).
    let (s, _, _) = w
        .call(
            Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("name=alice&password=alice-password-long&csrf=x"))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for _ in 0..5 {
        assert_eq!(
            w.sign_in("alice", "wrong-password").await.unwrap_err(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked out, even with the right password, for the window.
    assert_eq!(
        w.sign_in("alice", "alice-password-long").await.unwrap_err(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Unknown accounts fail the same way.
    assert_eq!(
        w.sign_in("mallory", "whatever-password").await.unwrap_err(),
        StatusCode::UNAUTHORIZED
    );
    w.clock.fetch_add(16 * 60_000, Ordering::SeqCst);
    let (_, _, page) = w
        .call(Request::get("/login").body(Body::empty()).unwrap())
        .await;
    let csrf = field(&page, "csrf");
    let (s, h, _) = w
        .call(
            Request::post("/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", format!("__Host-sg_login={csrf}"))
                .body(Body::from(format!(
                    "name=alice&password=alice-password-long&csrf={csrf}"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let set = h
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("__Host-sg_session="))
        .map(|(_, v)| v.clone())
        .unwrap();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Max-Age=3600",
        "Path=/",
    ] {
        assert!(set.contains(attr), "{set}");
    }
    // Pages carry a content security policy.
    let session = cookie_of(&h, "__Host-sg_session");
    let (_, headers, _) = w
        .call(
            Request::get("/")
                .header("cookie", format!("__Host-sg_session={session}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-security-policy" && v.contains("script-src 'self'")));
    // Signing out ends the session.
    let (_, page) = w.page(&session, "/").await;
    let (s, _, _) = w
        .call(
            Request::post("/logout")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", format!("__Host-sg_session={session}"))
                .body(Body::from(format!("csrf={}", field(&page, "csrf"))))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(w.page(&session, "/").await.0, StatusCode::SEE_OTHER);
    // Sessions expire.
    let again = w.sign_in("alice", "alice-password-long").await.unwrap();
    assert_eq!(w.page(&again, "/").await.0, StatusCode::OK);
    w.clock.fetch_add(3_601_000, Ordering::SeqCst);
    assert_eq!(w.page(&again, "/").await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_denied_request_asked_again_shows_the_denial_and_floods_are_capped() {
    let w = world().await;
    let c = w.challenge("/rest/reservations?id=eq.11");
    let digest = digest_of(&c);
    assert_eq!(w.post(&c).await.0, StatusCode::CREATED);
    let bob = w.sign_in("bob", "bob-password-long").await.unwrap();
    assert_eq!(w.decide(&bob, &digest, "deny").await, StatusCode::SEE_OTHER);
    // After the challenge expired, the agent asks again: a new round, with the old denial
    // in plain sight.
    w.clock.fetch_add(301_000, Ordering::SeqCst);
    let again = w.challenge("/rest/reservations?id=eq.11");
    assert_eq!(w.post(&again).await.0, StatusCode::CREATED);
    let alice = w.sign_in("alice", "alice-password-long").await.unwrap();
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    assert!(
        page.contains("Asked before") && page.contains("bob deny"),
        "{page}"
    );
    // One key cannot bury the inbox: 20 waiting challenges at most.
    for i in 0..19 {
        let c = w.challenge(&format!("/rest/reservations?id=eq.{}", 100 + i));
        assert_eq!(w.post(&c).await.0, StatusCode::CREATED, "{i}");
    }
    let c = w.challenge("/rest/reservations?id=eq.999");
    let (s, v) = w.post(&c).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    // The rule and reason an approver reads are the gateway's, signed.
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    assert!(page.contains("roles[0].allow[0]"), "{page}");
}

#[tokio::test]
async fn the_trusted_header_counts_only_from_the_proxy() {
    let w = world().await;
    let req = |peer: &str| {
        let mut r = Request::get("/")
            .header("x-forwarded-user", "alice")
            .body(Body::empty())
            .unwrap();
        r.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        r
    };
    let (s, _, page) = w.call(req("10.0.0.7:5000")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("alice"));
    let (s, _, page) = w.call(req("10.0.0.8:5000")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{page}");
    // Sent twice (a proxy that appends rather than replaces): refused, never the first.
    let mut twice = Request::get("/")
        .header("x-forwarded-user", "bob")
        .header("x-forwarded-user", "alice")
        .body(Body::empty())
        .unwrap();
    twice
        .extensions_mut()
        .insert(ConnectInfo("10.0.0.7:5000".parse::<SocketAddr>().unwrap()));
    assert_eq!(w.call(twice).await.0, StatusCode::FORBIDDEN);
    // Someone the proxy knows who is not an approver sees nothing.
    let mut other = Request::get("/")
        .header("x-forwarded-user", "mallory")
        .body(Body::empty())
        .unwrap();
    other
        .extensions_mut()
        .insert(ConnectInfo("10.0.0.7:5000".parse::<SocketAddr>().unwrap()));
    assert_eq!(w.call(other).await.0, StatusCode::FORBIDDEN);
    // Without a known peer address it is not trusted either.
    let (s, _, _) = w
        .call(
            Request::get("/")
                .header("x-forwarded-user", "alice")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn what_the_agent_sent_is_shown_as_text_never_markup() {
    let w = world().await;
    let c = w.challenge(
        "/rest/reservations?id=eq.%3Cscript%3Ealert(1)%3C%2Fscript%3E&note=eq.%E2%80%AEevil",
    );
    let digest = digest_of(&c);
    assert_eq!(w.post(&c).await.0, StatusCode::CREATED);
    let alice = w.sign_in("alice", "alice-password-long").await.unwrap();
    for uri in [
        "/".to_string(),
        format!("/c/{digest}"),
        "/history".to_string(),
    ] {
        let (_, page) = w.page(&alice, &uri).await;
        assert!(!page.contains("<script>alert"), "{uri}: {page}");
        assert!(!page.contains('\u{202e}'), "{uri}: bidi override shown raw");
    }
    let (_, page) = w.page(&alice, &format!("/c/{digest}")).await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || page.contains("%3Cscript%3E"),
        "{page}"
    );
}

#[tokio::test]
async fn a_webhook_message_links_the_challenge_and_escapes_it() {
    let w = world().await;
    let c = w.challenge("/rest/reservations?id=eq.5");
    let p = scopegate_engine::approval::present(&w.app.gateway, &c, w.now()).unwrap();
    let m = scopegate_approver::webhook::message(&w.app, &p);
    let text = m["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("<{INBOX}/c/{}|review and decide>", digest_of(&c))),
        "{text}"
    );
    assert!(text.contains("delete on rentals (1 operation)"), "{text}");
    assert!(
        !text.contains("reservations"),
        "no agent-written text: {text}"
    );
}
