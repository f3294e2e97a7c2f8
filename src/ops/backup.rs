//! `parley backup FILE`: a consistent copy of a SQLite instance, taken while the server runs.
//!
//! `VACUUM INTO` reads the database inside one read transaction, so the copy is exactly the
//! database as of one commit: every write acknowledged before the backup started is in it, none
//! half. In WAL mode readers do not block the writer, so the server keeps serving meanwhile. The
//! copy is written to a temporary name beside FILE, synced, checked, then renamed: FILE either
//! does not exist or is a whole, valid database.
//!
//! Attachments: the files that copy refers to are copied from the files directory into FILE's own
//! (`b.db` -> `b-files/`, where Parley started on `b.db` looks by default), also under a temporary
//! name first. Stored files never change once written, so copying them after the snapshot gives
//! exactly the snapshot's files, except any deleted meanwhile with their message (counted as
//! missing; their messages then show the file as gone).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::default_files_dir;
use crate::db::is_postgres_url;

/// What a backup produced.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The file written.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The attachments directory written beside it.
    pub files_dir: PathBuf,
    /// Attachment files copied (thumbnails included).
    pub files: u64,
    /// Attachment files the snapshot refers to that were deleted before they could be copied.
    pub missing: u64,
}

/// Writes a consistent copy of the SQLite database at `database_url` to `file` (which must not
/// exist), and the attachments it refers to from `files_dir` into `file`'s own files directory.
pub async fn backup(
    database_url: &str,
    file: &Path,
    files_dir: &Path,
) -> anyhow::Result<BackupReport> {
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
    let files_target = default_files_dir(&format!("sqlite://{}", file.display()));
    if files_target.exists() {
        bail!(
            "{} exists; choose a new file name (the attachments go there)",
            files_target.display()
        );
    }
    let files_partial = dir.join(format!(".{name}.files-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&files_partial);

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
        let keys = attachment_keys(&partial).await?;
        let (files, missing) = copy_files(files_dir, &files_partial, &keys)
            .with_context(|| format!("copying attachments from {}", files_dir.display()))?;
        // Durable before it gets its name: a crash leaves no half-written FILE.
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&files_partial, &files_target)?;
        std::fs::rename(&partial, file)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        anyhow::Ok((files, missing))
    }
    .await;
    let (files, missing) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_dir_all(&files_partial);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(file)?.len();
    Ok(BackupReport {
        file: file.to_path_buf(),
        bytes,
        files_dir: files_target,
        files,
        missing,
    })
}

/// The storage keys of the attachments in the copy (none before the attachments migration).
async fn attachment_keys(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut c = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .disable_statement_logging()
        .connect()
        .await?;
    let has_table: bool = sqlx::query_scalar(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'attachments'",
    )
    .fetch_one(&mut c)
    .await?;
    let keys = if has_table {
        sqlx::query_scalar("SELECT storage_key FROM attachments ORDER BY id")
            .fetch_all(&mut c)
            .await?
    } else {
        Vec::new()
    };
    c.close().await?;
    Ok(keys)
}

/// Copies each key's file and thumbnail from `from` into the new directory `to`, synced.
/// Returns (files copied, files missing).
fn copy_files(from: &Path, to: &Path, keys: &[String]) -> anyhow::Result<(u64, u64)> {
    std::fs::create_dir_all(to)?;
    let (mut copied, mut missing) = (0, 0);
    for key in keys {
        // Keys are ours (hex); a row that says otherwise names no file here.
        if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            missing += 1;
            continue;
        }
        for (name, required) in [(key.clone(), true), (format!("{key}.thumb"), false)] {
            let target = to.join(&name);
            match std::fs::copy(from.join(&name), &target) {
                Ok(_) => {
                    std::fs::File::open(&target)?.sync_all()?;
                    copied += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if required {
                        missing += 1;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Ok(d) = std::fs::File::open(to) {
        let _ = d.sync_all();
    }
    Ok((copied, missing))
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
