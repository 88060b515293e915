//! `reconciler wake --account A [--name CONTAINER]`: an admin starts what
//! the idle culler stopped: the culled mark goes, and the next reconcile
//! (`apply`, or `serve`'s resync) starts the container again.

use super::{exit, open_store};
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
    let store = match open_store(config, "wake") {
        Ok((_, store)) => store,
        Err(code) => return code,
    };
    let result = wake(&store, args);
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

/// Clears the culled marks asked for and audits it; the containers woken.
fn wake(store: &crate::store::Store, args: &Args) -> Result<Vec<String>, crate::store::StoreError> {
    let before = store.culled(&args.account)?;
    store.clear_culled(&args.account, args.name.as_deref())?;
    store.audit(
        &args.account,
        "woken",
        None,
        args.name.as_deref().unwrap_or("all"),
    )?;
    Ok(before
        .into_keys()
        .filter(|k| args.name.as_ref().is_none_or(|n| n == k))
        .collect())
}
