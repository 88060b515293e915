//! `reconciler gc [--dry-run] [--older-than DURATION]`: removes unused
//! images Berth pulled and reports the bytes freed.

use super::{exit, open_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Idle time before an image goes (`0s`, `30m`, `7d`); the site's
    /// `policy.image_gc_after` when omitted.
    #[arg(long)]
    pub older_than: Option<String>,
}

pub async fn run(config: Option<&std::path::Path>, args: &Args) -> u8 {
    let ctx = match open_context(config).await {
        Ok(ctx) => ctx,
        Err(code) => return code,
    };
    let age = match args.older_than.as_deref() {
        None => ctx.site.image_gc_after(),
        Some("0" | "0s") => std::time::Duration::ZERO,
        Some(text) => match berth_spec::site::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("reconciler gc: {e}");
                return exit::ERROR;
            }
        },
    };
    match crate::gc::collect(&ctx, age, args.dry_run).await {
        Ok(items) => {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for i in &items {
                println!("{}: {verb} {} ({} bytes)", i.endpoint, i.image, i.bytes);
            }
            let total: u64 = items.iter().map(|i| i.bytes).sum();
            println!(
                "{} image(s), {total} bytes {}",
                items.len(),
                if args.dry_run { "reclaimable" } else { "freed" }
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("reconciler gc: {e}");
            exit::ERROR
        }
    }
}
