//! Account passwords: Argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1),
//! in the PHC string format; verified off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// At most this many Argon2 checks at once (each takes 19 MiB and a core for ~50 ms):
/// a flood of sign-ins queues instead of exhausting memory.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The hash an unknown account is checked against, computed once.
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Whether `password` matches `stored`; an unknown account is checked against a dummy
/// hash, so it takes as long as a wrong password.
pub async fn verify(stored: Option<String>, password: String) -> bool {
    let Ok(_permit) = CHECKS.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = match stored {
            Some(s) => s,
            None => DUMMY
                .get_or_init(|| hash("not an account").unwrap_or_default())
                .clone(),
        };
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        matches && known
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn argon2id_round_trip() {
        let h = super::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify(Some(h.clone()), "correct horse".into()).await);
        assert!(!super::verify(Some(h), "wrong".into()).await);
        assert!(!super::verify(None, "not an account".into()).await);
    }
}
