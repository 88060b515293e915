//! `reconciler export-image IMAGE -o FILE [--account A]`: a `docker save`
//! archive for Singularity/Apptainer users (`singularity build x.sif
//! docker-archive://FILE`). With `--account`, only images that account may
//! use (allowed registries, own namespace, shared by their owner). On a
//! terminal a bar shows the bytes written against the image's size.

use super::progress::Live;
use super::{Output, exit, open_context};
use crate::backends::docker::Exported;
use berth_spec::ImageRef;
use berth_spec::policy::{Shared, image_allowed_with};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub image: String,
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Export on behalf of this account, refusing images it may not use.
    #[arg(long)]
    pub account: Option<String>,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let image = match ImageRef::parse(&args.image) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("reconciler export-image: {e}");
            return exit::ERROR;
        }
    };
    if let Some(account) = &args.account {
        let shared: Shared = match ctx.store.shares() {
            Ok(s) => s
                .into_iter()
                .filter(|s| &s.owner != account)
                .map(|s| s.repository)
                .collect(),
            Err(e) => {
                eprintln!("reconciler export-image: {e}");
                return exit::ERROR;
            }
        };
        if let Err(why) = image_allowed_with(&ctx.site, account, &image, &shared) {
            eprintln!("reconciler export-image: {why}");
            return exit::ERROR;
        }
    }
    let endpoint = args
        .account
        .as_deref()
        .and_then(|a| ctx.store.placement(a).ok().flatten());
    let backend = ctx
        .docker
        .iter()
        .filter(|(name, _)| endpoint.as_ref().is_none_or(|e| e == *name))
        .find_map(|(_, b)| b.as_ref().ok().and_then(|b| b.docker()));
    let Some(backend) = backend else {
        eprintln!("reconciler export-image: no docker endpoint is reachable");
        return exit::ERROR;
    };
    // The archive goes to a file, so stdout is free for the bar.
    let live = Live::bytes(0, Output::Text);
    let result = backend
        .export(&image.to_string(), &args.output, |step| match step {
            Exported::Pulling => live.status(format!("pulling {image}")),
            Exported::Size(size) => {
                live.grow(size);
                live.status(format!("saving {image}"));
            }
            Exported::Wrote(n) => live.advance(n),
        })
        .await;
    let elapsed = live.finish();
    match result {
        Ok(bytes) => {
            live.summary(&format!(
                "Export: {} ({bytes} bytes, {}) written in {:.1} s ({image}).",
                args.output.display(),
                indicatif::HumanBytes(bytes),
                elapsed.as_secs_f64()
            ));
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler export-image: {e}");
            exit::ERROR
        }
    }
}
