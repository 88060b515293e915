//! Images on one dockerd: pulls (one per image at a time, with the
//! department registry's credentials), `docker save` archives for
//! Singularity, and what `gc` needs (in use, size, removal).

use super::{DockerBackend, DockerError, Result};
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{CreateImageOptionsBuilder, ListContainersOptionsBuilder};
use futures::StreamExt;
use std::sync::Arc;

impl DockerBackend {
    /// Pulls an image that is not on this daemon; concurrent callers for
    /// the same image share one pull.
    pub async fn pull(&self, image: &str) -> Result<()> {
        let cell = {
            let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
            pulls.entry(image.to_string()).or_default().clone()
        };
        let result = cell.get_or_init(|| self.pull_once(image)).await.clone();
        {
            let mut pulls = self.pulls.lock().unwrap_or_else(|p| p.into_inner());
            if pulls.get(image).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                pulls.remove(image);
            }
        }
        result.map_err(|message| DockerError::Pull {
            image: image.to_string(),
            message,
        })
    }

    /// Writes `image` as a `docker save` archive (what `singularity build
    /// x.sif docker-archive://FILE` takes) to `path`, pulling it first if
    /// this host lacks it, telling `progress` how far it is. Returns the
    /// bytes written.
    pub async fn export(
        &self,
        image: &str,
        path: &std::path::Path,
        mut progress: impl FnMut(Exported),
    ) -> Result<u64> {
        if self.docker.inspect_image(image).await.is_err() {
            progress(Exported::Pulling);
            self.pull(image).await?;
        }
        // The archive is about the image's unpacked size (its layers as
        // tars, plus a little metadata): good enough for an estimate.
        let size = self.image_info(image).await?.map_or(0, |(_, size)| size);
        progress(Exported::Size(size));
        let io = |e: std::io::Error| DockerError::Upload {
            name: image.to_string(),
            message: e.to_string(),
        };
        let partial = path.with_extension("partial");
        let mut file =
            tokio::io::BufWriter::new(tokio::fs::File::create(&partial).await.map_err(io)?);
        let mut stream = self.docker.export_image(image);
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(Self::api("export", image))?;
            written += chunk.len() as u64;
            progress(Exported::Wrote(chunk.len() as u64));
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(io)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(io)?;
        tokio::fs::rename(&partial, path).await.map_err(io)?;
        Ok(written)
    }

    pub(super) async fn pull_once(&self, image: &str) -> Result<(), String> {
        tracing::info!(image, endpoint = %self.name, "pulling");
        let (repo, tag) = split_tag(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let credentials = self.credentials_for(image, "pull");
        let mut stream = self.docker.create_image(Some(opts), None, credentials);
        while let Some(item) = stream.next().await {
            item.map_err(|e| e.to_string())?;
        }
        self.pulled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(image.to_string());
        Ok(())
    }

    /// Images pulled since the last call (for the store's GC records).
    pub fn take_pulled(&self) -> Vec<String> {
        std::mem::take(&mut *self.pulled.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Image ids every container on this host (Berth's or not, running or
    /// stopped) was created from.
    pub async fn images_in_use(&self) -> Result<std::collections::HashSet<String>> {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let containers = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(Self::api("list", "containers"))?;
        Ok(containers.into_iter().filter_map(|c| c.image_id).collect())
    }

    /// Id and size of an image, `None` when the host does not have it.
    pub async fn image_info(&self, image: &str) -> Result<Option<(String, u64)>> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some((
                i.id.unwrap_or_default(),
                i.size.unwrap_or(0).max(0) as u64,
            ))),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(Self::api("inspect image", image)(e)),
        }
    }

    /// Removes an image reference (never forced: an image a container uses stays).
    pub async fn remove_image(&self, image: &str) -> Result<()> {
        match self
            .docker
            .remove_image(
                image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(Self::api("remove image", image)(e)),
        }
    }
}

/// `registry/repo:tag` → (`registry/repo`, `tag`); digests stay whole.
pub(crate) fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

/// How far [`DockerBackend::export`] is.
#[derive(Clone, Copy, Debug)]
pub enum Exported {
    /// The host lacks the image and pulls it first.
    Pulling,
    /// The image's size, about what the archive will be.
    Size(u64),
    /// This many more bytes written.
    Wrote(u64),
}
