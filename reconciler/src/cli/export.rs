//! `reconciler export-image IMAGE -o FILE [--account A]`: a `docker save`
//! archive for Singularity/Apptainer users (`singularity build x.sif
//! docker-archive://FILE`). With `--account`, only images that account may
//! use (allowed registries, own namespace, shared by their owner).

use super::{exit, open_context};
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
        .find_map(|(_, b)| b.as_ref().ok());
    let Some(backend) = backend else {
        eprintln!("reconciler export-image: no docker endpoint is reachable");
        return exit::ERROR;
    };
    match backend.export(&image.to_string(), &args.output).await {
        Ok(bytes) => {
            println!("{}: {bytes} bytes ({image})", args.output.display());
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler export-image: {e}");
            exit::ERROR
        }
    }
}
