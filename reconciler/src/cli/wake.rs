//! `reconciler wake --account A [--name CONTAINER]`: an admin starts what
//! the idle culler stopped: the culled mark goes, and the next reconcile
//! (`apply`, or `serve`'s resync) starts the container again.

use super::exit;
use crate::store::Store;
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: String,
    /// One container (`<account>--<name>`); all of the account's when left out.
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(config: Option<&Path>, args: &Args) -> u8 {
    let Some(config) = config else {
        eprintln!("reconciler wake: --config SITE is required");
        return exit::ERROR;
    };
    let result = crate::context::load_site(config)
        .map_err(|e| e.to_string())
        .and_then(|site| Store::open(Path::new(&site.state_dir.value)).map_err(|e| e.to_string()))
        .and_then(|store| {
            let before = store.culled(&args.account).map_err(|e| e.to_string())?;
            store
                .clear_culled(&args.account, args.name.as_deref())
                .map_err(|e| e.to_string())?;
            store
                .audit(
                    &args.account,
                    "woken",
                    None,
                    args.name.as_deref().unwrap_or("all"),
                )
                .map_err(|e| e.to_string())?;
            Ok(before
                .keys()
                .filter(|k| args.name.as_ref().is_none_or(|n| n == *k))
                .cloned()
                .collect::<Vec<_>>())
        });
    match result {
        Ok(woken) if woken.is_empty() => {
            println!("nothing of {} was culled", args.account);
            exit::OK
        }
        Ok(woken) => {
            println!(
                "woken: {} (the next reconcile starts them)",
                woken.join(", ")
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler wake: {e}");
            exit::ERROR
        }
    }
}
