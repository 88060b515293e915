//! Archived volumes (dormant workspaces): [`archive`] writes every Docker
//! volume of an account to `<archive_dir>/<account>/<volume>.tar.gz` and
//! removes it once the file is verified; [`unarchive`] brings them back,
//! byte for byte; [`discard`] deletes them when an admin says so.
//! `ops::dormancy` decides when (and admins' `reconciler
//! archive|unarchive`); an accepted push of an archived account waits for
//! [`unarchive`] before anything runs, and no other reconcile touches it.
//!
//! An archive, per volume: a row marked not done (the account is frozen:
//! reconciles leave it alone), the account's stopped containers that
//! mount it removed (Berth's own, recreated from git on return), the
//! volume exported and read back (see `backends::docker::archive`), the
//! row marked done, then the volume removed. A failure or a kill anywhere
//! leaves the volume in place; a row not done is dropped by the next
//! unarchive, since its volume was never removed. Volumes come back on
//! the host the account is placed on now, which a drain may have changed.
//! Kubernetes claims are left alone.

use crate::clients::Context;
use crate::store::Archive;
use std::path::PathBuf;

/// Why an archive or its return did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DormancyError {
    #[error("this site does not archive dormant workspaces (no `dormancy` in site.yaml)")]
    Off,
    #[error("`{0}` has a running container; a workspace in use is not archived")]
    Running(String),
    #[error("Docker endpoint `{0}` is not reachable")]
    Unreachable(String),
    #[error(transparent)]
    Docker(#[from] crate::backends::docker::DockerError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(
        "{dir} has {free} bytes free, below dormancy.keep_free ({keep_free}); nothing was archived"
    )]
    Full {
        dir: String,
        free: u64,
        keep_free: u64,
    },
    #[error("{0}")]
    Io(String),
    #[error(
        "the archive of volume `{0}` is unfinished (being written, or interrupted): nothing was deleted; `reconciler unarchive` drops an interrupted one and keeps the volume"
    )]
    Unfinished(String),
}

/// What an archive or unarchive did: the volumes, with files counted.
#[derive(Debug, Default, serde::Serialize)]
pub struct Done {
    pub account: String,
    pub volumes: Vec<(String, u64)>,
}

fn archive_dir(ctx: &Context) -> Result<PathBuf, DormancyError> {
    ctx.site
        .dormancy
        .as_ref()
        .map(|d| PathBuf::from(d.archive_dir.as_str()))
        .ok_or(DormancyError::Off)
}

/// `dormancy.keep_free` in bytes (validated at load).
fn keep_free(ctx: &Context) -> u64 {
    ctx.site
        .dormancy
        .as_ref()
        .and_then(|d| d.keep_free.bytes().ok())
        .unwrap_or(0)
}

async fn store<T: Send + 'static>(
    ctx: &Context,
    f: impl FnOnce(&crate::store::Store) -> crate::store::Result<T> + Send + 'static,
) -> Result<T, DormancyError> {
    Ok(ctx.store.call(f).await?)
}

/// Archives every Docker volume of `account` (see the module).
pub async fn archive(ctx: &Context, account: &str) -> Result<Done, DormancyError> {
    let dir = archive_dir(ctx)?.join(account);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DormancyError::Io(format!("creating {}: {e}", dir.display())))?;
    // Before anything is touched; the export looks again as it writes.
    let keep_free = keep_free(ctx);
    let free = crate::backends::docker::available(&dir)
        .map_err(|e| DormancyError::Io(format!("free space of {}: {e}", dir.display())))?;
    if free < keep_free {
        return Err(DormancyError::Full {
            dir: dir.display().to_string(),
            free,
            keep_free,
        });
    }
    let mut done = Done {
        account: account.to_string(),
        ..Done::default()
    };
    for (endpoint, _) in ctx.docker.iter() {
        let Some(docker) = ctx.dockerd(endpoint) else {
            continue;
        };
        let observed = docker.observe_account(account).await?;
        if let Some(c) = observed.containers.iter().find(|c| c.running) {
            return Err(DormancyError::Running(c.full_name.clone()));
        }
        if observed.volumes.is_empty() {
            continue;
        }
        let image = observed.containers.iter().map(|c| c.image.clone()).next();
        let begun: Vec<Archive> = observed
            .volumes
            .iter()
            .map(|v| Archive {
                volume: v.clone(),
                endpoint: endpoint.clone(),
                path: dir.join(format!("{v}.tar.gz")).display().to_string(),
                sha256: String::new(),
                bytes: 0,
                files: 0,
                at: crate::store::now(),
                done: false,
            })
            .collect();
        {
            let (a, rows) = (account.to_string(), begun.clone());
            store(ctx, move |s| {
                rows.iter().try_for_each(|r| s.set_archive(&a, r))
            })
            .await?;
        }
        // Docker removes no volume a container (even stopped) mounts.
        for c in &observed.containers {
            let mounts = observed
                .volume_users
                .values()
                .any(|users| users.contains(&c.full_name));
            if mounts && let Err(e) = docker.remove_by_id(&c.id, &c.full_name).await {
                forget(ctx, account, &begun).await?;
                return Err(e.into());
            }
        }
        for (i, row) in begun.iter().enumerate() {
            let exported = docker
                .export_volume(
                    account,
                    &row.volume,
                    image.as_deref(),
                    &PathBuf::from(&row.path),
                    keep_free,
                )
                .await;
            let exported = match exported {
                Ok(e) => e,
                Err(e) => {
                    forget(ctx, account, &begun[i..]).await?;
                    return Err(e.into());
                }
            };
            if std::env::var("BERTH_ARCHIVE_STOP_AFTER_EXPORT").is_ok() {
                // Tests: a kill between the file and its record.
                tracing::warn!("stopping after one export (BERTH_ARCHIVE_STOP_AFTER_EXPORT)");
                std::process::exit(3);
            }
            let verified = Archive {
                sha256: exported.sha256.clone(),
                bytes: exported.bytes,
                files: exported.files as u64,
                done: true,
                ..row.clone()
            };
            let (a, r) = (account.to_string(), verified);
            let detail = format!(
                "volume `{}` → {} ({} file(s), {} bytes, SHA-256 {})",
                r.volume, r.path, r.files, r.bytes, r.sha256
            );
            store(ctx, move |s| {
                s.set_archive(&a, &r)?;
                s.audit(&a, "archived", None, &detail).map(|_| ())
            })
            .await?;
            docker.remove_volume(&row.volume).await?;
            done.volumes
                .push((row.volume.clone(), exported.files as u64));
        }
    }
    if !done.volumes.is_empty() {
        let (a, n) = (account.to_string(), done.volumes.len());
        store(ctx, move |s| {
            s.set_dormancy_told(&a, None)?;
            s.notify(
                &a,
                berth_core::notify::Category::Dormancy,
                &format!("your workspace was unused, so its {n} volume(s) were archived (nothing is lost); your next push, or an admin, brings them back"),
            )
        })
        .await?;
    }
    Ok(done)
}

/// Drops the rows of archives that will not be finished: their volumes
/// stay, and the account is not left frozen by them.
async fn forget(ctx: &Context, account: &str, rows: &[Archive]) -> Result<(), DormancyError> {
    let (a, left): (String, Vec<String>) = (
        account.to_string(),
        rows.iter().map(|r| r.volume.clone()).collect(),
    );
    store(ctx, move |s| {
        left.iter().try_for_each(|v| s.remove_archive(&a, v))
    })
    .await
}

/// Brings every archived volume of `account` back, byte for byte, and
/// drops the archives; rows never finished only lose their row (their
/// volume was never removed).
pub async fn unarchive(ctx: &Context, account: &str) -> Result<Done, DormancyError> {
    let (rows, placed) = {
        let a = account.to_string();
        store(ctx, move |s| Ok((s.archives_of(&a)?, s.placement(&a)?))).await?
    };
    let mut done = Done {
        account: account.to_string(),
        ..Done::default()
    };
    for row in rows {
        // Where the account runs now: a drain may have moved it (and any
        // volume an unfinished archive left) since the archive.
        let endpoint = placed.clone().unwrap_or_else(|| row.endpoint.clone());
        let docker = ctx
            .dockerd(&endpoint)
            .ok_or_else(|| DormancyError::Unreachable(endpoint.clone()))?;
        let still_there = docker
            .observe_account(account)
            .await?
            .volumes
            .contains(&row.volume);
        let path = PathBuf::from(&row.path);
        if !still_there {
            if !row.done {
                return Err(DormancyError::Io(format!(
                    "volume `{}` is gone and its archive was never finished; see the audit log",
                    row.volume
                )));
            }
            let files = docker
                .import_volume(account, &row.volume, None, &path, &row.sha256)
                .await?;
            done.volumes.push((row.volume.clone(), files as u64));
        }
        let (a, v) = (account.to_string(), row.volume.clone());
        let detail = if still_there {
            format!("volume `{v}` was still in place; archive dropped")
        } else {
            format!(
                "volume `{v}` restored from {} (SHA-256 {})",
                row.path, row.sha256
            )
        };
        store(ctx, move |s| {
            s.remove_archive(&a, &v)?;
            s.audit(&a, "unarchived", None, &detail).map(|_| ())
        })
        .await?;
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(crate::backends::docker::part_of(&path));
    }
    let a = account.to_string();
    store(ctx, move |s| s.touch_activity(&a, crate::store::now())).await?;
    Ok(done)
}

/// Deletes `account`'s archives for good, when an admin says so (a
/// student who left, the department's retention over): each file goes,
/// then its row, audited with what was deleted. The account is no longer
/// frozen: its next push starts with empty volumes. Refused while an
/// archive is unfinished: one still being written would record its file
/// again after the delete (and remove the volume), leaving the account
/// frozen on a missing file.
pub async fn discard(ctx: &Context, account: &str) -> Result<Done, DormancyError> {
    let rows = {
        let a = account.to_string();
        store(ctx, move |s| s.archives_of(&a)).await?
    };
    if let Some(row) = rows.iter().find(|r| !r.done) {
        return Err(DormancyError::Unfinished(row.volume.clone()));
    }
    let mut done = Done {
        account: account.to_string(),
        ..Done::default()
    };
    for row in rows {
        let path = PathBuf::from(&row.path);
        let part = crate::backends::docker::part_of(&path);
        for file in [path, part] {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DormancyError::Io(format!(
                        "deleting {}: {e}",
                        file.display()
                    )));
                }
            }
        }
        let (a, v) = (account.to_string(), row.volume.clone());
        let detail = format!(
            "volume `{v}`: archive {} ({} file(s), {} bytes, SHA-256 {}) deleted by an admin; its data is gone",
            row.path, row.files, row.bytes, row.sha256
        );
        store(ctx, move |s| {
            s.remove_archive(&a, &v)?;
            s.audit(&a, "archive-discarded", None, &detail).map(|_| ())
        })
        .await?;
        done.volumes.push((row.volume, row.files));
    }
    Ok(done)
}
