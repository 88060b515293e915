//! `reconciler build-log`: the whole log of an account's last build of an
//! image (size-capped), with its outcome. Reads the store only.

use super::exit;
use crate::store::Store;
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
    let Some(config) = config else {
        eprintln!("reconciler build-log: --config SITE is required");
        return exit::ERROR;
    };
    let records = crate::context::load_site(config)
        .map_err(|e| e.to_string())
        .and_then(|site| Store::open(Path::new(&site.state_dir.value)).map_err(|e| e.to_string()))
        .and_then(|store| store.builds(&args.account).map_err(|e| e.to_string()));
    let records: Vec<_> = match records {
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
            super::output::rfc3339(b.at)
        );
        print!("{}", b.log);
        if !b.log.ends_with('\n') {
            println!();
        }
    }
    exit::OK
}
