//! Password hashing with argon2id, off the async threads and behind a small semaphore, so a login
//! flood queues instead of eating memory (each hash takes 19 MiB).

use std::sync::Arc;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verifying against it makes an unknown username cost the
    /// same time as a wrong password.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

/// argon2id with the library defaults: m=19 MiB, t=2, p=1 (the OWASP minimum).
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

impl Hasher {
    /// A hasher running at most `concurrency` hashes at once.
    pub async fn new(concurrency: usize) -> anyhow::Result<Hasher> {
        let random: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        };
        let dummy = tokio::task::spawn_blocking(move || hash_now(&random))
            .await
            .context("hashing task")??;
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let pw = password.expose().to_owned();
        tokio::task::spawn_blocking(move || hash_now(&pw))
            .await
            .context("hashing task")?
    }

    /// Verifies `password` against `phc`; with `None` it verifies against the dummy and fails, taking
    /// the same time.
    pub async fn verify(&self, password: &Password, phc: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let known = phc.is_some();
        let phc = phc
            .map(str::to_owned)
            .unwrap_or_else(|| self.dummy.to_string());
        let pw = password.expose().to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("bad hash: {e}"))?;
            Ok::<_, anyhow::Error>(argon2().verify_password(pw.as_bytes(), &parsed).is_ok())
        })
        .await
        .context("hashing task")??;
        Ok(ok && known)
    }
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_dummy_never_matches() {
        let h = Hasher::new(1).await.unwrap();
        let pw = Password::parse_new("p", "correct horse".into()).unwrap();
        let phc = h.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(h.verify(&pw, Some(&phc)).await.unwrap());
        let wrong = Password::parse_new("p", "wrong horse".into()).unwrap();
        assert!(!h.verify(&wrong, Some(&phc)).await.unwrap());
        assert!(!h.verify(&pw, None).await.unwrap());
    }
}
