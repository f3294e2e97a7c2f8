//! Password hashing with argon2id, off the async threads and behind a small semaphore, so a login
//! flood queues instead of eating memory (each hash takes 19 MiB).
//!
//! Hashes run on a fixed set of threads (as many as the semaphore admits), so at most that many
//! 19 MiB buffers exist at once and the allocator reuses them.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use tokio::sync::Semaphore;

use crate::domain::Password;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    jobs: SyncSender<Job>,
}

/// A real hash (same parameters as ours) of a random password nobody knows, made once and kept in
/// the source: verifying against it makes an unknown username cost the same time as a wrong
/// password, without hashing at start (which took ~40 ms and left a 19 MiB buffer behind).
/// Knowing it gives nothing: a dummy verification is never a success.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$OHPMA6S2JTxdaW+1HkhMZA$K47DKCkwtD7Vvp2eVUbY2cuHv4O1zeZEotqvZwrnrAM";

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

/// argon2id with the library defaults: m=19 MiB, t=2, p=1 (the OWASP minimum).
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// Runs `f` on one of the hashing threads and waits for its result.
async fn on_worker<T: Send + 'static>(
    jobs: &SyncSender<Job>,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    // The semaphore admits at most as many jobs as the queue holds, so there is always room.
    jobs.try_send(job)
        .map_err(|_| anyhow::anyhow!("hashing queue full or stopped"))?;
    rx.await.context("hashing thread")
}

fn start_workers(n: usize) -> anyhow::Result<SyncSender<Job>> {
    let (tx, rx) = sync_channel::<Job>(n);
    let rx: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                loop {
                    // Ends when every Hasher (every sender) is gone.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })
            .context("starting a hashing thread")?;
    }
    Ok(tx)
}

impl Hasher {
    /// A hasher running at most `concurrency` hashes at once.
    pub async fn new(concurrency: usize) -> anyhow::Result<Hasher> {
        let concurrency = concurrency.max(1);
        let jobs = start_workers(concurrency)?;
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs,
        })
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let pw = password.expose().to_owned();
        on_worker(&self.jobs, move || hash_now(&pw)).await?
    }

    /// Verifies `password` against `phc`; with `None` it verifies against the dummy and fails, taking
    /// the same time.
    pub async fn verify(&self, password: &Password, phc: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let known = phc.is_some();
        let phc = phc.unwrap_or(DUMMY).to_owned();
        let pw = password.expose().to_owned();
        let ok = on_worker(&self.jobs, move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("bad hash: {e}"))?;
            Ok::<_, anyhow::Error>(argon2().verify_password(pw.as_bytes(), &parsed).is_ok())
        })
        .await??;
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
    async fn hashes_verify_and_the_dummy_never_matches() -> anyhow::Result<()> {
        let h = Hasher::new(1).await?;
        let pw =
            Password::parse_new("p", "correct horse".into(), &[]).map_err(anyhow::Error::msg)?;
        let phc = h.hash(&pw).await?;
        assert!(phc.starts_with("$argon2id$"));
        assert!(h.verify(&pw, Some(&phc)).await?);
        let wrong =
            Password::parse_new("p", "wrong horse".into(), &[]).map_err(anyhow::Error::msg)?;
        assert!(!h.verify(&wrong, Some(&phc)).await?);
        assert!(!h.verify(&pw, None).await?);
        // The dummy has the parameters of a real hash, so it costs the same.
        let dummy = PasswordHash::new(DUMMY).map_err(|e| anyhow::anyhow!("{e}"))?;
        let real = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.algorithm, real.algorithm);
        Ok(())
    }
}
