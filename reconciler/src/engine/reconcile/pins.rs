//! Images at acceptance: which images other accounts share with an
//! account, the digests a revision's department-registry images resolve to
//! (each scanned once by the site's command, if any), and warnings for
//! running images their owner stopped sharing. Called by `reconcile`.

use crate::clients::{Context, Result};
use berth_spec::Workspace;
use berth_spec::policy::{Shared, pin_key, share_key};
use std::collections::BTreeMap;

/// Images other accounts share with `account`.
pub(crate) fn shared_with(store: &crate::store::Store, account: &str) -> Result<Shared> {
    Ok(store
        .shares()?
        .into_iter()
        .filter(|s| s.owner != account)
        .map(|s| s.repository)
        .collect())
}

pub use berth_core::decide::ImageRejection;

/// Digests of the workspace's department-registry images (pin key →
/// digest), or why the revision cannot run (an image that does not exist).
pub(crate) async fn resolve_pins(
    ctx: &Context,
    ws: &Workspace,
) -> Result<std::result::Result<BTreeMap<String, String>, ImageRejection>> {
    let mut pins = BTreeMap::new();
    let Some(registry) = &ctx.registry else {
        return Ok(Ok(pins));
    };
    for c in &ws.containers {
        let Ok(image) = berth_spec::ImageRef::parse(&c.image) else {
            continue;
        };
        if image.registry != registry.host() {
            continue;
        }
        let key = pin_key(&image);
        let digest = match (&image.digest, &image.tag) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(tag)) => registry.digest(&image.path, tag).await?,
            (None, None) => None,
        };
        match digest {
            Some(d) => {
                if let Err(why) = scan(ctx, &key, &d).await? {
                    return Ok(Err(why));
                }
                pins.insert(key, d);
            }
            None => {
                return Ok(Err(ImageRejection::Missing(image.to_string())));
            }
        }
    }
    Ok(Ok(pins))
}

/// Runs the site's scan command on an image not scanned before. Passing
/// digests are remembered, so each image is scanned once.
async fn scan(
    ctx: &Context,
    reference: &str,
    digest: &str,
) -> Result<std::result::Result<(), ImageRejection>> {
    let Some(argv) = ctx
        .site
        .registry
        .as_ref()
        .and_then(|r| r.scan_command.as_ref())
    else {
        return Ok(Ok(()));
    };
    let Some((program, args)) = argv.split_first() else {
        return Ok(Ok(()));
    };
    let key = digest.to_string();
    if ctx.store.call(move |s| s.scanned(&key)).await? {
        return Ok(Ok(()));
    }
    let run = tokio::process::Command::new(program)
        .args(args)
        .arg(reference)
        .arg(digest)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(std::time::Duration::from_secs(300), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return Ok(Err(ImageRejection::ScannerFailed {
                image: reference.to_string(),
                program: program.clone(),
                cause: e.to_string(),
            }));
        }
        Err(_) => return Ok(Err(ImageRejection::ScanTimeout(reference.to_string()))),
    };
    if out.status.success() {
        let key = digest.to_string();
        ctx.store.call(move |s| s.mark_scanned(&key)).await?;
        return Ok(Ok(()));
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect();
    Ok(Err(ImageRejection::Refused {
        image: reference.to_string(),
        output: text,
    }))
}

/// Warnings for images the workspace runs that their owner no longer shares.
pub(crate) fn unshared_warnings(
    ctx: &Context,
    account: &str,
    ws: &Workspace,
    shared: &Shared,
    pins: &BTreeMap<String, String>,
) -> Vec<String> {
    let Some(reg) = &ctx.site.registry else {
        return vec![];
    };
    ws.containers
        .iter()
        .filter_map(|c| berth_spec::ImageRef::parse(&c.image).ok())
        .filter(|i| i.registry == reg.host.value)
        .filter_map(|i| {
            let owner = i.namespace()?.to_string();
            let repository = share_key(&i);
            (owner != account && !shared.contains(&repository)).then(|| {
                let pin = pins.get(&pin_key(&i)).map(String::as_str).unwrap_or("its last digest");
                format!("image `{repository}` is no longer shared by `{owner}`; running the pinned {pin}; a new revision naming it will be refused")
            })
        })
        .collect()
}
