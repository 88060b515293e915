//! Image garbage collection: removes from each Docker host the images Berth
//! pulled that no container (running or stopped, Berth's or not) uses and
//! that no declared container has used for the site's age. Never forced,
//! never an image Berth did not pull. In the registry, deletes the
//! manifests of images Berth built that left their account's
//! `images.build` that long ago and that no accepted revision of any
//! account runs (the registry's own garbage collection, which frees the
//! blobs, stays the admin's job).

use crate::clients::{Context, ReconcileError};
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

/// How far a collection is, for a live view.
#[derive(Debug)]
pub enum Step<'a> {
    /// `place` (an endpoint, or `registry`) has this many images to look at.
    Looking { place: &'a str, candidates: usize },
    /// One image looked at, kept or not.
    Checked,
    /// One image removed (or, in a dry run, that would be).
    Collected(&'a Collected),
}

/// Collects on every reachable endpoint; returns what was (or would be) removed.
pub async fn collect(
    ctx: &Context,
    older_than: Duration,
    dry_run: bool,
) -> Result<Vec<Collected>, ReconcileError> {
    collect_with(ctx, older_than, dry_run, |_| {}).await
}

/// [`collect`], telling `step` how far it is as it goes.
pub async fn collect_with(
    ctx: &Context,
    older_than: Duration,
    dry_run: bool,
    mut step: impl FnMut(Step<'_>),
) -> Result<Vec<Collected>, ReconcileError> {
    let now = crate::store::now();
    let mut out = Vec::new();
    for (endpoint, backend) in &ctx.docker {
        let Some(backend) = backend.as_ref().ok().and_then(|b| b.docker()) else {
            continue;
        };
        let in_use = backend.images_in_use().await?;
        let name = endpoint.clone();
        let pulled = ctx.store.call(move |s| s.pulled_images(&name)).await?;
        step(Step::Looking {
            place: endpoint,
            candidates: pulled.len(),
        });
        for crate::store::Pulled { image, last_used } in pulled {
            step(Step::Checked);
            let Some((id, bytes)) = backend.image_info(&image).await? else {
                let (name, gone) = (endpoint.clone(), image.clone());
                ctx.store
                    .call(move |s| s.forget_image(&name, &gone))
                    .await?;
                continue;
            };
            let idle = Duration::from_secs(now.saturating_sub(last_used).max(0) as u64);
            if in_use.contains(&id) || idle < older_than {
                continue;
            }
            if !dry_run {
                backend.remove_image(&image).await?;
                let (name, gone) = (endpoint.clone(), image.clone());
                ctx.store
                    .call(move |s| -> Result<(), crate::store::StoreError> {
                        s.forget_image(&name, &gone)?;
                        s.audit(
                            "-",
                            "gc",
                            None,
                            &format!("removed {gone} from {name} ({bytes} bytes)"),
                        )?;
                        Ok(())
                    })
                    .await?;
            }
            let item = Collected {
                endpoint: endpoint.clone(),
                image,
                bytes,
                removed: !dry_run,
            };
            step(Step::Collected(&item));
            out.push(item);
        }
    }
    out.extend(collect_registry(ctx, older_than, dry_run, &mut step).await?);
    Ok(out)
}

/// Deletes what builds that left `images.build` pushed, unless pinned.
async fn collect_registry(
    ctx: &Context,
    older_than: Duration,
    dry_run: bool,
    step: &mut impl FnMut(Step<'_>),
) -> Result<Vec<Collected>, ReconcileError> {
    let (Some(registry), Some(site_registry)) = (&ctx.registry, &ctx.site.registry) else {
        return Ok(vec![]);
    };
    let before = crate::store::now() - older_than.as_secs() as i64;
    let dropped = ctx.store.dropped_builds(before)?;
    if dropped.is_empty() {
        return Ok(vec![]);
    }
    let pinned: std::collections::HashSet<String> = ctx
        .store
        .all_pins()?
        .into_iter()
        .map(|p| p.digest)
        .collect();
    step(Step::Looking {
        place: "registry",
        candidates: dropped.len(),
    });
    let mut out = Vec::new();
    for (account, name) in dropped {
        step(Step::Checked);
        let repository = format!("{account}/{name}");
        let mut kept = false;
        let mut digests = std::collections::BTreeMap::new();
        for tag in registry.tags(&repository).await? {
            if let Some(m) = registry.manifest(&repository, &tag).await? {
                digests.insert(m.digest, m.size);
            }
        }
        for (digest, bytes) in digests {
            if pinned.contains(&digest) {
                kept = true;
                continue;
            }
            let image = format!("{}/{repository}@{digest}", site_registry.host.value);
            if !dry_run {
                registry.delete_manifest(&repository, &digest).await?;
                ctx.store.audit(
                    &account,
                    "gc",
                    None,
                    &format!("deleted {image} from the registry ({bytes} bytes)"),
                )?;
            }
            let item = Collected {
                endpoint: "registry".into(),
                image,
                bytes,
                removed: !dry_run,
            };
            step(Step::Collected(&item));
            out.push(item);
        }
        if !kept && !dry_run {
            ctx.store.forget_build(&account, &name)?;
        }
    }
    Ok(out)
}
