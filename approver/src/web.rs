//! The pages people use: sign in, pending challenges, a challenge in full with approve and
//! deny, history. Every form carries a CSRF token bound to the session (and the sign-in
//! form a double-submit cookie); a POST from another origin is refused; sessions are
//! `HttpOnly`, `SameSite=Strict` cookies that expire; failed sign-ins are rate limited.

use crate::app::{digest_param, progress, Shared};
use crate::error::{Error, PageError};
use crate::html::{esc, esc_block, page, respond};
use crate::store;
use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use scopegate_engine::approval;
use scopegate_engine::digest::{hex, sha256};
use scopegate_engine::time::format_rfc3339_millis;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Failed sign-ins allowed in the window: for one account from one address; from one
/// address; for one account from anywhere (a distributed guess: high enough that locking
/// an approver out takes a botnet, not a script).
const FAILURES_PER_PAIR: i64 = 5;
const FAILURES_PER_PEER: i64 = 50;
const FAILURES_PER_NAME: i64 = 200;
const FAILURE_WINDOW_SECS: i64 = 15 * 60;

/// Cookie names: with the `__Host-` prefix over HTTPS (no `Domain`, `Path=/`, `Secure`:
/// a sibling subdomain cannot plant one).
fn session_cookie(app: &Shared) -> &'static str {
    if app.secure_cookies() {
        "__Host-sg_session"
    } else {
        "sg_session"
    }
}

fn login_cookie(app: &Shared) -> &'static str {
    if app.secure_cookies() {
        "__Host-sg_login"
    } else {
        "sg_login"
    }
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(pending))
        .route("/history", get(history))
        .route("/c/{digest}", get(detail).post(decide))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/static/inbox.css", get(css))
        .route("/static/inbox.js", get(js))
}

async fn css() -> Response {
    (
        [
            ("content-type", "text/css"),
            ("cache-control", "max-age=300"),
        ],
        crate::html::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            ("content-type", "text/javascript"),
            ("cache-control", "max-age=300"),
        ],
        crate::html::JS,
    )
        .into_response()
}

/// The client's address (the TCP peer), when the server knows it.
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// A signed-in person.
pub struct Person {
    pub name: String,
    pub csrf: String,
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn random_token() -> Result<String, Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| Error::Forbidden(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Who is asking: a session, or the trusted header from a trusted proxy.
async fn person(app: &Shared, headers: &HeaderMap, peer: &Peer) -> Result<Person, Error> {
    if let Some(t) = &app.trusted {
        let mut values = headers.get_all(t.header.as_str()).iter();
        if let Some(v) = values.next() {
            if values.next().is_some() {
                return Err(Error::Forbidden(format!(
                    "`{}` sent more than once: the proxy must replace, not append, it",
                    t.header
                )));
            }
            let from_proxy = peer.0.is_some_and(|ip| t.proxies.contains(&ip));
            if !from_proxy {
                return Err(Error::Forbidden(format!(
                    "`{}` is accepted only from the configured proxy addresses",
                    t.header
                )));
            }
            let name = v
                .to_str()
                .map_err(|_| Error::Forbidden("unreadable identity header".into()))?
                .trim()
                .to_string();
            if !approval::valid_label(&name) {
                return Err(Error::Forbidden("unreadable identity header".into()));
            }
            // The form token of a proxy-authenticated person: bound to them and this run.
            let csrf = hex(&approval::hmac_sha256(
                &app.csrf_secret,
                format!("trusted:{name}").as_bytes(),
            ));
            return listed(app, Person { name, csrf });
        }
    }
    let id = cookie(headers, session_cookie(app))
        .ok_or_else(|| Error::Unauthenticated("sign in".into()))?;
    let (name, csrf) = store::session(&app.db, &hex(&sha256(id.as_bytes())), app.now())
        .await?
        .ok_or_else(|| Error::Unauthenticated("sign in".into()))?;
    listed(app, Person { name, csrf })
}

/// Only the bundle's approvers see challenges (what agents asked is itself sensitive).
fn listed(app: &Shared, p: Person) -> Result<Person, Error> {
    if app.approvers.iter().any(|a| a.name == p.name) {
        Ok(p)
    } else {
        Err(Error::Forbidden(format!(
            "`{}` is not an approver of this bundle",
            p.name
        )))
    }
}

/// A form posted from another origin is refused (browsers send `Origin` on every POST).
fn same_origin(app: &Shared, headers: &HeaderMap) -> Result<(), Error> {
    match headers.get("origin").map(|o| o.to_str()) {
        None => Ok(()),
        Some(Ok(origin)) if origin == app.origin() => Ok(()),
        Some(_) => Err(Error::Forbidden(
            "a form posted from another site is refused".into(),
        )),
    }
}

/// A form post: from this origin, with the person's CSRF token.
fn check_post(app: &Shared, headers: &HeaderMap, p: &Person, token: &str) -> Result<(), Error> {
    same_origin(app, headers)?;
    if !constant_eq(&p.csrf, token) {
        return Err(Error::Forbidden(
            "the form's CSRF token is missing or wrong: reload the page".into(),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    csrf: String,
}

async fn login_page(State(app): State<Shared>) -> Result<Response, PageError> {
    let token = random_token()?;
    let body = format!(
        "<h1>Sign in</h1><form method=\"post\" action=\"/login\" class=\"login\"><label>Approver <input name=\"name\" id=\"name\" autocomplete=\"username\" required></label><label>Password <input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label><input type=\"hidden\" name=\"csrf\" value=\"{token}\"><button type=\"submit\" id=\"sign-in\">Sign in</button></form>"
    );
    let mut r = respond(page("scopegate · sign in", None, &body));
    set_cookie(&mut r, &app, login_cookie(&app), &token, 600);
    Ok(r)
}

fn set_cookie(r: &mut Response, app: &Shared, name: &str, value: &str, max_age: i64) {
    let secure = if app.secure_cookies() { "; Secure" } else { "" };
    if let Ok(v) =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
            .parse()
    {
        r.headers_mut().append("set-cookie", v);
    }
}

async fn login(
    State(app): State<Shared>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    same_origin(&app, &headers)?;
    let expected = cookie(&headers, login_cookie(&app)).unwrap_or_default();
    if expected.is_empty() || !constant_eq(expected, &f.csrf) {
        return Err(Error::Forbidden(
            "the sign-in form's CSRF token is missing or wrong: reload the page".into(),
        )
        .into());
    }
    if !approval::valid_label(&f.name) || f.password.len() > 1024 {
        return Err(Error::BadRequest("an approver name and a password".into()).into());
    }
    let peer_s = peer.0.map(|ip| ip.to_string()).unwrap_or_default();
    let now = app.now();
    let (pair, by_peer, by_name) =
        store::failures(&app.db, &f.name, &peer_s, now - FAILURE_WINDOW_SECS).await?;
    if pair >= FAILURES_PER_PAIR || by_peer >= FAILURES_PER_PEER || by_name >= FAILURES_PER_NAME {
        return Err(Error::RateLimited.into());
    }
    // Counted as failed until the password is checked: parallel guesses count too.
    store::attempt(&app.db, &f.name, &peer_s, now, FAILURE_WINDOW_SECS).await?;
    let hash = store::password_hash(&app.db, &f.name).await?;
    let known = hash.is_some();
    let ok = crate::password::verify(hash, f.password).await;
    if !ok {
        // An unknown name is not logged: it may be a password typed in the wrong field.
        eprintln!(
            "scopegate-approver: failed sign-in for {} from {peer_s}",
            if known {
                format!("`{}`", f.name)
            } else {
                "an unknown account".to_string()
            }
        );
        let mut r = respond(page(
            "scopegate · sign in",
            None,
            "<h1>Sign in</h1><p class=\"refused\">Wrong approver name or password.</p><p><a href=\"/login\">Try again</a></p>",
        ));
        *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
        return Ok(r);
    }
    store::succeeded(&app.db, &f.name, &peer_s).await?;
    let id = random_token()?;
    let csrf = random_token()?;
    store::create_session(
        &app.db,
        &hex(&sha256(id.as_bytes())),
        &f.name,
        &csrf,
        now + app.session_ttl_secs,
    )
    .await?;
    let mut r = Redirect::to("/").into_response();
    set_cookie(
        &mut r,
        &app,
        session_cookie(&app),
        &id,
        app.session_ttl_secs,
    );
    set_cookie(&mut r, &app, login_cookie(&app), "", 0);
    Ok(r)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(app): State<Shared>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let p = person(&app, &headers, &peer).await?;
    check_post(&app, &headers, &p, &f.csrf)?;
    if let Some(id) = cookie(&headers, session_cookie(&app)) {
        store::end_session(&app.db, &hex(&sha256(id.as_bytes())), app.now()).await?;
    }
    let mut r = Redirect::to("/login").into_response();
    set_cookie(&mut r, &app, session_cookie(&app), "", 0);
    Ok(r)
}

/// What the gateway signed in a challenge, as recorded.
fn claims(app: &Shared, c: &store::Challenge) -> Option<approval::ChallengeClaims> {
    approval::open_challenge(&app.gateway, &c.signed).ok()
}

/// The signed operations of a challenge, as recorded.
fn operations(app: &Shared, c: &store::Challenge) -> Vec<Value> {
    claims(app, c).map(|c| c.operations).unwrap_or_default()
}

fn op_line(op: &Value) -> String {
    let s = |k: &str| op.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut line = format!("{} {} {}", s("action"), s("service"), s("resource"));
    if let Some(records) = op.get("records").and_then(Value::as_array) {
        let r: Vec<String> = records
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        let _ = write!(line, " [{}]", r.join(", "));
    }
    line
}

fn when(secs: i64) -> String {
    format_rfc3339_millis(secs.saturating_mul(1000))
}

fn state_badge(state: &str) -> String {
    format!("<span class=\"state {0}\">{0}</span>", esc(state))
}

async fn pending(
    State(app): State<Shared>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let p = person(&app, &headers, &peer).await?;
    let now = app.now();
    let list = store::pending(&app.db, now).await?;
    let mut body = String::from("<h1>Waiting for approval</h1>");
    if list.is_empty() {
        body.push_str("<p id=\"empty\">Nothing is waiting.</p>");
    } else {
        body.push_str("<table id=\"pending\"><tr><th>Asked</th><th>Key</th><th>What</th><th>Approvals</th><th>Expiry</th></tr>");
        for c in &list {
            let decisions = store::decisions(&app.db, &c.id).await?;
            let ops: Vec<String> = operations(&app, c).iter().map(op_line).collect();
            let _ = write!(
                body,
                "<tr class=\"challenge\"><td>{}</td><td><code>{}</code></td><td><a href=\"/c/{}\">{}</a></td><td>{}</td><td><span data-expires=\"{}\">until {}</span></td></tr>",
                esc(&when(c.created_at)),
                esc(&c.key_id),
                esc(&c.digest),
                esc(&ops.join("; ")),
                esc(progress(c, &decisions).get("text").and_then(Value::as_str).unwrap_or_default()),
                c.expires_at,
                esc(&when(c.expires_at)),
            );
        }
        body.push_str("</table>");
    }
    Ok(respond(page(
        "scopegate · pending",
        Some((&p.name, &p.csrf)),
        &body,
    )))
}

async fn detail(
    State(app): State<Shared>,
    Path(digest): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let p = person(&app, &headers, &peer).await?;
    let digest = digest_param(&digest)?;
    let c = store::current(&app.db, &digest)
        .await?
        .ok_or_else(|| Error::NotFound("no such challenge (the agent has not posted it)".into()))?;
    let decisions = store::decisions(&app.db, &c.id).await?;
    let now = app.now();
    let state = c.state_at(now);
    let signed = claims(&app, &c);
    let ops = signed
        .as_ref()
        .map(|s| s.operations.clone())
        .unwrap_or_default();
    let kept: Value = serde_json::from_str(&c.answer).unwrap_or(Value::Null);
    let role = app
        .role_of(&c.key_id)
        .unwrap_or_else(|| "(not in this bundle)".into());
    let given = progress(&c, &decisions);
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Approve this request?</h1><p><span id=\"state\">{}</span> <span id=\"progress\">{} approvals</span> · <span data-expires=\"{}\">until {}</span></p>",
        state_badge(state),
        esc(given.get("text").and_then(Value::as_str).unwrap_or_default()),
        c.expires_at,
        esc(&when(c.expires_at))
    );
    let _ = write!(
        b,
        "<table class=\"facts\"><tr><th>Key</th><td><code id=\"key\">{}</code></td></tr><tr><th>Role</th><td>{}</td></tr><tr><th>Environment</th><td>{}</td></tr><tr><th>Asked at</th><td>{}</td></tr><tr><th>Approvals needed</th><td>{}</td></tr><tr><th>Request digest</th><td><code>sha256:{}</code></td></tr><tr><th>Rule</th><td><code id=\"rule\">{}</code></td></tr><tr><th>Reason</th><td>{}</td></tr></table>",
        esc(&c.key_id),
        esc(&role),
        esc(&c.environment),
        esc(&when(c.created_at)),
        c.needed,
        esc(&c.digest),
        esc(signed.as_ref().map_or("", |s| s.rule.as_str())),
        esc(signed.as_ref().map_or("", |s| s.reason.as_str())),
    );
    b.push_str("<h2>What it does</h2><table id=\"operations\"><tr><th>Action</th><th>Service</th><th>Resource</th><th>Scope</th><th>Records</th><th>Sets</th></tr>");
    for op in &ops {
        let s = |k: &str| op.get(k).and_then(Value::as_str).unwrap_or_default();
        let list = |k: &str| {
            op.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let action = s("action");
        let class = if matches!(action, "delete" | "admin" | "write") {
            " class=\"destructive\""
        } else {
            ""
        };
        let _ = write!(
            b,
            "<tr class=\"operation\"><td{class}>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            esc(action),
            esc(s("service")),
            esc(s("resource")),
            esc(s("scope")),
            esc(&list("records")),
            esc(&list("sets"))
        );
    }
    b.push_str("</table>");
    let request = kept.get("request").cloned().unwrap_or(Value::Null);
    let text = |k: &str| request.get(k).and_then(Value::as_str).unwrap_or_default();
    // The body as sent, byte for byte (escaped): re-serialising it could round a number or
    // merge a duplicated member — not what the upstream reads.
    let body = text("body");
    let pretty = body.to_string();
    let _ = write!(
        b,
        "<h2>The request, as the agent sent it</h2><pre id=\"request\">{} {}\n\n{}</pre>",
        esc(text("method")),
        esc(text("target")),
        esc_block(&pretty)
    );
    if let Some(n) = request.get("body_bytes") {
        let _ = write!(
            b,
            "<p class=\"note\">The first {} of {} bytes are shown; the digest binds all of them.</p>",
            approval::SHOWN_BODY_BYTES,
            esc(&n.to_string())
        );
    }
    // For SQL and GraphQL, the statement or document itself, unescaped from its JSON.
    if let Some(q) = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("query").and_then(Value::as_str).map(str::to_string))
    {
        let _ = write!(
            b,
            "<h3>Statement / document</h3><pre id=\"statement\">{}</pre>",
            esc_block(&q)
        );
    }
    let reach = app
        .with_policy(|policy| {
            scopegate_engine::explain::explain(
                &app.bundle,
                policy,
                &app.universe,
                Some(&c.key_id),
                None,
            )
        })
        .map(|r| scopegate_engine::explain::render_table(&r))
        .unwrap_or_else(|e| e);
    let _ = write!(
        b,
        "<h2>Blast radius of this key</h2><p class=\"note\">What <code>scopegate explain --key</code> reports for it: everything the key can do, with and without approval.</p><pre id=\"blast-radius\">{}</pre>",
        esc_block(&reach)
    );
    if !decisions.is_empty() {
        b.push_str("<h2>Decisions</h2><table id=\"decisions\"><tr><th>Approver</th><th>Decision</th><th>When</th><th>Comment</th></tr>");
        for d in &decisions {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.approver),
                esc(&d.verdict),
                esc(&when(d.at)),
                esc(&d.comment)
            );
        }
        b.push_str("</table>");
    }
    let earlier = store::earlier(&app.db, &c.digest, &c.id).await?;
    if !earlier.is_empty() {
        b.push_str("<h2>Asked before</h2><p class=\"note\">The same request (same digest) was challenged before:</p><table id=\"earlier\"><tr><th>Asked</th><th>Outcome</th><th>Decisions</th></tr>");
        for (e, ds) in &earlier {
            let who: Vec<String> = ds
                .iter()
                .map(|d| format!("{} {} “{}”", d.approver, d.verdict, d.comment))
                .collect();
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&when(e.created_at)),
                state_badge(e.state_at(now)),
                esc_block(&who.join("\n"))
            );
        }
        b.push_str("</table>");
    }
    let decided = decisions.iter().any(|d| d.approver == p.name);
    let listed = app.approvers.iter().any(|a| a.name == p.name);
    let can_sign = app.keys.contains_key(&p.name);
    if state != "pending" {
        let _ = write!(
            b,
            "<p class=\"note\">This challenge is {}: nothing more to decide.</p>",
            esc(state)
        );
    } else if decided {
        b.push_str("<p class=\"note\" id=\"decided\">You have decided on this challenge.</p>");
    } else if !listed {
        b.push_str("<p class=\"refused\">You are not an approver of this bundle.</p>");
    } else if !can_sign {
        b.push_str("<p class=\"refused\">The inbox holds no signing key for you: approve with <code>scopegate approve --key-file</code>.</p>");
    } else {
        let _ = write!(
            b,
            "<form method=\"post\" class=\"decide\" action=\"/c/{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"round\" value=\"{}\"><label>Comment (kept with your decision)<br><textarea name=\"comment\" id=\"comment\" maxlength=\"1000\"></textarea></label><p><button type=\"submit\" name=\"verdict\" value=\"approve\" class=\"approve\" id=\"approve\">Approve as {}</button><button type=\"submit\" name=\"verdict\" value=\"deny\" class=\"deny\" id=\"deny\">Deny</button></p><p class=\"note\">Approving signs a token with your key for this exact request, once.</p></form>",
            esc(&c.digest),
            esc(&p.csrf),
            esc(&c.id),
            esc(&p.name)
        );
    }
    Ok(respond(page(
        "scopegate · approve?",
        Some((&p.name, &p.csrf)),
        &b,
    )))
}

#[derive(Deserialize)]
struct DecideForm {
    csrf: String,
    round: String,
    verdict: String,
    #[serde(default)]
    comment: String,
}

async fn decide(
    State(app): State<Shared>,
    Path(digest): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<DecideForm>,
) -> Result<Response, PageError> {
    let p = person(&app, &headers, &peer).await?;
    check_post(&app, &headers, &p, &f.csrf)?;
    let digest = digest_param(&digest)?;
    let c = store::current(&app.db, &digest)
        .await?
        .ok_or_else(|| Error::NotFound("no such challenge".into()))?;
    if c.id != f.round {
        return Err(Error::Conflict(
            "the request was challenged again since this page was shown: reload it".into(),
        )
        .into());
    }
    if f.comment.chars().count() > 1000 {
        return Err(Error::BadRequest("a comment of at most 1000 characters".into()).into());
    }
    let now = app.now();
    let token = match f.verdict.as_str() {
        "deny" => None,
        "approve" => {
            let key = app
                .keys
                .get(&p.name)
                .ok_or_else(|| Error::Forbidden("the inbox holds no signing key for you".into()))?;
            if !app
                .approvers
                .iter()
                .any(|a| a.name == p.name && a.key == key.public())
            {
                return Err(
                    Error::Forbidden("you are not an approver of this bundle".into()).into(),
                );
            }
            let exp = now.saturating_add(app.token_ttl_secs);
            Some(approval::sign_approval(
                key,
                &approval::Approval {
                    v: 2,
                    challenge: c.signed.clone(),
                    approver: p.name.clone(),
                    iat: now,
                    exp,
                    nonce: random_token()?,
                },
            ))
        }
        _ => return Err(Error::BadRequest("approve or deny".into()).into()),
    };
    if f.verdict == "deny" && !app.approvers.iter().any(|a| a.name == p.name) {
        return Err(Error::Forbidden("you are not an approver of this bundle".into()).into());
    }
    let d = store::Decision {
        approver: p.name.clone(),
        verdict: f.verdict.clone(),
        comment: f.comment.clone(),
        token,
        at: now,
    };
    if !store::decide(&app.db, &c.id, &d, now).await? {
        return Err(Error::Conflict(
            "this challenge is no longer pending, has expired, or you already decided".into(),
        )
        .into());
    }
    eprintln!(
        "scopegate-approver: {} {} challenge sha256:{} of key `{}`",
        approval::printable(&p.name),
        if f.verdict == "deny" {
            "denied"
        } else {
            "approved"
        },
        c.digest,
        approval::printable(&c.key_id)
    );
    Ok(Redirect::to(&format!("/c/{}", c.digest)).into_response())
}

async fn history(
    State(app): State<Shared>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let p = person(&app, &headers, &peer).await?;
    let now = app.now();
    let list = store::history(&app.db, 500).await?;
    let mut b = String::from("<h1>History</h1><table id=\"history\"><tr><th>Asked</th><th>Key</th><th>What</th><th>Outcome</th><th>Who</th><th>Tokens collected</th></tr>");
    for c in &list {
        let decisions = store::decisions(&app.db, &c.id).await?;
        let who: Vec<String> = decisions
            .iter()
            .map(|d| {
                let comment = if d.comment.is_empty() {
                    String::new()
                } else {
                    format!(" “{}”", d.comment)
                };
                format!("{} {} at {}{comment}", d.approver, d.verdict, when(d.at))
            })
            .collect();
        let collected = c.collected_at.map_or_else(
            || {
                if c.state == "approved" {
                    "not yet".to_string()
                } else {
                    "—".to_string()
                }
            },
            when,
        );
        let ops: Vec<String> = operations(&app, c).iter().map(op_line).collect();
        let _ = write!(
            b,
            "<tr><td>{}</td><td><code>{}</code></td><td><a href=\"/c/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&when(c.created_at)),
            esc(&c.key_id),
            esc(&c.digest),
            esc(&ops.join("; ")),
            state_badge(c.state_at(now)),
            esc_block(&who.join("\n")),
            esc(&collected)
        );
    }
    b.push_str("</table><p class=\"note\">Whether the gateway then let the request through is in its audit log (the approval names the approvers).</p>");
    Ok(respond(page(
        "scopegate · history",
        Some((&p.name, &p.csrf)),
        &b,
    )))
}
