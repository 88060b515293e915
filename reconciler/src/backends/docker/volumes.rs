//! An account's volumes as wholes, read through helper containers
//! (created, never started, no network) that mount them: moved between
//! hosts for `drain` (streamed into a helper on the other host, both sides
//! read back and compared file by file: path, size, SHA-256), downloaded
//! as a tar from the console, and removed — by a finished move, or by
//! their owner once no container mounts them.

use super::{DockerBackend, DockerError, Result};
use berth_core::desired::LABEL_OWNER;
use berth_core::plan::ObservedAccount;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Path → (size, SHA-256) of every regular file of a volume's tar.
pub type Inventory = BTreeMap<String, (u64, Vec<u8>)>;

/// The [`Inventory`] of a tar read from `reader`, as it arrives (a
/// volume's tar may be larger than memory).
pub(super) fn inventory_of(reader: impl std::io::Read) -> std::io::Result<Inventory> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path()?.display().to_string();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = [0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = std::io::Read::read(&mut entry, &mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            ctx.update(&buf[..n]);
        }
        out.insert(path, (size, ctx.finish().as_ref().to_vec()));
    }
    Ok(out)
}

/// Where a helper mounts the volume.
pub(super) const MOUNT: &str = "/berth-volume";

/// On the console's download helpers, naming the account: not
/// `berth.owner`, so no observation takes a helper for an account's
/// container.
pub const LABEL_HELPER: &str = "berth.helper";

/// What asking to delete a volume came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// No such volume of this account here.
    Missing,
    /// Containers (running or not) mount it: their names.
    InUse(Vec<String>),
}

/// Removes a helper container when its stream ends or is dropped (the
/// student's browser went away).
struct HelperGuard {
    docker: bollard::Docker,
    id: String,
}

impl Drop for HelperGuard {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let force = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = docker.remove_container(&id, Some(force)).await;
            });
        }
    }
}

impl DockerBackend {
    /// `account`'s objects on this daemon.
    pub async fn observe_account(&self, account: &str) -> Result<ObservedAccount> {
        Ok(self
            .observe(Some(account))
            .await?
            .remove(account)
            .unwrap_or_default())
    }

    pub async fn remove_by_id(&self, id: &str, name: &str) -> Result<()> {
        self.remove(id, name).await
    }

    /// Removes a volume (an admin's drain: the data was copied first).
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let opts = RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(Self::api("remove volume", name)(e)),
        }
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.docker.remove_network(name).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(Self::api("remove network", name)(e)),
        }
    }

    /// `account`'s volume `volume` as a tar stream whose top directory is
    /// `top` (the name the workspace gives it), read-only through a
    /// helper that goes when the stream does; `None` when the account has
    /// no such volume here (another account's is refused as an error).
    /// `image` is any image the host has (the helper never runs).
    pub async fn volume_archive(
        &self,
        account: &str,
        volume: &str,
        top: &str,
        image: Option<&str>,
    ) -> Result<Option<super::ByteStream>> {
        if !self.volume_owner_check(account, volume).await? {
            return Ok(None);
        }
        let image = self.helper_image(image).await?;
        let body = ContainerCreateBody {
            image: Some(image),
            labels: Some(HashMap::from([(
                LABEL_HELPER.to_string(),
                account.to_string(),
            )])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                // Under a directory of Berth's: a volume named `proc` or
                // `etc` is not mounted over the image's.
                binds: Some(vec![format!("{volume}:{MOUNT}/{top}:ro")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(Self::api("create download helper for", volume))?;
        let guard = HelperGuard {
            docker: self.docker.clone(),
            id: created.id.clone(),
        };
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(&format!("{MOUNT}/{top}"))
            .build();
        let stream = self
            .docker
            .download_from_container(&created.id, Some(opts))
            .map(move |r| {
                let _held = &guard;
                r.map_err(|e| std::io::Error::other(e.to_string()))
            });
        Ok(Some(Box::pin(stream)))
    }

    /// Removes `account`'s volume `volume` unless a container, running or
    /// not, mounts it. Another account's volume, or a home directory's, is
    /// refused as an error.
    pub async fn delete_volume_of(&self, account: &str, volume: &str) -> Result<Deletion> {
        if !self.volume_owner_check(account, volume).await? {
            return Ok(Deletion::Missing);
        }
        let filters = HashMap::from([("volume".to_string(), vec![volume.to_string()])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let users: Vec<String> = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(Self::api("list containers using", volume))?
            .into_iter()
            .filter_map(|c| {
                c.names?
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
            })
            .collect();
        if !users.is_empty() {
            return Ok(Deletion::InUse(users));
        }
        let opts = RemoveVolumeOptionsBuilder::default().build();
        match self.docker.remove_volume(volume, Some(opts)).await {
            Ok(()) => Ok(Deletion::Deleted),
            // A container took it meanwhile.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(Deletion::InUse(vec!["a container".into()])),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(Deletion::Missing),
            Err(e) => Err(Self::api("remove volume", volume)(e)),
        }
    }

    /// Removes download helpers a stopped Berth left behind.
    pub async fn remove_stale_helpers(&self) -> Result<usize> {
        let filters = HashMap::from([("label".to_string(), vec![LABEL_HELPER.to_string()])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let stale = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(Self::api("list", "download helpers"))?;
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        for c in &stale {
            if let Some(id) = &c.id {
                let _ = self.docker.remove_container(id, Some(force.clone())).await;
            }
        }
        Ok(stale.len())
    }

    /// `preferred` when the host has it, else any image it has, else
    /// `preferred` to be pulled (a fresh host may have no image at all).
    /// The helper never runs, so which image does not matter.
    pub(super) async fn helper_image(&self, preferred: Option<&str>) -> Result<String> {
        if let Some(image) = preferred
            && self.docker.inspect_image(image).await.is_ok()
        {
            return Ok(image.to_string());
        }
        let any = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(Self::api("list", "images"))?;
        any.into_iter()
            .next()
            .map(|i| i.id)
            .or_else(|| preferred.map(str::to_string))
            .ok_or_else(|| DockerError::Answer {
                what: "a helper image".into(),
                message: "the host has no image to mount a volume with".into(),
            })
    }

    /// A stopped container mounting `volume` at [`MOUNT`], to read or
    /// write it through the archive API.
    pub(super) async fn helper(&self, account: &str, volume: &str, image: &str) -> Result<String> {
        let name = format!("{volume}.berth-move");
        self.remove(&name, &name).await?;
        if self.docker.inspect_image(image).await.is_err() {
            self.pull(image).await?;
        }
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            labels: Some(HashMap::from([(
                LABEL_OWNER.to_string(),
                format!("{account}.move"),
            )])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{volume}:{MOUNT}")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(Self::api("create helper for", volume))?;
        Ok(created.id)
    }

    /// The volume `name` of `account`, new and empty (an earlier, partial
    /// copy is dropped); refuses a volume another account owns.
    pub(super) async fn fresh_volume(&self, account: &str, name: &str) -> Result<()> {
        if self.volume_owner_check(account, name).await? {
            self.remove_volume(name).await?;
        }
        self.create_owned_volume(account, name).await
    }

    /// Path → (size, SHA-256) of every regular file in the helper's volume.
    pub(super) async fn inventory(&self, helper: &str) -> Result<Inventory> {
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(MOUNT)
            .build();
        // Read as it arrives: a volume's tar may be larger than memory.
        let stream = self
            .docker
            .download_from_container(helper, Some(opts))
            .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let listing = tokio::task::spawn_blocking(move || inventory_of(reader))
            .await
            .map_err(|e| DockerError::Upload {
                name: helper.into(),
                message: e.to_string(),
            })?
            .map_err(|e| DockerError::Upload {
                name: helper.into(),
                message: e.to_string(),
            })?;
        Ok(listing)
    }

    /// Copies `volume` of `account` to a fresh volume of the same name on
    /// `dest`; each side's helper uses `image` if it can (see
    /// [`Self::helper_image`]), so a volume no container mounts any more
    /// moves too. The bytes streamed, and whether both sides match.
    pub async fn copy_volume_to(
        &self,
        dest: &DockerBackend,
        account: &str,
        volume: &str,
        image: Option<&str>,
    ) -> Result<(u64, bool)> {
        let (here, there) = tokio::try_join!(self.helper_image(image), dest.helper_image(image))?;
        let src = self.helper(account, volume, &here).await?;
        dest.fresh_volume(account, volume).await?;
        let dst = dest.helper(account, volume, &there).await?;
        let bytes = Arc::new(AtomicU64::new(0));
        let counted = bytes.clone();
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(MOUNT)
            .build();
        let stream = self
            .docker
            .download_from_container(&src, Some(opts))
            .map(move |r| {
                r.inspect(|b| {
                    counted.fetch_add(b.len() as u64, Ordering::Relaxed);
                })
                .map_err(|e| std::io::Error::other(e.to_string()))
            });
        // The tar's top entry is the mount's own name: unpack it at `/`.
        let up = UploadToContainerOptionsBuilder::default().path("/").build();
        dest.docker
            .upload_to_container(&dst, Some(up), bollard::body_try_stream(stream))
            .await
            .map_err(Self::api("write volume", volume))?;
        let (a, b) = tokio::try_join!(self.inventory(&src), dest.inventory(&dst))?;
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = self
            .docker
            .remove_container(&src, Some(force.clone()))
            .await;
        let _ = dest.docker.remove_container(&dst, Some(force)).await;
        Ok((bytes.load(Ordering::Relaxed), a == b))
    }
}
