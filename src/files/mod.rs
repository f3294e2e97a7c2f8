//! Attachment storage: the bytes of uploaded files on disk, in one directory, each under a random
//! key (never the name the user gave). The database describes them (`db::attachments`); this module
//! only writes, reads and removes bytes.
//!
//! An upload is streamed into `tmp/` and only renamed to its key once it is whole and processed
//! ([`images`]). Until the message that holds it is committed, every file written for it is owned
//! by a [`Doomed`] guard that deletes it when dropped: a client that disconnects, a limit, a bad
//! field or a failed commit leaves nothing behind. Files of deleted messages are removed after the
//! commit; what a crash leaves between the two is removed by [`Files::sweep`] at start-up.

pub mod images;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::db::{self, Db};

/// Images processed at once (decoding takes memory, up to [`images::MAX_DECODE_BYTES`] each).
const IMAGE_WORKERS: usize = 2;

/// Files younger than this are never swept: another node may be about to commit them.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(3600);

/// The attachments directory.
#[derive(Debug)]
pub struct Files {
    dir: PathBuf,
    tmp: PathBuf,
    images: Arc<Semaphore>,
}

/// A file being written or not yet committed: deleted when dropped, unless [`Doomed::keep`] was
/// called.
#[derive(Debug, Default)]
pub struct Doomed {
    paths: Vec<PathBuf>,
}

impl Doomed {
    /// Guards `path` too.
    pub fn add(&mut self, path: PathBuf) {
        self.paths.push(path);
    }

    /// Takes over another guard's files.
    pub fn absorb(&mut self, mut other: Doomed) {
        self.paths.append(&mut other.paths);
    }

    /// The file is committed (or gone): do not delete it.
    pub fn keep(mut self) {
        self.paths.clear();
    }

    fn rename(&mut self, from: &Path, to: PathBuf) {
        if let Some(p) = self.paths.iter_mut().find(|p| p.as_path() == from) {
            *p = to;
        }
    }
}

impl Drop for Doomed {
    fn drop(&mut self) {
        // Synchronous on purpose: a drop cannot await, and unlinking is quick.
        for p in &self.paths {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %p.display(), error = %e, "could not remove an unfinished upload");
            }
        }
    }
}

/// An upload written to a temporary file.
pub struct TempUpload {
    /// Where it is.
    path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its first bytes (for recognising images).
    head: Vec<u8>,
    guard: Doomed,
}

/// A file written to disk under its key, for an attachment row.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The random name on disk.
    pub key: String,
    /// The name as uploaded (cleaned).
    pub name: String,
    /// Bytes on disk.
    pub size: u64,
    /// An image type when it was decoded and re-encoded as that image; None: a download.
    pub content_type: Option<&'static str>,
    /// The thumbnail: type, width, height.
    pub thumb: Option<(&'static str, u32, u32)>,
}

/// An upload being written: feed it chunks, then [`Writer::finish`].
pub struct Writer {
    file: tokio::fs::File,
    upload: TempUpload,
}

impl Writer {
    /// Appends a chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        if self.upload.head.len() < 32 {
            let take = (32 - self.upload.head.len()).min(chunk.len());
            self.upload.head.extend_from_slice(&chunk[..take]);
        }
        self.file.write_all(chunk).await?;
        self.upload.size += chunk.len() as u64;
        Ok(())
    }

    /// Flushes and closes the file.
    pub async fn finish(mut self) -> std::io::Result<TempUpload> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(self.upload)
    }
}

/// A random key: 128 bits, hex.
fn new_key() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keys are ours (hex); anything else never reaches the file system.
fn valid_key(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Files {
    /// Opens (creating) the directory and its `tmp/`.
    pub fn open(dir: &Path) -> anyhow::Result<Files> {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("creating the attachments directory {}", tmp.display()))?;
        Ok(Files {
            dir: dir.to_path_buf(),
            tmp,
            images: Arc::new(Semaphore::new(IMAGE_WORKERS)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a stored file is.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        valid_key(key).then(|| self.dir.join(key))
    }

    /// Where a stored file's thumbnail is.
    pub fn thumb_path(&self, key: &str) -> Option<PathBuf> {
        valid_key(key).then(|| self.dir.join(format!("{key}.thumb")))
    }

    /// Starts an upload in `tmp/`.
    pub async fn create(&self) -> std::io::Result<Writer> {
        let path = self.tmp.join(format!("{}.part", new_key()));
        let file = tokio::fs::File::create(&path).await?;
        let mut guard = Doomed::default();
        guard.add(path.clone());
        Ok(Writer {
            file,
            upload: TempUpload {
                path,
                size: 0,
                head: Vec::new(),
                guard,
            },
        })
    }

    /// Moves a whole upload under its key: images (recognised by their bytes, not by the name or
    /// the type the client claims) are decoded, turned upright and re-encoded without their
    /// metadata, with a thumbnail; what does not decode is kept as a plain download. The returned
    /// guard owns the files until the message is committed.
    pub async fn store(
        &self,
        upload: TempUpload,
        name: String,
    ) -> anyhow::Result<(Stored, Doomed)> {
        let TempUpload {
            path,
            size,
            head,
            mut guard,
        } = upload;
        let key = new_key();
        let final_path = self.dir.join(&key);
        let mut stored = Stored {
            key: key.clone(),
            name,
            size,
            content_type: None,
            thumb: None,
        };
        if let Some(format) = images::recognise(&head) {
            let full = self.tmp.join(format!("{key}.full"));
            let thumb = self.tmp.join(format!("{key}.thumb"));
            guard.add(full.clone());
            guard.add(thumb.clone());
            let permit = self.images.clone().acquire_owned().await?;
            let (src, f, t) = (path.clone(), full.clone(), thumb.clone());
            let span = tracing::Span::current();
            let done = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                span.in_scope(|| images::process(&src, format, &f, &t))
            })
            .await
            .context("image worker")?;
            match done {
                Ok(p) => {
                    let target_thumb = self.dir.join(format!("{key}.thumb"));
                    tokio::fs::rename(&thumb, &target_thumb).await?;
                    guard.rename(&thumb, target_thumb);
                    let source = if p.reencoded { &full } else { &path };
                    tokio::fs::rename(source, &final_path).await?;
                    guard.rename(source, final_path.clone());
                    if p.reencoded {
                        // The upload as sent (with its metadata) is not kept.
                        let _ = tokio::fs::remove_file(&path).await;
                    }
                    stored.size = tokio::fs::metadata(&final_path).await?.len();
                    stored.content_type = Some(p.content_type);
                    stored.thumb = Some((p.thumb_type, p.thumb_width, p.thumb_height));
                    return Ok((stored, guard));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "an upload that looked like an image did not decode: kept as a file");
                }
            }
        }
        tokio::fs::rename(&path, &final_path).await?;
        guard.rename(&path, final_path);
        Ok((stored, guard))
    }

    /// Removes stored files and their thumbnails (after the commit that deleted their rows).
    pub async fn remove(&self, keys: &[String]) {
        for key in keys {
            for p in [self.path(key), self.thumb_path(key)].into_iter().flatten() {
                if let Err(e) = tokio::fs::remove_file(&p).await
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %p.display(), error = %e, "could not remove an attachment");
                }
            }
        }
    }

    /// Removes what no row refers to and is older than an hour: uploads cut short by a crash,
    /// and files of messages deleted just before one. Returns how many files went.
    pub async fn sweep(&self, db: &Db) -> anyhow::Result<usize> {
        let (dir, tmp) = (self.dir.clone(), self.tmp.clone());
        let (stale_tmp, candidates) = tokio::task::spawn_blocking(move || {
            let old = |m: &std::fs::Metadata| {
                m.modified()
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > SWEEP_MIN_AGE)
            };
            let mut stale_tmp = Vec::new();
            for e in std::fs::read_dir(&tmp)?.flatten() {
                if e.metadata().is_ok_and(|m| m.is_file() && old(&m)) {
                    stale_tmp.push(e.path());
                }
            }
            let mut candidates = Vec::new();
            for e in std::fs::read_dir(&dir)?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(".thumb").unwrap_or(&name).to_owned();
                if valid_key(&key) && e.metadata().is_ok_and(|m| m.is_file() && old(&m)) {
                    candidates.push((key, e.path()));
                }
            }
            std::io::Result::Ok((stale_tmp, candidates))
        })
        .await??;
        let mut removed = 0;
        for p in stale_tmp {
            if tokio::fs::remove_file(&p).await.is_ok() {
                removed += 1;
            }
        }
        for batch in candidates.chunks(500) {
            let keys: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
            let known = {
                let mut rc = db.read().await?;
                db::attachments::existing_keys(&mut rc.conn(), &keys).await?
            };
            for (key, path) in batch {
                if !known.contains(key) && tokio::fs::remove_file(path).await.is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_and_nothing_else_reaches_the_disk() {
        let k = new_key();
        assert!(valid_key(&k));
        assert!(!valid_key("../../etc/passwd"));
        assert!(!valid_key(&format!("{}/", &k[..31])));
        let f = Files {
            dir: "/x".into(),
            tmp: "/x/tmp".into(),
            images: Arc::new(Semaphore::new(1)),
        };
        assert_eq!(f.path(&k), Some(PathBuf::from(format!("/x/{k}"))));
        assert_eq!(f.path("tmp"), None);
    }

    #[test]
    fn a_dropped_guard_deletes_and_a_kept_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"x").expect("write");
        std::fs::write(&b, b"x").expect("write");
        let mut g = Doomed::default();
        g.add(a.clone());
        drop(g);
        assert!(!a.exists());
        let mut g = Doomed::default();
        g.add(b.clone());
        g.keep();
        assert!(b.exists());
    }
}
