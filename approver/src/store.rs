//! The inbox's state: challenges (one row per signed challenge), the current round per
//! request digest, each approver's decision with the token it signed, accounts, sessions
//! and failed sign-ins. SQLite (a file) or PostgreSQL, through the same queries: plain
//! SQL with `$n` parameters, each used once and in order (SQLite binds them by position).

use crate::error::Error;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS accounts (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL)",
    // One row per signed challenge (id: SHA-256 of the signed challenge).
    "CREATE TABLE IF NOT EXISTS challenges (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        key_id TEXT NOT NULL,
        environment TEXT NOT NULL,
        needed BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        signed TEXT NOT NULL,
        answer TEXT NOT NULL,
        state TEXT NOT NULL,
        collected_at BIGINT)",
    "CREATE INDEX IF NOT EXISTS challenges_created ON challenges (created_at)",
    // The challenge a request digest currently stands for (idempotence per digest).
    "CREATE TABLE IF NOT EXISTS rounds (
        digest TEXT PRIMARY KEY,
        challenge_id TEXT NOT NULL,
        expires_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS decisions (
        challenge_id TEXT NOT NULL,
        approver TEXT NOT NULL,
        verdict TEXT NOT NULL,
        comment TEXT NOT NULL,
        token TEXT,
        at BIGINT NOT NULL,
        PRIMARY KEY (challenge_id, approver))",
    "CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        csrf TEXT NOT NULL,
        expires_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS login_failures (
        name TEXT NOT NULL,
        peer TEXT NOT NULL,
        at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS login_failures_name ON login_failures (name, at)",
    "CREATE INDEX IF NOT EXISTS login_failures_peer ON login_failures (peer, at)",
    "CREATE INDEX IF NOT EXISTS challenges_key ON challenges (key_id, state, expires_at)",
];

/// A database URL: `sqlite://FILE` (created when missing) or `postgres://…`.
pub async fn open(url: &str) -> Result<AnyPool, Error> {
    sqlx::any::install_default_drivers();
    let url = match url.strip_prefix("sqlite://") {
        Some(rest) if !rest.contains('?') => format!("sqlite://{rest}?mode=rwc"),
        _ => url.to_string(),
    };
    let sqlite = url.starts_with("sqlite:");
    let pool = AnyPoolOptions::new()
        // SQLite: one writer at a time anyway; a single connection keeps it simple.
        .max_connections(if sqlite { 1 } else { 8 })
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&url)
        .await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    Ok(pool)
}

/// A challenge row.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: String,
    pub digest: String,
    pub key_id: String,
    pub environment: String,
    pub needed: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub signed: String,
    /// The gateway's answer as posted (the 428 body).
    pub answer: String,
    /// `pending`, `approved` or `denied` (expiry is computed).
    pub state: String,
    pub collected_at: Option<i64>,
}

impl Challenge {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Challenge {
            id: r.try_get("id")?,
            digest: r.try_get("digest")?,
            key_id: r.try_get("key_id")?,
            environment: r.try_get("environment")?,
            needed: r.try_get("needed")?,
            expires_at: r.try_get("expires_at")?,
            created_at: r.try_get("created_at")?,
            signed: r.try_get("signed")?,
            answer: r.try_get("answer")?,
            state: r.try_get("state")?,
            collected_at: r.try_get("collected_at")?,
        })
    }

    /// What a reader is told: `pending`, `approved`, `denied` or `expired`.
    pub fn state_at(&self, now: i64) -> &str {
        match self.state.as_str() {
            "pending" if self.expires_at < now => "expired",
            s => s,
        }
    }
}

const CHALLENGE_COLUMNS: &str = "id, digest, key_id, environment, needed, expires_at, created_at, signed, answer, state, collected_at";

/// A human's decision on a challenge.
#[derive(Debug, Clone)]
pub struct Decision {
    pub approver: String,
    pub verdict: String,
    pub comment: String,
    pub token: Option<String>,
    pub at: i64,
}

/// Records a posted challenge; the challenge the request digest stands for afterwards
/// (`created`: whether it is this one, new). A digest keeps its round while it is live —
/// unexpired and its tokens not collected — so posting again (the same challenge, or a
/// fresh one for the same request) returns it instead of asking humans twice.
pub async fn post(pool: &AnyPool, c: &Challenge, now: i64) -> Result<(Challenge, bool), Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO challenges ({CHALLENGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING"
    ))
    .bind(&c.id)
    .bind(&c.digest)
    .bind(&c.key_id)
    .bind(&c.environment)
    .bind(c.needed)
    .bind(c.expires_at)
    .bind(c.created_at)
    .bind(&c.signed)
    .bind(&c.answer)
    .bind(&c.state)
    .bind(c.collected_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query(
        "INSERT INTO rounds (digest, challenge_id, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (digest) DO UPDATE SET challenge_id = excluded.challenge_id, expires_at = excluded.expires_at
         WHERE rounds.expires_at < $4
            OR EXISTS (SELECT 1 FROM challenges d WHERE d.id = rounds.challenge_id AND d.collected_at IS NOT NULL)",
    )
    .bind(&c.digest)
    .bind(&c.id)
    .bind(c.expires_at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let current: String = sqlx::query("SELECT challenge_id FROM rounds WHERE digest = $1")
        .bind(&c.digest)
        .fetch_one(&mut *tx)
        .await?
        .try_get("challenge_id")?;
    let created = inserted && current == c.id;
    if inserted && current != c.id {
        // Another live round stands for this request: this challenge is not kept.
        sqlx::query("DELETE FROM challenges WHERE id = $1 AND state = 'pending' AND NOT EXISTS (SELECT 1 FROM decisions WHERE challenge_id = $2)")
            .bind(&c.id)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
    }
    let row = sqlx::query(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE id = $1"
    ))
    .bind(&current)
    .fetch_one(&mut *tx)
    .await?;
    let out = Challenge::from_row(&row)?;
    tx.commit().await?;
    Ok((out, created))
}

/// The challenge a request digest currently stands for.
pub async fn current(pool: &AnyPool, digest: &str) -> Result<Option<Challenge>, Error> {
    let row = sqlx::query(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE id = (SELECT challenge_id FROM rounds WHERE digest = $1)"
    ))
    .bind(digest)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(Challenge::from_row).transpose()?)
}

/// Challenges awaiting a decision and not expired, newest first.
pub async fn pending(pool: &AnyPool, now: i64) -> Result<Vec<Challenge>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE state = 'pending' AND expires_at >= $1 ORDER BY created_at DESC LIMIT 200"
    ))
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(Challenge::from_row)
        .collect::<Result<_, _>>()?)
}

/// Every challenge, newest first (the history page).
pub async fn history(pool: &AnyPool, limit: i64) -> Result<Vec<Challenge>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM challenges ORDER BY created_at DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(Challenge::from_row)
        .collect::<Result<_, _>>()?)
}

/// Earlier rounds for the same request (newest first), with their decisions: an approver
/// sees that it was denied before.
pub async fn earlier(
    pool: &AnyPool,
    digest: &str,
    except: &str,
) -> Result<Vec<(Challenge, Vec<Decision>)>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE digest = $1 AND id <> $2 ORDER BY created_at DESC LIMIT 20"
    ))
    .bind(digest)
    .bind(except)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let c = Challenge::from_row(r)?;
        let d = decisions(pool, &c.id).await?;
        out.push((c, d));
    }
    Ok(out)
}

/// How many challenges of a key await a decision.
pub async fn open_for_key(pool: &AnyPool, key_id: &str, now: i64) -> Result<i64, Error> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM challenges WHERE key_id = $1 AND state = 'pending' AND expires_at >= $2",
    )
    .bind(key_id)
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok(row.try_get("n")?)
}

pub async fn decisions(pool: &AnyPool, challenge: &str) -> Result<Vec<Decision>, Error> {
    let rows = sqlx::query(
        "SELECT approver, verdict, comment, token, at FROM decisions WHERE challenge_id = $1 ORDER BY at, approver",
    )
    .bind(challenge)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Decision {
                approver: r.try_get("approver")?,
                verdict: r.try_get("verdict")?,
                comment: r.try_get("comment")?,
                token: r.try_get("token")?,
                at: r.try_get("at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Error::from)
}

/// Records one approver's decision on a pending, unexpired challenge, then settles its
/// state: approved once `needed` different approvers approved, denied by any denial.
/// `false` when the challenge is no longer pending or this approver already decided.
pub async fn decide(
    pool: &AnyPool,
    challenge: &str,
    d: &Decision,
    now: i64,
) -> Result<bool, Error> {
    let mut tx = pool.begin().await?;
    // Takes the challenge's row first (a no-op update locks it in PostgreSQL; SQLite has
    // one writer): two approvers deciding at once are settled one after the other, each
    // seeing the other's decision.
    let live = sqlx::query(
        "UPDATE challenges SET state = state WHERE id = $1 AND state = 'pending' AND expires_at >= $2",
    )
    .bind(challenge)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if live != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    let inserted = sqlx::query(
        "INSERT INTO decisions (challenge_id, approver, verdict, comment, token, at)
         SELECT $1, $2, $3, $4, $5, $6
         WHERE EXISTS (SELECT 1 FROM challenges WHERE id = $7 AND state = 'pending' AND expires_at >= $8)
           AND NOT EXISTS (SELECT 1 FROM decisions WHERE challenge_id = $9 AND approver = $10)
         ON CONFLICT (challenge_id, approver) DO NOTHING",
    )
    .bind(challenge)
    .bind(&d.approver)
    .bind(&d.verdict)
    .bind(&d.comment)
    .bind(&d.token)
    .bind(d.at)
    .bind(challenge)
    .bind(now)
    .bind(challenge)
    .bind(&d.approver)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    if d.verdict == "deny" {
        sqlx::query("UPDATE challenges SET state = 'denied' WHERE id = $1 AND state = 'pending'")
            .bind(challenge)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(
            "UPDATE challenges SET state = 'approved' WHERE id = $1 AND state = 'pending'
             AND (SELECT COUNT(*) FROM decisions WHERE challenge_id = $2 AND verdict = 'approve') >= needed",
        )
        .bind(challenge)
        .bind(challenge)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The agent fetched the tokens: the round is done (a new challenge for the same request
/// starts a new one).
pub async fn collected(pool: &AnyPool, challenge: &str, now: i64) -> Result<(), Error> {
    sqlx::query("UPDATE challenges SET collected_at = $1 WHERE id = $2 AND collected_at IS NULL")
        .bind(now)
        .bind(challenge)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn add_account(pool: &AnyPool, name: &str, hash: &str, now: i64) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO accounts (name, password_hash, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(name)
    .bind(hash)
    .bind(now)
    .execute(pool)
    .await?;
    // A new password ends the account's sessions.
    sqlx::query("DELETE FROM sessions WHERE account = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn password_hash(pool: &AnyPool, name: &str) -> Result<Option<String>, Error> {
    let row = sqlx::query("SELECT password_hash FROM accounts WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("password_hash"))
        .transpose()?)
}

pub async fn accounts(pool: &AnyPool) -> Result<Vec<String>, Error> {
    let rows = sqlx::query("SELECT name FROM accounts ORDER BY name")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<_, _>>()?)
}

pub async fn create_session(
    pool: &AnyPool,
    id_hash: &str,
    account: &str,
    csrf: &str,
    expires_at: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, account, csrf, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(account)
    .bind(csrf)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// (account, CSRF token) of a live session.
pub async fn session(
    pool: &AnyPool,
    id_hash: &str,
    now: i64,
) -> Result<Option<(String, String)>, Error> {
    let row =
        sqlx::query("SELECT account, csrf FROM sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?;
    Ok(row
        .map(|r| -> Result<_, sqlx::Error> { Ok((r.try_get("account")?, r.try_get("csrf")?)) })
        .transpose()?)
}

pub async fn end_session(pool: &AnyPool, id_hash: &str, now: i64) -> Result<(), Error> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1 OR expires_at <= $2")
        .bind(id_hash)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// Counts a sign-in attempt as failed before its password is checked (so parallel
/// attempts cannot slip past the limit); `succeeded` takes it back. Old ones are pruned.
pub async fn attempt(
    pool: &AnyPool,
    name: &str,
    peer: &str,
    now: i64,
    window: i64,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(now - window)
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO login_failures (name, peer, at) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(peer)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn succeeded(pool: &AnyPool, name: &str, peer: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM login_failures WHERE name = $1 AND peer = $2")
        .bind(name)
        .bind(peer)
        .execute(pool)
        .await?;
    Ok(())
}

/// Failed sign-ins since `since`: (for this account from this address, from this
/// address, for this account from anywhere).
pub async fn failures(
    pool: &AnyPool,
    name: &str,
    peer: &str,
    since: i64,
) -> Result<(i64, i64, i64), Error> {
    let row = sqlx::query(
        "SELECT
            (SELECT COUNT(*) FROM login_failures WHERE name = $1 AND peer = $2 AND at >= $3) AS pair,
            (SELECT COUNT(*) FROM login_failures WHERE peer = $4 AND at >= $5) AS by_peer,
            (SELECT COUNT(*) FROM login_failures WHERE name = $6 AND at >= $7) AS by_name",
    )
    .bind(name)
    .bind(peer)
    .bind(since)
    .bind(peer)
    .bind(since)
    .bind(name)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok((
        row.try_get("pair")?,
        row.try_get("by_peer")?,
        row.try_get("by_name")?,
    ))
}
