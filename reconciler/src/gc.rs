//! Image garbage collection: removes from each Docker host the images Berth
//! pulled that no container (running or stopped, Berth's or not) uses and
//! that no declared container has used for the site's age. Never forced,
//! never an image Berth did not pull.

use crate::reconcile::{Context, ReconcileError};
use serde::Serialize;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Collected {
    pub endpoint: String,
    pub image: String,
    pub bytes: u64,
    /// `false` in a dry run.
    pub removed: bool,
}

/// Collects on every reachable endpoint; returns what was (or would be) removed.
pub async fn collect(
    ctx: &Context,
    older_than: Duration,
    dry_run: bool,
) -> Result<Vec<Collected>, ReconcileError> {
    let now = crate::store::now();
    let mut out = Vec::new();
    for (endpoint, backend) in &ctx.docker {
        let Ok(backend) = backend else { continue };
        let in_use = backend.images_in_use().await?;
        for crate::store::Pulled { image, last_used } in ctx.store.pulled_images(endpoint)? {
            let Some((id, bytes)) = backend.image_info(&image).await? else {
                ctx.store.forget_image(endpoint, &image)?;
                continue;
            };
            let idle = Duration::from_secs(now.saturating_sub(last_used).max(0) as u64);
            if in_use.contains(&id) || idle < older_than {
                continue;
            }
            if !dry_run {
                backend.remove_image(&image).await?;
                ctx.store.forget_image(endpoint, &image)?;
                ctx.store.audit(
                    "-",
                    "gc",
                    None,
                    &format!("removed {image} from {endpoint} ({bytes} bytes)"),
                )?;
            }
            out.push(Collected {
                endpoint: endpoint.clone(),
                image,
                bytes,
                removed: !dry_run,
            });
        }
    }
    Ok(out)
}
