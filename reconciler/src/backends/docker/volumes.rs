//! Moving an account's volumes between hosts, for `drain`: a volume is
//! read as a tar through a helper container (created, never started) that
//! mounts it, streamed into a helper on the other host, and both sides are
//! read back and compared file by file (path, size, SHA-256). Plus the
//! removals a finished move needs.

use super::{DockerBackend, DockerError, Result};
use berth_core::desired::LABEL_OWNER;
use berth_core::plan::ObservedAccount;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a helper mounts the volume.
const MOUNT: &str = "/berth-volume";

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

    /// A stopped container mounting `volume` at [`MOUNT`], to read or
    /// write it through the archive API.
    async fn helper(&self, account: &str, volume: &str, image: &str) -> Result<String> {
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
    async fn fresh_volume(&self, account: &str, name: &str) -> Result<()> {
        if self.volume_owner_check(account, name).await? {
            self.remove_volume(name).await?;
        }
        self.create_owned_volume(account, name).await
    }

    /// Path → (size, SHA-256) of every regular file in the helper's volume.
    async fn inventory(&self, helper: &str) -> Result<BTreeMap<String, (u64, Vec<u8>)>> {
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(MOUNT)
            .build();
        // Read as it arrives: a volume's tar may be larger than memory.
        let stream = self
            .docker
            .download_from_container(helper, Some(opts))
            .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let listing = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
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
                // The top directory's name differs by nothing: same mount.
                out.insert(path, (size, ctx.finish().as_ref().to_vec()));
            }
            Ok(out)
        })
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
    /// `dest`, with `image` (any image both hosts can have) for the
    /// helpers; the bytes streamed, and whether both sides match.
    pub async fn copy_volume_to(
        &self,
        dest: &DockerBackend,
        account: &str,
        volume: &str,
        image: &str,
    ) -> Result<(u64, bool)> {
        let src = self.helper(account, volume, image).await?;
        dest.fresh_volume(account, volume).await?;
        let dst = dest.helper(account, volume, image).await?;
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
