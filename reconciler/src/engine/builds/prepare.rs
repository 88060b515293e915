//! The checks a build must pass before it runs, and what they read: the
//! context from git (size-capped, `.dockerignore` applied), the Dockerfile
//! in it, and its base images, each allowed only as `image:` would be.

use super::{Failure, failure};
use crate::clients::{Context, ReconcileError};
use crate::inputs::source::{ContextEntry, ContextLimits, ContextTree};
use berth_core::dockerfile;
use berth_spec::ImageRef;
use berth_spec::policy::{Shared, image_allowed_with};
use berth_spec::workspace::Build;
use std::sync::Arc;

/// Longest reading a build context from git may take.
const CONTEXT_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// What a checked build needs: the context's files, the Dockerfile's path
/// in it, and the registry scopes of its base images.
pub(super) struct Prepared {
    pub entries: Vec<ContextEntry>,
    pub dockerfile: String,
    pub scopes: Vec<String>,
}

/// Reads the context from git and checks the Dockerfile's base images like
/// `image:` — everything a build is refused for before it runs.
pub(super) async fn prepare(
    ctx: &Arc<Context>,
    account: &str,
    revision: &str,
    b: &Build,
    shared: &Shared,
) -> Result<Result<Prepared, Failure>, ReconcileError> {
    let site = &ctx.site;
    let builds = &site.policy.builds;
    let limits = ContextLimits {
        max_bytes: builds.max_context.bytes().unwrap_or(50 << 20),
        max_entries: builds.max_context_files as usize,
        max_depth: builds.max_context_depth as usize,
        max_time: CONTEXT_TIME,
    };
    let (name, sha, dir) = (
        account.to_string(),
        revision.to_string(),
        b.context_dir().to_string(),
    );
    let entries = match ctx
        .read_source(move |s| s.context(&name, &sha, &dir, limits))
        .await?
    {
        ContextTree::Entries(e) => e,
        ContextTree::Missing => return Ok(Err(failure("the context directory is missing"))),
        ContextTree::Refused(limit) => return Ok(Err(failure(limit.to_string()))),
    };
    let dockerfile = b.dockerfile.trim_start_matches("./").to_string();
    let shown = match b.context_dir() {
        "" => dockerfile.clone(),
        d => format!("{d}/{dockerfile}"),
    };
    let text = entries.iter().find_map(|e| match e {
        ContextEntry::File { path, data, .. } if *path == dockerfile => {
            Some(String::from_utf8_lossy(data).into_owned())
        }
        _ => None,
    });
    let Some(text) = text else {
        return Ok(Err(failure(format!(
            "`{shown}` is not a file of the context"
        ))));
    };
    // Every image the build would pull, checked like `image:`.
    // Bounded (size, expansions), but still the student's text: parsed on
    // a blocking thread like the rest of what a build reads.
    let parsed = {
        let args = b.args.clone();
        tokio::task::spawn_blocking(move || dockerfile::base_images(&text, &args))
            .await
            .map_err(|e| ReconcileError::Join(e.to_string()))?
    };
    let bases = match parsed {
        Ok(bases) => bases,
        Err(e) => return Ok(Err(failure(format!("{shown}:{}: {}", e.line, e.message)))),
    };
    let mut scopes = Vec::new();
    for base in &bases {
        let image = match ImageRef::parse(&base.image) {
            Ok(i) => i,
            Err(e) => return Ok(Err(failure(format!("{shown}:{}: {e}", base.line)))),
        };
        if let Err(why) = image_allowed_with(site, account, &image, shared) {
            return Ok(Err(failure(format!("{shown}:{}: {why}", base.line))));
        }
        if let Some(path) = site.registry.as_ref().and_then(|r| {
            image
                .repository()
                .strip_prefix(&format!("{}/", r.host.value))
                .map(str::to_string)
        }) {
            scopes.push(format!("repository:{path}:pull"));
        }
    }
    Ok(Ok(Prepared {
        entries,
        dockerfile,
        scopes,
    }))
}
