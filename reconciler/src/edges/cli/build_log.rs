//! `reconciler build-log`: the whole log of an account's last build of an
//! image (size-capped), with its outcome. Reads the store only.

use super::{exit, open_store};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub account: String,
    /// The image's name in `images.build` (all of the account's when left out).
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(config: Option<&Path>, args: &Args) -> u8 {
    let store = match open_store(config, "build-log") {
        Ok((_, store)) => store,
        Err(code) => return code,
    };
    let records: Vec<_> = match store.builds(&args.account) {
        Ok(r) => r
            .into_iter()
            .filter(|b| args.name.as_ref().is_none_or(|n| *n == b.name))
            .collect(),
        Err(e) => {
            eprintln!("reconciler build-log: {e}");
            return exit::ERROR;
        }
    };
    if records.is_empty() {
        eprintln!(
            "reconciler build-log: `{}` has no recorded build{}",
            args.account,
            args.name
                .as_ref()
                .map(|n| format!(" of `{n}`"))
                .unwrap_or_default()
        );
        return exit::ERROR;
    }
    for b in records {
        let outcome = if b.ok {
            format!("built {}", b.digest.as_deref().unwrap_or(""))
        } else {
            format!("failed: {}", b.reason.lines().next().unwrap_or(""))
        };
        println!(
            "== {} at {} ({}): {outcome}",
            b.name,
            b.revision.chars().take(12).collect::<String>(),
            crate::base::time::rfc3339(b.at)
        );
        print!("{}", b.log);
        if !b.log.ends_with('\n') {
            println!();
        }
    }
    exit::OK
}
