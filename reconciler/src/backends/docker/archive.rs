//! A volume to a file and back, for dormant workspaces: [`export_volume`]
//! streams the volume's tar (through a helper that never runs) into a
//! gzip file, then reads the file back — its SHA-256 against the one
//! computed while writing, and every file inside against the live volume
//! (path, size, SHA-256) — before saying it is safe; [`import_volume`]
//! fills a fresh volume from such a file and compares the same way. The
//! file appears under its name only once complete (written beside it,
//! synced, renamed): a kill in the middle leaves a `.part` and the volume.
//!
//! [`export_volume`]: DockerBackend::export_volume
//! [`import_volume`]: DockerBackend::import_volume

use super::volumes::{Inventory, inventory_of};
use super::{DockerBackend, DockerError, Result};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    /// Size of the compressed file.
    pub bytes: u64,
    /// SHA-256 of the compressed file, hex.
    pub sha256: String,
    /// Regular files in it.
    pub files: usize,
}

/// Writes (or reads) through `inner`, hashing what passes.
struct Hashing<W> {
    inner: W,
    digest: ring::digest::Context,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes through to `inner` while the filesystem under `dir` keeps
/// `keep_free` bytes available, looked at before the first write and
/// then every [`KeepFree::EVERY`] bytes: an archive stops (its `.part`
/// removed, the volume left) rather than fill a disk the store or other
/// students may share.
struct KeepFree<W> {
    inner: W,
    dir: PathBuf,
    keep_free: u64,
    /// Bytes since the last look; starts full so the first write looks.
    since: u64,
    available: fn(&Path) -> std::io::Result<u64>,
}

impl<W> KeepFree<W> {
    const EVERY: u64 = 16 << 20;

    fn new(inner: W, dir: &Path, keep_free: u64) -> Self {
        KeepFree {
            inner,
            dir: dir.to_path_buf(),
            keep_free,
            since: Self::EVERY,
            available,
        }
    }
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`.
pub fn available(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

impl<W: Write> Write for KeepFree<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.since >= Self::EVERY {
            let free = (self.available)(&self.dir)?;
            // Room for what is asked of the next stretch, above the reserve.
            if free < self.keep_free.saturating_add(Self::EVERY) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "{} has {free} bytes free, and dormancy.keep_free keeps {}",
                        self.dir.display(),
                        self.keep_free
                    ),
                ));
            }
            self.since = 0;
        }
        let n = self.inner.write(buf)?;
        self.since += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The SHA-256 (hex) of the gzip tar at `path` and the [`Inventory`]
/// inside it, in one read of the file: the bytes the decoder takes are
/// hashed as they pass, then whatever it left (gzip's trailer).
fn read_back(path: &Path) -> std::io::Result<(String, Inventory)> {
    let mut hashing = Hashing {
        inner: std::io::BufReader::new(std::fs::File::open(path)?),
        digest: ring::digest::Context::new(&ring::digest::SHA256),
        bytes: 0,
    };
    let inventory = inventory_of(flate2::read::GzDecoder::new(&mut hashing))?;
    std::io::copy(&mut hashing, &mut std::io::sink())?;
    Ok((
        crate::base::secret::hex(hashing.digest.finish().as_ref()),
        inventory,
    ))
}

/// `<file>.part`: where the file is written until complete.
pub fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

impl DockerBackend {
    fn archive_error(volume: &str) -> impl Fn(String) -> DockerError + '_ {
        move |message| DockerError::Archive {
            volume: volume.to_string(),
            message,
        }
    }

    async fn drop_helper(&self, id: &str) {
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = self.docker.remove_container(id, Some(force)).await;
    }

    /// Exports `account`'s `volume` to the gzip tar `dest` and verifies it
    /// (see the module); `image` is preferred for the helper, else any
    /// image the host has. The volume is left as it is; on any failure the
    /// file is not left under its name.
    pub async fn export_volume(
        &self,
        account: &str,
        volume: &str,
        image: Option<&str>,
        dest: &Path,
        keep_free: u64,
    ) -> Result<Exported> {
        if !self.volume_owner_check(account, volume).await? {
            return Err(Self::archive_error(volume)(
                "no such volume of this account".into(),
            ));
        }
        let image = self.helper_image(image).await?;
        let helper = self.helper(account, volume, &image).await?;
        let out = self.export_through(&helper, volume, dest, keep_free).await;
        self.drop_helper(&helper).await;
        if out.is_err() {
            let _ = std::fs::remove_file(dest);
            let _ = std::fs::remove_file(part_of(dest));
        }
        out
    }

    async fn export_through(
        &self,
        helper: &str,
        volume: &str,
        dest: &Path,
        keep_free: u64,
    ) -> Result<Exported> {
        let fail = Self::archive_error(volume);
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(super::volumes::MOUNT)
            .build();
        let stream = self
            .docker
            .download_from_container(helper, Some(opts))
            .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
        let mut reader =
            tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let (part, dest_owned) = (part_of(dest), dest.to_path_buf());
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
            let file = std::fs::File::create(&part)?;
            let dir = part.parent().unwrap_or(Path::new("/"));
            let hashing = Hashing {
                inner: std::io::BufWriter::new(KeepFree::new(file, dir, keep_free)),
                digest: ring::digest::Context::new(&ring::digest::SHA256),
                bytes: 0,
            };
            let mut gz = flate2::write::GzEncoder::new(hashing, flate2::Compression::fast());
            std::io::copy(&mut reader, &mut gz)?;
            let mut hashing = gz.finish()?;
            hashing.flush()?;
            let file = hashing
                .inner
                .into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .inner;
            file.sync_all()?;
            std::fs::rename(&part, &dest_owned)?;
            if let Some(dir) = dest_owned.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok((
                hashing.bytes,
                crate::base::secret::hex(hashing.digest.finish().as_ref()),
            ))
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(format!("writing {}: {e}", dest.display())))?;
        let (bytes, sha256) = written;
        // Read back: the file as written, and every file in it as the
        // volume holds it.
        let path = dest.to_path_buf();
        let (again, listed) = tokio::task::spawn_blocking(move || read_back(&path))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("reading back {}: {e}", dest.display())))?;
        if again != sha256 {
            return Err(fail(format!(
                "{} reads back as {again}, written as {sha256}",
                dest.display()
            )));
        }
        let live = self.inventory(helper).await?;
        if live != listed {
            return Err(fail(format!(
                "{} holds {} file(s) that differ from the volume's {}",
                dest.display(),
                listed.len(),
                live.len()
            )));
        }
        Ok(Exported {
            bytes,
            sha256,
            files: listed.len(),
        })
    }

    /// Fills a fresh `volume` of `account` from the gzip tar `src` (which
    /// must still have `sha256`) and compares every file with it. An
    /// existing volume of the account by that name is replaced; another
    /// account's is refused.
    pub async fn import_volume(
        &self,
        account: &str,
        volume: &str,
        image: Option<&str>,
        src: &Path,
        sha256: &str,
    ) -> Result<usize> {
        let fail = Self::archive_error(volume);
        let path = src.to_path_buf();
        let (found, listed) = tokio::task::spawn_blocking(move || read_back(&path))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(format!("reading {}: {e}", src.display())))?;
        if found != sha256 {
            return Err(fail(format!(
                "{} has SHA-256 {found}, archived as {sha256}: not restored",
                src.display()
            )));
        }
        let image = self.helper_image(image).await?;
        self.fresh_volume(account, volume).await?;
        let helper = self.helper(account, volume, &image).await?;
        let out = async {
            let file = tokio::fs::File::open(src)
                .await
                .map_err(|e| fail(format!("opening {}: {e}", src.display())))?;
            // Decompressed on a blocking thread, streamed into the helper.
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
            let std_file = file.into_std().await;
            let pump = tokio::task::spawn_blocking(move || {
                let mut gz = flate2::read::GzDecoder::new(std::io::BufReader::new(std_file));
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match gz.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if tx
                                .blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n])))
                                .is_err()
                            {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            break;
                        }
                    }
                }
            });
            let body = tokio_stream_of(rx);
            let up = UploadToContainerOptionsBuilder::default().path("/").build();
            let uploaded = self
                .docker
                .upload_to_container(&helper, Some(up), bollard::body_try_stream(body))
                .await
                .map_err(Self::api("restore volume", volume));
            let _ = pump.await;
            uploaded?;
            let restored = self.inventory(&helper).await?;
            if restored != listed {
                return Err(fail(format!(
                    "the restored volume holds {} file(s) that differ from the archive's {}",
                    restored.len(),
                    listed.len()
                )));
            }
            Ok(listed.len())
        }
        .await;
        self.drop_helper(&helper).await;
        out
    }
}

/// The receiver as a stream (no extra crate for one adapter).
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The free space the fake filesystem reports (one test uses it).
    static FREE: AtomicU64 = AtomicU64::new(0);

    fn fake(_: &Path) -> std::io::Result<u64> {
        Ok(FREE.load(Ordering::SeqCst))
    }

    fn writer(keep_free: u64) -> KeepFree<Vec<u8>> {
        KeepFree {
            available: fake,
            ..KeepFree::new(Vec::new(), Path::new("/archive"), keep_free)
        }
    }

    #[test]
    fn keep_free_stops_a_write_at_the_reserve_and_looks_again_every_stretch() {
        let every = KeepFree::<Vec<u8>>::EVERY;
        // At the bound: the reserve and one stretch are free, so it writes.
        FREE.store(1000 + every, Ordering::SeqCst);
        let mut w = writer(1000);
        assert_eq!(w.write(&[0; 10]).expect("room"), 10);
        // One byte less: refused before anything is written.
        FREE.store(1000 + every - 1, Ordering::SeqCst);
        let mut full = writer(1000);
        let e = full.write(&[0; 10]).expect_err("below the reserve");
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        assert!(e.to_string().contains("dormancy.keep_free"), "{e}");
        assert!(full.inner.is_empty());

        // The disk fills meanwhile: noticed at the next stretch, not before.
        FREE.store(0, Ordering::SeqCst);
        let chunk = vec![0u8; 1 << 20];
        let mut written = 10u64;
        while written < every {
            written += w.write(&chunk).expect("within the stretch") as u64;
        }
        let e = w.write(&chunk).expect_err("the next stretch looks");
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(w.inner.len() as u64, written);
    }

    #[test]
    fn read_back_hashes_the_whole_file_and_lists_every_file_in_one_read() {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, body) in [("a", &b"hello"[..]), ("sub/b", &[7u8; 70_000][..])] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, body).expect("append");
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar.into_inner().expect("tar")).expect("gzip");
        let bytes = gz.finish().expect("gzip");
        let path =
            std::env::temp_dir().join(format!("berth-read-back-{}.tar.gz", std::process::id()));
        std::fs::write(&path, &bytes).expect("write");
        let read = read_back(&path);
        let _ = std::fs::remove_file(&path);
        let (sha, inventory) = read.expect("reads back");
        assert_eq!(
            sha,
            crate::base::secret::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()),
            "the whole file, trailer included"
        );
        let sizes: Vec<(&str, u64)> = inventory
            .iter()
            .map(|(p, (n, _))| (p.as_str(), *n))
            .collect();
        assert_eq!(sizes, [("a", 5), ("sub/b", 70_000)]);
    }

    #[test]
    fn the_real_filesystem_reports_space() {
        let dir = std::env::temp_dir();
        assert!(available(&dir).expect("statvfs") > 0);
    }
}
