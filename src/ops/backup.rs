//! `parley backup FILE`: a consistent copy of a SQLite instance, taken while the server runs.
//!
//! `VACUUM INTO` reads the database inside one read transaction, so the copy is exactly the
//! database as of one commit: every write acknowledged before the backup started is in it, none
//! half. In WAL mode readers do not block the writer, so the server keeps serving meanwhile. The
//! copy is written to a temporary name beside FILE, synced, checked, then renamed: FILE either
//! does not exist or is a whole, valid database.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::db::is_postgres_url;

/// What a backup produced.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The file written.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Writes a consistent copy of the SQLite database at `database_url` to `file` (which must not
/// exist).
pub async fn backup(database_url: &str, file: &Path) -> anyhow::Result<BackupReport> {
    if is_postgres_url(database_url) {
        bail!(
            "parley backup copies SQLite databases; for PostgreSQL use pg_dump (see the README, Backups)"
        );
    }
    if file.exists() {
        bail!("{} exists; choose a new file name", file.display());
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        bail!("directory {} does not exist", dir.display());
    }
    let name = file
        .file_name()
        .context("the backup file needs a name")?
        .to_string_lossy()
        .into_owned();
    let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);

    // Not read-only: a read-only connection cannot read a WAL database whose server is down and
    // whose `-shm` file is gone. Nothing is written to the source.
    let opts = SqliteConnectOptions::from_str(database_url)
        .context("parsing the database URL")?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        .disable_statement_logging();
    let mut conn = opts
        .connect()
        .await
        .with_context(|| format!("opening {database_url} (does the file exist?)"))?;
    let target = partial
        .to_str()
        .context("the backup path must be valid UTF-8")?
        .to_owned();
    let result = async {
        sqlx::query("VACUUM INTO $1")
            .bind(&target)
            .execute(&mut conn)
            .await
            .context("VACUUM INTO")?;
        conn.close().await?;
        check(&partial).await?;
        // Durable before it gets its name: a crash leaves no half-written FILE.
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, file)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let bytes = std::fs::metadata(file)?.len();
    Ok(BackupReport {
        file: file.to_path_buf(),
        bytes,
    })
}

/// `PRAGMA quick_check` on the copy.
async fn check(path: &Path) -> anyhow::Result<()> {
    let mut c = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .disable_statement_logging()
        .connect()
        .await?;
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut c)
        .await?;
    c.close().await?;
    if verdict != "ok" {
        bail!("the copy failed its integrity check: {verdict}");
    }
    Ok(())
}
